"""Table 1 from the evaluation folders: table1.json and report.md.

Everything here reads and formats files only (``rows.json`` and each row's results.json, written
by the row's evaluation with its per-column accuracies, worst case and checks), never a model,
so the table can be rebuilt at any time with the same numbers. Rows evaluated before a row was
one evaluation (one evaluation per column, merged into ``eval/<row>/results.json``) are read the
same way: both results.json carry ``columns``, ``clean_accuracy``, ``worst_case_accuracy`` and
``checks``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from scfront.errors import ConfigError
from scfront.io import atomic_write_json, atomic_write_text
from scfront.reproduction.rows import row_title

RESULTS_FILE = "results.json"
TABLE_FILE = "table1.json"
REPORT_FILE = "report.md"


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist (run `scfront reproduce table1` to produce it)")
    return json.loads(path.read_text(encoding="utf-8"))


def build_table(out_dir: Path) -> dict[str, Any]:
    """table1.json from ``rows.json`` and ``eval/<row>/results.json``.

    A row whose merged results.json does not exist yet (being evaluated by another ``--rows``
    invocation into the same folder) is kept with ``"pending": true`` and no numbers.
    """
    meta = _read_json(out_dir / "rows.json")
    dataset = meta["plan"].get("dataset", "cifar10")  # recorded for datasets other than CIFAR-10
    rows = []
    for record in meta["rows"]:
        row: dict[str, Any] = {"name": record["name"], "title": row_title(record["name"], dataset),
                               "source": record["kind"], "path": record["path"]}
        if record["kind"] == "not_run":
            row["reason"] = record["reason"]
        elif not (out_dir / "eval" / record["name"] / RESULTS_FILE).is_file():
            row["pending"] = True  # recorded by another --rows invocation that has not finished
        else:
            res = _read_json(out_dir / "eval" / record["name"] / RESULTS_FILE)
            columns = dict(res["columns"])
            for c in meta["plan"]["columns"]:
                if c.get("own_evaluation"):  # another radius: an evaluation of its own
                    alone = out_dir / "eval" / f"{record['name']}--{c['key']}" / RESULTS_FILE
                    if not alone.is_file():
                        row["pending"] = True
                        break
                    sub = _read_json(alone)
                    columns[c["key"]] = {"accuracy": sub["worst_case_accuracy"], "median_norm": None,
                                         "seconds": sum(a["seconds"] for a in sub["attacks"])}
            if not row.get("pending"):
                row.update(clean=res["clean_accuracy"], worst_case=res["worst_case_accuracy"],
                           columns=columns, checks=res["checks"])
        rows.append(row)
    table = {"preset": meta["preset"], "plan": meta["plan"], "rows": rows}
    atomic_write_json(out_dir / TABLE_FILE, table)
    return table


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def render_table(table: Mapping[str, Any]) -> list[str]:
    """The Markdown table: rows = models, columns = clean, each attack column, worst case."""
    columns = table["plan"]["columns"]
    header = ["model", "clean"] + [c["title"] for c in columns] + ["worst case"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table["rows"]:
        if "reason" in row or row.get("pending"):
            cell = "pending" if row.get("pending") else "not run"
            lines.append("| " + " | ".join([row["title"]] + [cell] * (len(header) - 1)) + " |")
            continue
        cells = [row["title"], _pct(row["clean"])]
        for c in columns:
            entry = row["columns"][c["key"]]
            cell = _pct(entry["accuracy"])
            if c["median_norm"]:
                median = entry["median_norm"]
                cell += f" (median L2 {median:.3g})" if median is not None else " (median L2 –)"
            cells.append(cell)
        cells.append(_pct(row["worst_case"]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_compute(table: Mapping[str, Any]) -> list[str]:
    """"Compute time": the measured attack seconds per row and column (sums over resumed runs).

    Only the attacks' own time is stored per unit of work, so a run interrupted and resumed any
    number of times still adds up to what the attacks cost; training, checks and figures are
    not included.
    """
    evaluated = [r for r in table["rows"] if "clean" in r]
    if not evaluated:
        return []
    columns = table["plan"]["columns"]
    header = ["model"] + [c["title"] for c in columns] + ["total"]
    lines = ["", "## Compute time (attack seconds, summed over resumed runs)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    grand = 0.0
    for row in evaluated:
        seconds = [float(row["columns"][c["key"]]["seconds"]) for c in columns]
        grand += sum(seconds)
        lines.append("| " + " | ".join([row["title"], *(f"{v:.0f}" for v in seconds), f"{sum(seconds):.0f}"]) + " |")
    lines += ["", f"All rows: {grand:.0f} s = {grand / 3600:.2f} h of attacks (training, the gradient-masking "
                  "checks and the figures come on top)."]
    return lines


def write_report(out_dir: Path, table: Mapping[str, Any], figures: Mapping[str, Path]) -> Path:
    """report.md: the table, what was not run and why, the attack settings, checks and plots."""
    plan = table["plan"]
    if plan.get("dataset", "cifar10") == "imagenette":
        heading = "Imagenette table"
        where = ("Imagenette val subset (of a 1,500-image copy of the val split, 224x224 JPEG re-encoded "
                 "by its publisher, resized to 160x160; not the imagenette2-160 release) of")
    else:
        heading, where = "Table 1 reproduction", "CIFAR-10 test subset of"
    lines = [f"# {heading} (preset `{table['preset']}`)", "",
             f"{where} {plan['n_images']} images (subset seed {plan['subset_seed']}); "
             f"PGD family: {plan['steps']} steps, {plan['restarts']} restart(s) (worst case per example). "
             "Accuracies in %. Each row is one evaluation whose attacks are grouped into the columns "
             "(AutoAttack cascade inside each column); the worst case counts an image as robust only "
             "if no column broke it."
             + (" Columns at a smaller radius than the others (" + ", ".join(
                 c["title"] for c in plan["columns"] if c.get("own_evaluation"))
                + ") are evaluations of their own and not part of the worst case."
                if any(c.get("own_evaluation") for c in plan["columns"]) else ""), ""]
    lines += render_table(table)
    not_run = [r for r in table["rows"] if "reason" in r]
    if not_run:
        lines += ["", "## Rows not run", ""] + [f"- {r['title']}: {r['reason']}" for r in not_run]
    pending = [r for r in table["rows"] if r.get("pending")]
    if pending:
        lines += ["", "## Rows pending", ""] + [
            f"- {r['title']}: no results in eval/{r['name']}/ yet (another `--rows` invocation into this "
            "folder has not finished; rerun without `--rows` when it has)" for r in pending]
    lines += ["", "## Models", ""]
    for r in table["rows"]:
        if "clean" in r:
            lines.append(f"- {r['title']}: {r['source']} `{r['path']}` "
                         f"(details: [eval/{r['name']}/results.json](eval/{r['name']}/results.json))")
    lines += render_compute(table)
    lines += ["", "## Columns (attack, parameters)", ""]
    for c in plan["columns"]:
        extra = " + the preset's steps and restarts" if c["pgd_budget"] else ""
        lines.append(f"- {c['title']}: " + ", ".join(f"`{a}`" for a in c["attacks"]) + extra)
    lines.append(f"- budgets of this preset: {', '.join(f'{k}={v}' for k, v in plan['budget'].items())}")
    checked = [r for r in table["rows"] if r.get("checks")]
    if checked:
        lines += ["", "## Gradient-masking checks (each row's evaluation; blackbox-vs-whitebox across its columns)", "",
                  "| model | check | passed | detail |", "|---|---|---|---|"]
        for r in checked:
            for name, check in r["checks"].items():
                lines.append(f"| {r['title']} | {name} | {'yes' if check['passed'] else '**NO**'} | {check['detail']} |")
    if figures:
        lines += ["", "## Figures", ""]
        for title, path in figures.items():
            rel = Path(path).relative_to(out_dir).as_posix()
            lines += [f"### {title}", "", f"![{title}]({rel})", ""]
    return atomic_write_text(out_dir / REPORT_FILE, "\n".join(lines) + "\n")
