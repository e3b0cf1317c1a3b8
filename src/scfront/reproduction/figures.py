"""The figures of the Table 1 report, computed from the evaluated models and folders.

- accuracy vs ε for each norm and model (:mod:`.sweep`, resumable);
- example attacks: PGD-Linf (the table's column) on the first images, defense preferred;
- the dictionary atoms of the defense's configuration;
- the BPDA surrogate of the activation at the defense's threshold;
- the loss landscape around the first subset image for every model run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from scfront.config import RunConfig
from scfront.reproduction import plots
from scfront.reproduction.columns import Table1Plan
from scfront.reproduction.sweep import SWEEP_FILE, accuracy_sweep

log = logging.getLogger(__name__)

N_EXAMPLES = 4


def _example_figure(models: Mapping[str, nn.Module], data: Any, plan: Table1Plan, plots_dir: Path,
                    device: str, seed: int) -> Path:
    """PGD-Linf of the table's column on the first subset images of the defense (else the first
    model): attacked afresh rather than read from the evaluation, which only attacks correctly
    classified images (an undertrained model may have none)."""
    from scfront.attacks.base import predict
    from scfront.evaluation import build_suite
    from scfront.evaluation.spec import unit_generator

    name = "defense" if "defense" in models else next(iter(models))
    column = next(c for c in plan.columns if c.key == "pgd-linf")
    (attack,) = build_suite(column.attacks, plan.suite_overrides(column))
    n = min(N_EXAMPLES, int(data.labels.shape[0]))
    x, y = data.batch(slice(0, n), torch.device(device))
    model = models[name]
    result = attack(model, x, y, generator=unit_generator(seed, "examples", name, device=device))
    return plots.plot_examples(x, result.x_adv, y, predict(model, x), predict(model, result.x_adv),
                               plots_dir / f"examples_{name}.png", title=f"PGD-Linf 8/255 on {name}")


def table1_figures(models: Mapping[str, nn.Module], data: Any, plan: Table1Plan, out: Path,
                   defense: RunConfig, device: str, seed: int, stored_sweeps: bool = False) -> dict[str, Path]:
    """Draw every figure into ``out/plots``; returns {title: path} in report order.

    ``stored_sweeps``: plot the sweep points stored in ``out/sweeps/<row>/sweep.json`` as they
    are (rows without one are left out of that figure) instead of running the missing ones."""
    from scfront.dictionary import get_dictionary, plot_atoms

    plots_dir = out / "plots"
    figures: dict[str, Path] = {}
    if models:
        n = min(plan.budget.sweep_images, int(data.labels.shape[0]))
        x, y = data.batch(slice(0, n), torch.device(device))
        if stored_sweeps:
            sweeps = {name: json.loads((out / "sweeps" / name / SWEEP_FILE).read_text(encoding="utf-8"))
                      for name in models if (out / "sweeps" / name / SWEEP_FILE).is_file()}
        else:
            sweeps = {name: accuracy_sweep(model, x, y, out / "sweeps" / name, steps=plan.evaluation.steps,
                                           seed=seed, norms=plan.sweep_norms, batch_size=plan.evaluation.batch_size)
                      for name, model in models.items()}
        figures["Accuracy vs ε (PGD, step ε/8)"] = plots.plot_accuracy_vs_eps(sweeps, plots_dir / "accuracy_vs_eps.png")
        figures["Example attacks"] = _example_figure(models, data, plan, plots_dir, device, seed)
    dictionary = get_dictionary(defense.frontend.dictionary)
    figures["Dictionary atoms"] = plot_atoms(dictionary, plots_dir / "atoms.png",
                                             title=f"dictionary {defense.frontend.dictionary!r}")
    jump = defense.frontend.beta * defense.frontend.assumed_eps
    figures["BPDA surrogate of the activation"] = plots.plot_bpda_surrogate(plots_dir / "bpda_surrogate.png", jump=jump)
    x0, y0 = data.batch(slice(0, 1), torch.device(device))
    eps = 8.0 / 255.0
    for name, model in models.items():
        gen = torch.Generator().manual_seed(seed)
        landscape = plots.loss_landscape(model, x0, y0, eps, size=11 if plan.preset == "smoke" else 21, generator=gen)
        figures[f"Loss landscape ({name})"] = plots.plot_loss_landscape(
            landscape, plots_dir / f"loss_landscape_{name}.png", eps, title=f"{name}, first subset image")
    return figures
