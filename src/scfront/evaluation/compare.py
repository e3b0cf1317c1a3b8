"""Finished evaluations side by side, and stored adversarials checked against a model again.

Two questions that come up after ``scfront evaluate`` has finished, answered from its public
outputs only (``results.json`` and ``adversarials.safetensors``, docs/evaluation.md §7; never
the ``state/`` folder):

- :func:`compare_evaluations` (``scfront evaluate-compare A B ...``): several evaluations of the
  same images (same dataset and subset indices) — e.g. one suite run on two devices, or
  different attacks on one model — and which images each left robust: robust in all of them
  (the per-example worst case across evaluations), robust in one only, counts and indices.
- :func:`repredict` (``scfront evaluate-repredict EVAL MODEL``): every stored adversarial
  predicted again by a model in eval mode, batch by batch, against the verdict stored with it.
  For the model that was evaluated the two agree; a disagreement means the evaluation decided
  success on a different function (a model left in training mode, batch-dependent layers, an
  unstable kernel), or that ``MODEL`` is another model — a transfer check.

An image is *robust* in an evaluation when its clean prediction is right and no attack broke it
(``broken_by == -1`` in results.json); with ``after=NAME`` only that attack and the ones listed
before it count (``broken_by`` is -1 or the position of a later attack). That stage is defined
with and without the cascade: ``broken_by`` records the first attack, in suite order, that
broke the image.

The two subcommands' parsers and handlers are at the end (:func:`register_commands`, called by
:mod:`scfront.evaluation.cli`); they are the only code here that prints.
"""

from __future__ import annotations

import argparse
import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from scfront.errors import ConfigError, InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

# keys of results.json this module reads (the rest of the schema is not needed here)
_REQUIRED = ("model", "dataset", "n_images", "clean_accuracy", "attacks", "indices", "broken_by")


# --------------------------------------------------------------------------- reading
def results_path(path: str | Path) -> Path:
    """The results.json of an evaluation: ``path`` itself if it is a file, else inside the folder."""
    from scfront.evaluation.results import RESULTS_FILE

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} does not exist")
    return path if path.is_file() else path / RESULTS_FILE


def read_results(path: str | Path) -> dict[str, Any]:
    """The parsed results.json of a finished evaluation (folder or the file itself).

    Raises:
        ConfigError: ``path`` is missing, or the folder holds no results.json (unfinished
            evaluation, or shards not merged yet).
        InputError: the file is not a results.json written by ``scfront evaluate``.
    """
    file = results_path(path)
    if not file.is_file():
        raise ConfigError(f"{Path(path)} holds no {file.name}: not a finished evaluation (resume it "
                          f"with the same `scfront evaluate` command, or `scfront evaluate-merge` its shards)")
    try:
        results = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{file} is not valid JSON ({exc})") from None
    missing = [key for key in _REQUIRED if not isinstance(results, dict) or key not in results]
    if missing:
        raise InputError(f"{file} is not a results.json of scfront evaluate (no {', '.join(missing)})")
    if len(results["indices"]) != len(results["broken_by"]) or len(results["indices"]) != results["n_images"]:
        raise InputError(f"{file}: indices, broken_by and n_images disagree in length")
    return results


def attack_position(results: dict[str, Any], name: str, where: str = "the evaluation") -> int:
    """Position of the attack ``name`` in the suite of ``results``; ConfigError if absent."""
    names = [a["name"] for a in results["attacks"]]
    if name not in names:
        raise ConfigError(f"no attack {name!r} in {where}; its attacks: {', '.join(names) or 'none'}")
    return names.index(name)


def robust_flags(results: dict[str, Any], after: str | None = None, where: str = "the evaluation") -> list[bool]:
    """(N,) per image of the subset, in subset order: robust after every attack, or after the
    attack ``after`` and those before it (see the module docstring)."""
    if after is None:
        return [b == -1 for b in results["broken_by"]]
    position = attack_position(results, after, where)
    return [b == -1 or b > position for b in results["broken_by"]]


