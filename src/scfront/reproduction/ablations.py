"""``scfront reproduce ablations``: the ablations of docs/method.md §8 under one budget.

Each ablation is the preset's defense configuration plus :data:`ABLATION_BUDGET` (one reduced
training and attack budget, identical for every ablation, defined here once) plus the ablation's
own overrides (what it switches off or changes, nothing else). Each is trained into
``OUT/models/<name>`` and evaluated (clean, PGD-Linf 8/255 with the preset's BPDA rule adapted to
its T: U = 2T) into ``OUT/eval/<name>``, both resumable; the table and plot are built from the
results.json files.

The reference row ("reference": T = 15, U = 30, the paper's setting) is trained under the same
budget so that every ablation is compared with a model that only differs in the ablated part.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from scfront.config import EPS_8, RunConfig, load_preset
from scfront.errors import ConfigError
from scfront.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

# The one reduced budget shared by every ablation (on top of the preset): a quarter of the
# training set and 500 evaluation images. Smoke runs shrink it further with --set overrides.
ABLATION_BUDGET: dict[str, Any] = {
    "data.train_limit": 12500,
    "evaluation.n_images": 500,
    "evaluation.restarts": 1,
}
T_SWEEP = (1, 2, 5, 10, 20, 50)
ABLATION_ATTACKS = (f"pgd-linf:eps={EPS_8!r}",)


@dataclass(frozen=True)
class Ablation:
    """One ablation: its name, what it tests, the config overrides that make it, and T (sweep)."""

    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    top_t: int | None = None


def ablations() -> tuple[Ablation, ...]:
    """Reference, the T sweep (U = 2T) and the five structural ablations, in report order."""
    items = [Ablation("reference", "the paper's frontend (T = 15, U = 30)", {}, top_t=15)]
    items += [Ablation(f"T={t}", f"top-T with T = {t} (BPDA U = {2 * t})",
                       {"frontend.top_t": t, "frontend.bpda_top_u": 2 * t}, top_t=t) for t in T_SWEEP]
    items += [
        Ablation("no-activation", "no ternary activation", {"frontend.activation": False}),
        Ablation("no-topT-no-activation", "neither top-T nor activation",
                 {"frontend.top_t": None, "frontend.activation": False}),
        Ablation("no-decoder", "identity decoder, codes-input ResNet-32",
                 {"frontend.decoder": "identity", "model.classifier": "resnet32_codes"}),
        Ablation("learnable-dictionary", "dictionary atoms trained with the network",
                 {"frontend.learnable_dictionary": True}),
        Ablation("dct", "orthonormal DCT basis (48 atoms) instead of the learned dictionary",
                 {"frontend.dictionary": "dct4"}),
    ]
    return tuple(items)


def ablation_names() -> list[str]:
    return [a.name for a in ablations()]


def base_config(preset: str, overrides: Sequence[str] = ()) -> RunConfig:
    """The preset's defense with :data:`ABLATION_BUDGET`, then the user's ``overrides``."""
    config = load_preset(preset, "cifar10", recipe="defense").replace(ABLATION_BUDGET)
    return config.replace(list(overrides)) if overrides else config


def ablation_config(base: RunConfig, ablation: Ablation) -> RunConfig:
    return base.replace(ablation.overrides) if ablation.overrides else base


def select(names: Sequence[str] | None) -> tuple[Ablation, ...]:
    every = ablations()
    if not names:
        return every
    known = {a.name for a in every}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown ablation(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    return tuple(a for a in every if a.name in names)


def run_ablations(preset: str, data_root: Path, out_dir: Path, *, only: Sequence[str] | None = None,
                  overrides: Sequence[str] = (), device: str = "cpu", seed: int = 0,
                  progress: bool = True) -> list[dict[str, Any]]:
    """Train and evaluate each selected ablation; writes ablations.json, report.md, a plot."""
    from scfront.data import eval_subset_indices, load_dataset
    from scfront.evaluation import EvalData, build_suite, evaluate
    from scfront.models.loader import load
    from scfront.training.loop import train

    base = base_config(preset, overrides).replace({"train.device": device})
    chosen = select(only)
    test = load_dataset(base.data, data_root, "test")
    index = eval_subset_indices(len(test), base.evaluation.n_images, base.evaluation.subset_seed)
    data = EvalData(index, test.images[index], test.labels[index])
    for ablation in chosen:
        config = ablation_config(base, ablation)
        run_dir = out_dir / "models" / ablation.name
        log.info("ablation %s: training into %s", ablation.name, run_dir)
        train(config, run_dir, data_root, progress=progress)
        model = load(run_dir, device=device)
        suite = build_suite(ABLATION_ATTACKS, {"restarts": config.evaluation.restarts,
                                               "steps": config.evaluation.steps})
        evaluate(model, data, suite, out_dir / "eval" / ablation.name, model_name=ablation.name,
                 subset_seed=config.evaluation.subset_seed, seed=seed, batch_size=config.evaluation.batch_size,
                 checks=False, device=device, progress=progress)
    rows = collect_rows(out_dir, chosen)
    write_ablation_report(out_dir, rows, base)
    return rows


def collect_rows(out_dir: Path, chosen: Sequence[Ablation]) -> list[dict[str, Any]]:
    """One row per ablation from its results.json (None where it has not been evaluated)."""
    rows = []
    for ablation in chosen:
        path = out_dir / "eval" / ablation.name / "results.json"
        row: dict[str, Any] = {"name": ablation.name, "description": ablation.description,
                               "top_t": ablation.top_t, "overrides": ablation.overrides,
                               "clean": None, "pgd-linf": None}
        if path.is_file():
            res = json.loads(path.read_text(encoding="utf-8"))
            row["clean"] = res["clean_accuracy"]
            row["pgd-linf"] = next(a["robust_accuracy"] for a in res["attacks"] if a["name"] == "pgd-linf")
        rows.append(row)
    return rows


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def write_ablation_report(out_dir: Path, rows: Sequence[Mapping[str, Any]], base: RunConfig) -> Path:
    from scfront.config import save_config
    from scfront.reproduction.plots import plot_ablation

    save_config(base, out_dir / "base_config.toml")
    atomic_write_json(out_dir / "ablations.json", {"budget": ABLATION_BUDGET, "rows": list(rows)})
    plot = plot_ablation(rows, out_dir / "plots" / "ablations.png")
    ev = base.evaluation
    lines = ["# Ablations (docs/method.md §8)", "",
             f"Every row: the defense of base_config.toml ({base.train.epochs} epoch(s), "
             f"{base.data.train_limit or 'all'} training images, decoder {base.frontend.decoder.value}) "
             "with only the listed change; evaluated on the same "
             f"{ev.n_images} test images with PGD-Linf 8/255 ({ev.steps} steps, {ev.restarts} restart(s)). "
             "Accuracies in %.", "",
             "| ablation | change | overrides | clean | PGD-Linf 8/255 |", "|---|---|---|---|---|"]
    for r in rows:
        changes = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "–"
        lines.append(f"| {r['name']} | {r['description']} | `{changes}` | {_pct(r['clean'])} | {_pct(r['pgd-linf'])} |")
    lines += ["", f"![ablations]({plot.relative_to(out_dir).as_posix()})", ""]
    return atomic_write_text(out_dir / "report.md", "\n".join(lines))
