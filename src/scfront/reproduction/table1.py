"""``scfront reproduce table1``: obtain the four models, evaluate every column, plot, report.

Output folder::

    rows.json                     where each row's model came from (or why it was not run);
                                  invocations with other ``--rows`` add their rows to it
    models/<row>/                 run folders of the models trained here (resumable)
    eval/<row>/                   one scfront evaluation per row (resumable): its attacks grouped
                                  into the table's columns; results.json (docs/evaluation.md §7)
                                  with the per-column accuracies, the per-example worst case and
                                  the checks (the black-box one across the columns)
    sweeps/<row>/sweep.json       accuracy vs ε
    plots/*.png, table1.json, report.md

Rerunning the same command resumes: trained runs, finished evaluation units and sweep points
are kept. The table (:mod:`.report`) is built only from ``rows.json`` and the results.json files.
Rows can be produced by separate invocations into the same folder, one after another or side by
side (``--rows natural,pgd_at`` and ``--rows defense``): each keeps the others' rows in
``rows.json`` and its report shows a row still being evaluated elsewhere as pending. One last
invocation without ``--rows`` finds every column and sweep done and draws the joint figures.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from scfront.config import RunConfig, load_preset
from scfront.errors import ConfigError
from scfront.io import atomic_write_json
from scfront.reproduction.columns import Table1Plan, table1_plan
from scfront.reproduction.rows import ROWS, RowSource, resolve_rows, rows_of

log = logging.getLogger(__name__)

ROWS_FILE = "rows.json"


@dataclass(frozen=True)
class Table1Settings:
    """Arguments of :func:`run_table1`.

    Attributes:
        preset: "smoke", "cpu" or "paper". overrides: ``section.key=value`` applied to every
            recipe's config (e.g. ``evaluation.n_images=8``).
        reuse: {row: saved model folder or original ``.pt``}; pgd_at_checkpoint: original PGD-AT.
        rows: which rows to produce (default: all of the dataset's).
        dataset: "cifar10" (the paper's Table 1) or "imagenette" (its own columns and rows,
            :func:`~scfront.reproduction.columns.imagenette_columns`).
        report_only: run no training, evaluation or sweep: rebuild table1.json, report.md and
            the figures from the stored results and sweep points (rows without results show as
            pending; the models are loaded for the example attacks and loss landscapes, seconds).
    """

    preset: str
    data_root: Path
    out_dir: Path
    reuse: dict[str, Path] = dataclasses.field(default_factory=dict)
    pgd_at_checkpoint: Path | None = None
    rows: tuple[str, ...] | None = None  # None: every row of the dataset
    overrides: tuple[str, ...] = ()
    device: str = "cpu"
    seed: int = 0
    progress: bool = True
    dataset: str = "cifar10"
    report_only: bool = False


def recipe_config(settings: Table1Settings, recipe: str) -> RunConfig:
    config = load_preset(settings.preset, settings.dataset, settings.overrides, recipe=recipe)
    return config.replace({"train.device": settings.device})


def obtain_model(source: RowSource, settings: Table1Settings) -> nn.Module:
    """The row's model (eval mode): loaded, imported, or trained (resumed) into ``source.path``."""
    from scfront.models.loader import load

    if source.kind in ("reuse", "checkpoint"):
        assert source.path is not None
        log.info("%s: reusing %s", source.name, source.path)
        return load(source.path)
    if source.kind == "train":
        from scfront.training.loop import train

        assert source.path is not None
        log.info("%s: training into %s", source.name, source.path)
        train(recipe_config(settings, source.name), source.path, settings.data_root, progress=settings.progress)
        return load(source.path)
    raise ConfigError(f"row {source.name} is not run: {source.reason}")


def _stored_model(source: RowSource, out: Path) -> nn.Module | None:
    """For ``report_only``: the row's model when its evaluation is stored and the model exists
    without training (None, with a log line, otherwise: the row shows as pending)."""
    from scfront.evaluation.results import RESULTS_FILE
    from scfront.models.loader import load
    from scfront.models.saving import MODEL_FILE

    if not (out / "eval" / source.name / RESULTS_FILE).is_file():
        log.info("%s: no stored evaluation in %s; shown as pending", source.name, out / "eval" / source.name)
        return None
    assert source.path is not None
    if source.kind == "train" and not (source.path / MODEL_FILE).is_file():
        log.info("%s: %s holds no finished model; its figures are left out", source.name, source.path)
        return None
    return load(source.path)


# the default self-checks, the attacking ones on 100 images, and the BPDA variants (opt-in and on
# fewer images by default for their cost; a Table 1 row attacks 1,000 images, so that 100-image
# checks cost little next to it)
TABLE1_CHECKS = ("default,gradients-nonzero:images=100,large-eps:images=100,more-steps:images=100,"
                 "bpda-variants:images=100")


def own_evaluation_dir(row_dir: Path, column: str) -> Path:
    """Where a column with :attr:`~scfront.reproduction.columns.Column.own_evaluation` of the row
    evaluated into ``row_dir`` is evaluated: ``eval/<row>--<column>/``."""
    return row_dir.parent / f"{row_dir.name}--{column}"


def evaluate_row(model: nn.Module, name: str, data: Any, plan: Table1Plan, test_images: torch.Tensor,
                 out_dir: Path, settings: Table1Settings) -> dict[str, Any]:
    """The row's one evaluation into ``out_dir``: every column's attacks, a cascade per column,
    with the gradient-masking checks; returns its results.json object. Columns evaluated on
    their own (another radius) go to :func:`own_evaluation_dir`, without checks.

    Each attack draws what it draws when its column is evaluated alone (its generators are named
    by its position inside the column), so the column accuracies equal those of one evaluation
    per column.
    """
    from scfront.attacks.blackbox.starts import StartPool
    from scfront.evaluation import build_columns, build_suite, evaluate

    pool_images = test_images if plan.budget.start_pool is None else test_images[: plan.budget.start_pool]
    joint = [c for c in plan.columns if not c.own_evaluation]
    columns = build_columns({c.key: c.attacks for c in joint}, {c.key: plan.suite_overrides(c) for c in joint})
    n = int(data.labels.shape[0])
    common = dict(model_name=name, subset_seed=plan.evaluation.subset_seed, seed=settings.seed,
                  batch_size=plan.evaluation.batch_size, cascade=True, device=settings.device,
                  progress=settings.progress, dataset=plan.dataset)
    results = evaluate(model, data, columns, out_dir, starts=StartPool(pool_images), checks=TABLE1_CHECKS,
                       check_images=min(n, 100), **common)
    if results is None:  # pragma: no cover - only with shards, which this command does not use
        raise ConfigError(f"evaluation of {name} did not complete")
    for column in plan.columns:
        if column.own_evaluation:
            alone = evaluate(model, data, build_suite(column.attacks, plan.suite_overrides(column)),
                             own_evaluation_dir(out_dir, column.key), checks=False, **common)
            if alone is None:  # pragma: no cover - no shards here
                raise ConfigError(f"evaluation of {name}, column {column.key}, did not complete")
    return results


def _row_record(source: RowSource) -> dict[str, Any]:
    return {"name": source.name, "kind": source.kind, "path": None if source.path is None else str(source.path),
            "reason": source.reason}


def run_table1(settings: Table1Settings) -> dict[str, Any]:
    """Produce Table 1 into ``settings.out_dir``; returns the table (see :func:`.report.build_table`)."""
    from scfront.data import eval_subset_indices, load_dataset
    from scfront.evaluation import EvalData
    from scfront.reproduction.figures import table1_figures
    from scfront.reproduction.report import build_table, write_report

    out = settings.out_dir
    defense = recipe_config(settings, "defense")
    plan = table1_plan(settings.preset, defense.evaluation, settings.dataset)
    rows = rows_of(settings.dataset) if settings.rows is None else settings.rows
    sources = resolve_rows(settings.preset, rows, settings.reuse, settings.pgd_at_checkpoint,
                           out / "models", settings.dataset)
    test = load_dataset(defense.data, settings.data_root, "test")
    index = eval_subset_indices(len(test), plan.evaluation.n_images, plan.evaluation.subset_seed)
    data = EvalData(index, test.images[index], test.labels[index])
    atomic_write_json(out / ROWS_FILE, merged_rows_record(out / ROWS_FILE, settings.preset, _plan_record(plan), sources,
                                                          rows_of(settings.dataset)))
    models: dict[str, nn.Module] = {}
    for source in sources:
        if source.kind == "not_run":
            log.info("%s: %s", source.name, source.reason)
            continue
        if settings.report_only:
            model = _stored_model(source, out)
            if model is not None:
                models[source.name] = model.to(settings.device).eval()
            continue
        model = obtain_model(source, settings).to(settings.device).eval()
        evaluate_row(model, source.name, data, plan, test.images, out / "eval" / source.name, settings)
        models[source.name] = model
    figures = table1_figures(models, data, plan, out, defense, settings.device, settings.seed,
                             stored_sweeps=settings.report_only)
    table = build_table(out)
    write_report(out, table, figures)
    return table


def merged_rows_record(path: Path, preset: str, plan: dict[str, Any],
                       sources: list[RowSource], order: tuple[str, ...] = ROWS) -> dict[str, Any]:
    """The content of ``rows.json``: this invocation's rows, plus the rows an earlier invocation
    with other ``--rows`` recorded in ``path`` for the same preset and plan (in the table's row
    order ``order``). A record of another preset or plan, or an unreadable file, is replaced."""
    records = {s.name: _row_record(s) for s in sources}
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
            keep = old["rows"] if old.get("preset") == preset and old.get("plan") == plan else []
        except (ValueError, KeyError, TypeError):
            log.warning("%s is unreadable; it is rewritten with this invocation's rows", path)
            keep = []
        for record in keep:
            if record.get("name") in order:
                records.setdefault(record["name"], record)
    return {"preset": preset, "plan": plan, "rows": [records[name] for name in order if name in records]}


def _plan_record(plan: Table1Plan) -> dict[str, Any]:
    # CIFAR-10 records carry no dataset key, as before there were two datasets
    dataset = {} if plan.dataset == "cifar10" else {"dataset": plan.dataset}
    return {**dataset, "n_images": plan.evaluation.n_images, "subset_seed": plan.evaluation.subset_seed,
            "restarts": plan.evaluation.restarts, "steps": plan.evaluation.steps,
            "budget": dataclasses.asdict(plan.budget),
            "columns": [{"key": c.key, "title": c.title, "attacks": list(c.attacks),
                         "pgd_budget": c.pgd_budget, "median_norm": c.median_norm,
                         **({"own_evaluation": True} if c.own_evaluation else {})} for c in plan.columns]}


def parse_rows(text: str | None, dataset: str = "cifar10") -> tuple[str, ...]:
    table_rows = rows_of(dataset)
    if not text:
        return table_rows
    rows = tuple(r.strip() for r in text.split(",") if r.strip())
    unknown = sorted(set(rows) - set(table_rows))
    if unknown or not rows:
        raise ConfigError(f"--rows takes a comma-separated subset of {', '.join(table_rows)}; got {text!r}")
    return rows