# --------------------------------------------------------------------------- comparing
@dataclass(frozen=True)
class ComparedEvaluation:
    """One evaluation of a comparison.

    Attributes:
        label: its short name in the printed comparison. path: where it was read from.
        model: the evaluated model's display name (results.json ``model``).
        clean_correct: images classified correctly before any attack.
        robust: (N,) bool per image in subset order (see :func:`robust_flags`).
        attacks: the names of the attacks that count (all, or up to ``after``).
        queries, seconds: summed over those attacks.
    """

    label: str
    path: Path
    model: str
    clean_correct: int
    robust: tuple[bool, ...]
    attacks: tuple[str, ...]
    queries: int
    seconds: float


@dataclass(frozen=True)
class Comparison:
    """Evaluations of the same images; ``indices`` (N,) are their dataset indices in subset order."""

    dataset: str
    indices: tuple[int, ...]
    after: str | None
    evaluations: tuple[ComparedEvaluation, ...]

    @property
    def n_images(self) -> int:
        return len(self.indices)

    def robust_in_all(self) -> list[int]:
        """Dataset indices of the images every evaluation left robust."""
        return [i for k, i in enumerate(self.indices) if all(e.robust[k] for e in self.evaluations)]

    def robust_only_in(self, position: int) -> list[int]:
        """Dataset indices of the images evaluation ``position`` left robust and no other did."""
        return [i for k, i in enumerate(self.indices)
                if self.evaluations[position].robust[k]
                and not any(e.robust[k] for j, e in enumerate(self.evaluations) if j != position)]

    def robust_in_some(self) -> list[int]:
        """Dataset indices of the images at least one evaluation, but not every one, left robust."""
        return [i for k, i in enumerate(self.indices)
                if any(e.robust[k] for e in self.evaluations) and not all(e.robust[k] for e in self.evaluations)]


def default_labels(count: int) -> list[str]:
    """``A``, ``B``, ... (then ``E27``, ``E28``, ... past the alphabet)."""
    letters = string.ascii_uppercase
    return [letters[k] if k < len(letters) else f"E{k + 1}" for k in range(count)]


def compare_evaluations(paths: Sequence[str | Path], labels: Sequence[str] | None = None,
                        after: str | None = None) -> Comparison:
    """Read the evaluations in ``paths`` (folders or results.json files) and line them up.

    Args:
        paths: two or more finished evaluations of the same dataset and subset (same indices in
            the same order); their models and attacks may differ.
        labels: one short name each (default ``A``, ``B``, ...); must be distinct.
        after: count only this attack and the attacks before it in each suite (it must be in
            every evaluation); default: every attack (the evaluation's worst case).

    Raises:
        ConfigError: fewer than two evaluations, labels that do not fit, a missing file or
            attack, or evaluations of different images.
        InputError: a file that is not a results.json of ``scfront evaluate``.
    """
    if len(paths) < 2:
        raise ConfigError("evaluate-compare needs at least two evaluations")
    labels = list(labels) if labels is not None else default_labels(len(paths))
    if len(labels) != len(paths):
        raise ConfigError(f"{len(labels)} names for {len(paths)} evaluations; give one name each")
    if len(set(labels)) != len(labels) or not all(label.strip() for label in labels):
        raise ConfigError(f"the names must be distinct and non-empty, got {', '.join(labels)}")
    first_path, first = Path(paths[0]), read_results(paths[0])
    evaluations = []
    for label, raw in zip(labels, paths):
        path = Path(raw)
        results = first if path == first_path else read_results(path)
        if results["dataset"] != first["dataset"]:
            raise ConfigError(f"{path} evaluated {results['dataset']} but {first_path} evaluated "
                              f"{first['dataset']}; compare evaluations of the same images")
        if results["indices"] != first["indices"]:
            raise ConfigError(
                f"{path} and {first_path} evaluated different images ({results['n_images']} vs "
                f"{first['n_images']} images, subset seed {results.get('subset_seed')} vs "
                f"{first.get('subset_seed')}); compare evaluations of the same subset")
        attacks = results["attacks"]
        if after is not None:
            attacks = attacks[:attack_position(results, after, str(path)) + 1]
        correct = sum(b != -2 for b in results["broken_by"])
        evaluations.append(ComparedEvaluation(
            label=label, path=path, model=str(results["model"]), clean_correct=correct,
            robust=tuple(robust_flags(results, after, str(path))),
            attacks=tuple(a["name"] for a in attacks),
            queries=sum(int(a.get("queries", 0)) for a in attacks),
            seconds=sum(float(a.get("seconds", 0.0)) for a in attacks)))
    return Comparison(str(first["dataset"]), tuple(first["indices"]), after, tuple(evaluations))


