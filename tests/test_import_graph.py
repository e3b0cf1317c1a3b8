"""The package's import graph, read from the source with ``ast``, has no cycle.

Every way one scfront module can make Python execute another counts as an edge, wherever it is
written (module level or inside a function: a lazy import is still a dependency):

- ``import a.b.c`` and ``from a.b import c`` (relative forms resolved): an edge to the module
  ``a.b.c`` when it exists, else to ``a.b``; parent packages are not edges of their own;
- ``from package import name`` where the package lists ``name`` in its lazy ``_EXPORTS`` table
  (:func:`scfront.lazy.lazy_exports`): an edge to the module that defines ``name``;
- ``importlib.import_module("scfront....")`` with a literal name, and tuples/lists of literal
  module names in a module that calls ``import_module`` (the command and registry tables);
- a package's ``_EXPORTS`` values: an edge from the package to each defining module.

Only code under ``if TYPE_CHECKING:`` is left out (it never runs).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "scfront"


def module_files(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file of ``package`` under ``src``."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _strings(node: ast.AST) -> list[str]:
    """The literal strings of a tuple/list/set display, else nothing."""
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


class _Collector(ast.NodeVisitor):
    """Raw imports of one module: (target, imported names) pairs and dynamic module strings."""

    def __init__(self, module: str, is_package: bool) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.imports: list[tuple[str, tuple[str, ...]]] = []  # (module, names after `import`)
        self.dynamic: list[str] = []  # literal module names used by import_module or tables
        self.tables: list[str] = []  # strings of tuple/list displays (tables of modules)
        self.exports: dict[str, str] = {}  # a lazy _EXPORTS table: name -> module
        self.calls_import_module = False

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.imports.append((alias.name, ()))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        self.imports.append((target, tuple(alias.name for alias in node.names)))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name == "import_module":
            self.calls_import_module = True
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                self.dynamic.append(node.args[0].value)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if "_EXPORTS" in targets and isinstance(node.value, ast.Dict):
            for key, value in zip(node.value.keys, node.value.values):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                    self.exports[str(key.value)] = str(value.value)
        self.tables += _strings(node.value)
        self.generic_visit(node)


def import_graph(src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    """``{module: modules it can make Python import}`` for every module of ``package``."""
    files = module_files(src, package)
    collected = {}
    for module, path in files.items():
        collector = _Collector(module, path.name == "__init__.py")
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        collected[module] = collector
    graph: dict[str, set[str]] = {module: set() for module in files}
    for module, c in collected.items():
        edges = graph[module]
        for target, names in c.imports:
            if target not in files:
                continue  # outside the package
            if not names:
                edges.add(target)
                continue
            for name in names:
                sub = f"{target}.{name}"
                if sub in files:
                    edges.add(sub)
                elif name in collected[target].exports:
                    edges.add(collected[target].exports[name])
                else:
                    edges.add(target)
        edges.update(c.exports.values())
        edges.update(m for m in c.dynamic if m in files)
        if c.calls_import_module:
            edges.update(m for m in c.tables if m in files)
        edges.discard(module)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component with more than one module."""
    return [_cycle_in(graph, set(component)) for component in components(graph)]


def components(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def strongconnect(root: str) -> None:  # Tarjan's algorithm, iterative
        nonlocal counter
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            strongconnect(module)
    return sorted(found)


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{sorted(component)} is not strongly connected")  # pragma: no cover


# --------------------------------------------------------------------------- the checker itself
def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_every_kind_of_import_is_an_edge(tmp_path: Path) -> None:
    src = _write(tmp_path, {
        "__init__.py": "",
        "a.py": "def f():\n    from pkg import b\n",  # lazy, and `from package import submodule`
        "b.py": "from .sub import thing\n",  # relative, name that is not a submodule
        "sub/__init__.py": "_EXPORTS = {'Lazy': 'pkg.sub.impl'}\n",
        "sub/impl.py": "import importlib\nTABLE = ('pkg.c',)\n"
                       "def g():\n    importlib.import_module('pkg.d')\n",
        "c.py": "from pkg.sub import Lazy\n",
        "d.py": "import pkg.a\n",
        "e.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
    })
    graph = import_graph(src, "pkg")
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.sub"}
    assert graph["pkg.sub"] == {"pkg.sub.impl"}
    assert graph["pkg.sub.impl"] == {"pkg.c", "pkg.d"}
    assert graph["pkg.c"] == {"pkg.sub.impl"}  # through the lazy table, not the package
    assert graph["pkg.d"] == {"pkg.a"}
    assert graph["pkg.e"] == set()  # TYPE_CHECKING imports never run
    # One strongly connected component, reported by a shortest cycle through its first module.
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub", "pkg.sub.impl", "pkg.d", "pkg.a"]]
    graph["pkg.d"].clear()
    assert find_cycles(graph) == [["pkg.c", "pkg.sub.impl", "pkg.c"]]
    graph["pkg.c"].clear()
    assert find_cycles(graph) == []


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "scfront.cli" in graph and graph["scfront.models"], "the graph was not read"
    knots = components(graph)
    report = [f"{' -> '.join(_cycle_in(graph, set(k)))}   ({len(k)} modules entangled: {', '.join(k)})"
              for k in knots]
    assert not knots, "import cycles:\n" + "\n".join(report)
