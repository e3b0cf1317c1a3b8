"""Print a Markdown table of finished evaluations, one row per evaluation folder.

One row per folder, in the order given. Columns: the folder's name, the model, the attacks in
suite order with the parameters named by ``--params`` (those not at ``None`` or 1), the clean
accuracy, the robust accuracy after each attack, the worst case and the attacks' seconds. Reads
each folder's ``results.json`` only, through :func:`scfront.evaluation.compare.read_results`.

Example (the table of results/defense_attack_convergence/README.md)::

    cd results/defense_attack_convergence
    python ../../scripts/evaluation_table.py eval/pgdat_{40,100,200} eval/defense_{40,100,200} \\
        eval/p{400,1000,3000} eval/p200r5 eval/p200id eval/a500 eval/cascade \\
        --model-label resnet32_pgd_at.pt="original PGD-AT ResNet-32"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from scfront.errors import ScfrontError
from scfront.evaluation.compare import read_results

DEFAULT_PARAMS = ("steps", "queries", "restarts", "top_u")


def describe_attack(attack: dict[str, Any], params: Sequence[str]) -> str:
    """``name (key=value, ...)`` for the ``params`` of one results.json attack entry that are set
    to something other than None or 1."""
    values = attack.get("params", {})
    shown = [f"{key}={values[key]}" for key in params if values.get(key) not in (None, 1)]
    return attack["name"] + (f" ({', '.join(shown)})" if shown else "")


def table_rows(folders: Sequence[Path], params: Sequence[str] = DEFAULT_PARAMS,
               model_labels: dict[str, str] | None = None) -> list[str]:
    """The Markdown lines (header, rule, one row per folder in the given order)."""
    lines = ["| folder | model | attacks in cascade order | clean | robust after each attack | worst case | seconds |",
             "|---|---|---|---|---|---|---|"]
    for folder in folders:
        results = read_results(folder)
        model = (model_labels or {}).get(results["model"], results["model"])
        names = " → ".join(describe_attack(a, params) for a in results["attacks"])
        robust = " → ".join(f"{100 * a['robust_accuracy']:.1f} %" for a in results["attacks"])
        seconds = sum(a["seconds"] for a in results["attacks"])
        lines.append(f"| {Path(folder).name} | {model} | {names} | {100 * results['clean_accuracy']:.1f} % | "
                     f"{robust} | {100 * results['worst_case_accuracy']:.1f} % | {seconds:.0f} |")
    return lines


def _label(text: str) -> tuple[str, str]:
    name, sep, label = text.partition("=")
    if not sep or not name or not label:
        raise argparse.ArgumentTypeError(f"expected MODEL=LABEL, got {text!r}")
    return name, label


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", metavar="EVAL", type=Path, nargs="+", help="finished evaluation folders")
    parser.add_argument("--params", default=",".join(DEFAULT_PARAMS),
                        help=f"attack parameters to show (default: {','.join(DEFAULT_PARAMS)})")
    parser.add_argument("--model-label", type=_label, action="append", default=[], metavar="MODEL=LABEL",
                        help="print LABEL for the model named MODEL in results.json (repeatable)")
    args = parser.parse_args(argv)
    try:
        lines = table_rows(args.folders, [p.strip() for p in args.params.split(",") if p.strip()],
                           dict(args.model_label))
    except ScfrontError as exc:
        print(f"evaluation_table: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