def _count(part: int, whole: int) -> str:
    return f"{part} ({100 * part / whole:.1f} %)" if whole else str(part)


def format_comparison(comparison: Comparison, show_indices: bool = False) -> str:
    """The comparison as plain text: one line per evaluation, then the robust sets."""
    n = comparison.n_images
    stage = f"{comparison.after} or any attack before it" if comparison.after else "any attack"
    lines = [f"{len(comparison.evaluations)} evaluations of the same {n} {comparison.dataset} images; "
             f"robust = classified correctly and not broken by {stage}"]
    for e in comparison.evaluations:
        lines.append(f"{e.label}: {e.path} (model {e.model}; {' → '.join(e.attacks) or 'no attacks'}): "
                     f"clean {_count(e.clean_correct, n)}, robust {_count(sum(e.robust), n)}, "
                     f"{e.queries} queries, {e.seconds:.0f} s")

    def add(title: str, indices: list[int]) -> None:
        lines.append(f"{title}: {_count(len(indices), n)}")
        if show_indices and indices:
            lines.append("  indices: " + " ".join(str(i) for i in indices))

    add("robust in all", comparison.robust_in_all())
    for position, e in enumerate(comparison.evaluations):
        add(f"robust only in {e.label}", comparison.robust_only_in(position))
    if len(comparison.evaluations) > 2:
        add("robust in some but not all", comparison.robust_in_some())
    return "\n".join(lines)


# --------------------------------------------------------------------------- re-predicting
@dataclass(frozen=True)
class Reprediction:
    """One attack's stored adversarials predicted again.

    Attributes:
        attack: its name. norm, eps: the ball its stored adversarials lie in.
        attacked: images it ran on (its stored adversarials).
        stored_broken: how many the evaluation recorded as broken (misclassified at ε).
        misclassified: how many the model misclassifies now.
        differ: (K,) dataset indices of the images where the two verdicts differ.
    """

    attack: str
    norm: str
    eps: float
    attacked: int
    stored_broken: int
    misclassified: int
    differ: tuple[int, ...]


def repredict(folder: str | Path, model: "nn.Module", *, batch_size: int = 250,
              device: "torch.device | str" = "cpu") -> tuple[Reprediction, ...]:
    """Predict every adversarial stored by the evaluation in ``folder`` with ``model`` again.

    Args:
        folder: a finished evaluation (its ``adversarials.safetensors`` is read).
        model: maps (B, C, H, W) float32 in [0, 1] to logits, already on ``device``; run in eval
            mode (every submodule's own mode is restored afterwards), without gradients.
        batch_size: images per forward pass (1 shows batch effects: each image alone), ≥ 1.

    Returns:
        One :class:`Reprediction` per attack, in suite order.
    """
    import torch

    from scfront.attacks.blackbox.stored import load_adversarials
    from scfront.evaluation.results import ADVERSARIALS_FILE
    from scfront.models.layers import eval_mode

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    folder = Path(folder)
    file = folder if folder.is_file() else folder / ADVERSARIALS_FILE
    if not file.is_file():
        raise ConfigError(f"{folder} holds no {ADVERSARIALS_FILE}: not a finished evaluation")
    stored = load_adversarials(file)
    device = torch.device(device)
    out = []
    with eval_mode(model), torch.no_grad():
        for item in stored.attacks:
            labels = stored.labels[item.positions]
            wrong = torch.zeros_like(item.success)
            for start in range(0, int(item.positions.numel()), batch_size):
                rows = slice(start, start + batch_size)
                logits = model(item.x_adv[rows].to(device).float())
                wrong[rows] = logits.argmax(1).cpu() != labels[rows]
            differ = stored.indices[item.positions[wrong != item.success]]
            out.append(Reprediction(item.name, item.norm, item.eps, int(item.positions.numel()),
                                    int(item.success.sum()), int(wrong.sum()),
                                    tuple(int(i) for i in differ.tolist())))
    return tuple(out)


