"""The columns of Table 1 (docs/method.md §7; on Imagenette, :func:`imagenette_columns`) and the
attack budget of each preset: the ONE place where the reproduction says which attack, with which
parameters, makes each column.

A row of the table is one evaluation (``scfront.evaluation.evaluate``) whose attacks are grouped
into these columns, with the AutoAttack cascade inside each column. A column's accuracy is the
per-example worst case over its attacks (for "APGD-CE + APGD-DLR" the accuracy after both, as
AutoAttack reports it; for one attack its accuracy alone): ``columns[key]["accuracy"]`` of the
row's results.json. The table's last column is that evaluation's ``worst_case_accuracy``: an
image counts only if no attack of any column broke it.

Budgets: ``n_images``, ``restarts`` and ``steps`` (of the PGD family) come from the preset's
``[evaluation]`` section; the numbers the config has no field for (APGD iterations, Square
queries, Boundary steps) are in :data:`ATTACK_BUDGETS`, one row per preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scfront.config import EPS_8, PRESETS, EvalConfig
from scfront.errors import ConfigError

# L2 radius of the Boundary column: the paper's L2 column radius, so that its ε-constrained
# accuracy is comparable with PGD-L2.
BOUNDARY_EPS = 0.6


@dataclass(frozen=True)
class AttackBudget:
    """Per-preset sizes of the attacks the evaluation config has no field for.

    Attributes:
        apgd_steps: APGD iterations (paper: 100, the original's custom AutoAttack).
        square_queries: Square attack queries per image (AutoAttack's standard 5,000).
        boundary_steps: Boundary attack steps (paper: 25,000).
        sweep_images: images of the accuracy-vs-ε sweeps (first of the subset).
        start_pool: test images the Boundary attack may start from (the first ones of the test
            set; None = all). The pool is labelled by the model once, a cost for small runs.
    """

    apgd_steps: int
    square_queries: int
    boundary_steps: int
    sweep_images: int
    start_pool: int | None = None


ATTACK_BUDGETS: dict[str, AttackBudget] = {
    "smoke": AttackBudget(apgd_steps=5, square_queries=20, boundary_steps=20, sweep_images=8,
                          start_pool=256),
    # cpu: the paper's APGD; Square and Boundary cut to what a 2-core CPU does on 1,000 images
    "cpu": AttackBudget(apgd_steps=100, square_queries=1000, boundary_steps=1000,
                         sweep_images=200),
    "paper": AttackBudget(apgd_steps=100, square_queries=5000, boundary_steps=25000,
                           sweep_images=1000),
}


# Imagenette's budgets: its images cost about 30x CIFAR-10's per attack step (160x160 inputs,
# EfficientNet-B0 and the 1,000-atom frontend), so Square has fewer queries at the cpu preset and
# the accuracy-vs-ε sweep (Linf only) uses fewer images. No Boundary column.
IMAGENETTE_BUDGETS: dict[str, AttackBudget] = {
    "smoke": ATTACK_BUDGETS["smoke"],
    "cpu": AttackBudget(apgd_steps=100, square_queries=1000, boundary_steps=0, sweep_images=100),
    "paper": ATTACK_BUDGETS["paper"],
}
DATASETS = ("cifar10", "imagenette")
# Norms of the accuracy-vs-ε sweeps (scfront.reproduction.sweep.EPS_GRIDS) per dataset.
SWEEP_NORMS = {"cifar10": ("Linf", "L2", "L1"), "imagenette": ("Linf",)}


@dataclass(frozen=True)
class Column:
    """One column of Table 1.

    Attributes:
        key: short identifier (the column label of its attacks in the row's evaluation).
        title: header in report.md.
        attacks: attack items for :func:`scfront.evaluation.build_suite` (``NAME:k=v``), in
            cascade order.
        pgd_budget: the preset's ``restarts`` and ``steps`` apply (PGD family).
        median_norm: also report the median norm of the unconstrained adversarials (Boundary).
        own_evaluation: evaluated as an evaluation of its own, beside the row's
            (``eval/<row>--<key>/``), because its radius differs from the row's threat model:
            its accuracy is not part of the row's per-example worst case (an evaluation may
            hold each attack once, and the row's worst case is at the row's radius).
    """

    key: str
    title: str
    attacks: tuple[str, ...]
    pgd_budget: bool = False
    median_norm: bool = False
    own_evaluation: bool = False


def table1_columns(budget: AttackBudget) -> tuple[Column, ...]:
    """The attack columns of Table 1 (clean and worst case are added by the table itself)."""
    eps = f"eps={EPS_8!r}"
    return (
        Column("pgd-linf", "PGD-Linf 8/255", (f"pgd-linf:{eps}",), pgd_budget=True),
        Column("cw-linf", "CW-Linf 8/255", (f"cw-linf:{eps}",), pgd_budget=True),
        Column("pgd-l2", "PGD-L2 0.6", ("pgd-l2:eps=0.6:step_size=0.075",), pgd_budget=True),
        Column("pgd-l1", "PGD-L1 30 (faithful)", ("pgd-l1:eps=30.0:step_size=3.75",), pgd_budget=True),
        Column("pgd-l1-sparse", "sparse L1 30", ("pgd-l1-sparse:eps=30.0:step_size=3.75",),
               pgd_budget=True),
        Column("apgd", "APGD-CE + APGD-DLR 8/255",
               (f"apgd-ce:{eps}:steps={budget.apgd_steps}", f"apgd-dlr:{eps}:steps={budget.apgd_steps}")),
        Column("square", "Square 8/255", (f"square:norm=Linf:{eps}:queries={budget.square_queries}",)),
        Column("boundary", f"Boundary (L2 ≤ {BOUNDARY_EPS})",
               (f"boundary:eps={BOUNDARY_EPS}:steps={budget.boundary_steps}",), median_norm=True),
    )


def imagenette_columns(budget: AttackBudget) -> tuple[Column, ...]:
    """The attack columns of the Imagenette table: PGD-Linf at 2/255, 4/255 and 8/255 (images of
    ImageNet scale are usually attacked at the smaller radii too), APGD-CE + APGD-DLR and Square
    at 8/255. The 8/255 PGD column keeps the key ``pgd-linf`` (the example figure's); the smaller
    radii are evaluations of their own (:attr:`Column.own_evaluation`), and the row's worst case
    is the one at 8/255."""
    eps = f"eps={EPS_8!r}"
    return (
        Column("pgd-linf-2", "PGD-Linf 2/255", (f"pgd-linf:eps={2 / 255!r}",), pgd_budget=True,
               own_evaluation=True),
        Column("pgd-linf-4", "PGD-Linf 4/255", (f"pgd-linf:eps={4 / 255!r}",), pgd_budget=True,
               own_evaluation=True),
        Column("pgd-linf", "PGD-Linf 8/255", (f"pgd-linf:{eps}",), pgd_budget=True),
        Column("apgd", "APGD-CE + APGD-DLR 8/255",
               (f"apgd-ce:{eps}:steps={budget.apgd_steps}", f"apgd-dlr:{eps}:steps={budget.apgd_steps}")),
        Column("square", "Square 8/255", (f"square:norm=Linf:{eps}:queries={budget.square_queries}",)),
    )


@dataclass(frozen=True)
class Table1Plan:
    """What the table evaluates at one preset: subset size, PGD budget, and the columns."""

    preset: str
    evaluation: EvalConfig
    budget: AttackBudget
    columns: tuple[Column, ...] = field(default=())
    dataset: str = "cifar10"

    @property
    def sweep_norms(self) -> tuple[str, ...]:
        return SWEEP_NORMS[self.dataset]

    def suite_overrides(self, column: Column) -> dict[str, Any]:
        """Suite-wide overrides of :func:`scfront.evaluation.build_suite` for ``column``."""
        if not column.pgd_budget:
            return {}
        return {"restarts": self.evaluation.restarts, "steps": self.evaluation.steps}


def table1_plan(preset: str, evaluation: EvalConfig, dataset: str = "cifar10") -> Table1Plan:
    """The columns and budget of Table 1 for ``preset`` with its ``[evaluation]`` section, on
    ``dataset`` (CIFAR-10: the paper's Table 1; Imagenette: :func:`imagenette_columns`)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if dataset == "imagenette":
        budget = IMAGENETTE_BUDGETS[preset]
        return Table1Plan(preset, evaluation, budget, imagenette_columns(budget), dataset)
    budget = ATTACK_BUDGETS[preset]
    return Table1Plan(preset, evaluation, budget, table1_columns(budget))