def format_repredictions(repredictions: Sequence[Reprediction], show_indices: bool = False) -> str:
    """One line per attack: attacked, broken by the evaluation's verdict, misclassified now, differ."""
    from scfront.evaluation.report import _eps as radius  # the report's spelling: 8/255, 0.5

    lines = []
    for r in repredictions:
        lines.append(f"{r.attack} ({r.norm} ≤ {radius(r.norm, r.eps)}): {r.attacked} images attacked; "
                     f"broken according to the evaluation: {r.stored_broken}; its stored adversarials "
                     f"misclassified now: {r.misclassified}; images where the two differ: {len(r.differ)}")
        if show_indices and r.differ:
            lines.append("  indices: " + " ".join(str(i) for i in r.differ))
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line
def register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate-compare`` and ``evaluate-repredict`` to the ``scfront`` command."""
    c = subparsers.add_parser(
        "evaluate-compare", help="compare which images two or more evaluations left robust",
        description="Line up finished evaluations of the same images (same dataset and subset) "
                    "and count the images each left robust: robust in all (the per-example "
                    "worst case across them), robust in only one, in some but not all. Reads "
                    "each EVAL's results.json; the models and attacks may differ.")
    c.add_argument("evaluations", metavar="EVAL", type=Path, nargs="+",
                   help="evaluation folders (or their results.json), at least two")
    c.add_argument("--names", default=None, metavar="A,B,...",
                   help="comma-separated short names, one per EVAL (default: A, B, ...)")
    c.add_argument("--after", default=None, metavar="ATTACK",
                   help="count only this attack and the ones before it in each suite "
                        "(default: every attack)")
    c.add_argument("--indices", action="store_true", help="also list the dataset indices of each set")
    c.set_defaults(handler=_compare_command)

    r = subparsers.add_parser(
        "evaluate-repredict", help="predict an evaluation's stored adversarials again with a model",
        description="Load MODEL afresh, in eval mode, predict every adversarial stored in "
                    "EVAL/adversarials.safetensors and compare with the verdict the evaluation "
                    "stored. For the evaluated model the two agree; exit status 1 if any image "
                    "differs (a model evaluated in a different state, batch effects with "
                    "--batch-size 1, or another MODEL: then it is a transfer check).")
    r.add_argument("evaluation", metavar="EVAL", type=Path, help="a finished evaluation folder")
    r.add_argument("model", metavar="MODEL", help="the model to predict with (as `scfront evaluate` takes it)")
    r.add_argument("--batch-size", type=int, default=250, help="images per forward pass (default: 250)")
    r.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    r.add_argument("--indices", action="store_true", help="also list the dataset indices that differ")
    r.set_defaults(handler=_repredict_command)


def _compare_command(args: argparse.Namespace) -> int:
    names = None if args.names is None else [name.strip() for name in args.names.split(",")]
    comparison = compare_evaluations(args.evaluations, names, args.after)
    print(format_comparison(comparison, args.indices))
    return 0


def _repredict_command(args: argparse.Namespace) -> int:
    import scfront
    from scfront.evaluation.spec import model_digest

    results = read_results(args.evaluation)
    model = scfront.load(args.model).to(args.device)
    if model_digest(model) != results.get("model_sha256"):
        print(f"note: {args.model} is not the evaluated model ({results['model']!r}): its parameters "
              "differ, so this is a transfer check")
    repredictions = repredict(args.evaluation, model, batch_size=args.batch_size, device=args.device)
    print(format_repredictions(repredictions, args.indices))
    return 1 if any(r.differ for r in repredictions) else 0
