"""``scfront demo``: a model attacked on a test sample shipped with scfront, offline, in minutes.

Loads the shipped defended model (``scfront.load_pretrained("cifar10_cpu")``) or any model
``scfront.load`` takes (``--model RUN_DIR``, a shipped name such as ``imagenette_cpu``, a
``.pt``), evaluates it on the first ``n_images`` images of the shipped sample of the model's
dataset (:mod:`.sample`: the dataset its model card names; CIFAR-10 for a model without a card)
with clean accuracy, PGD-Linf 8/255 and APGD-CE 8/255 (AutoAttack cascade; BPDA with the model's
rules for a defended model) through :func:`scfront.evaluation.evaluate`, and returns the results
and the report's path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from scfront.config import EPS_8
from scfront.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from scfront.models.loader import ModelSpec

DEFAULT_MODEL = "cifar10_cpu"
# The demo's budget: PGD as in the paper (40 steps of 1/255, one restart), APGD-CE with 50
# iterations (half the paper's), so that a defended model on 100 images takes minutes on a CPU.
DEMO_ATTACKS = (f"pgd-linf:eps={EPS_8!r}:steps=40:restarts=1", f"apgd-ce:eps={EPS_8!r}:steps=50")
DEMO_IMAGES = 100
# Images when --n-images is not given: the 160x160 Imagenette defense costs about 30x a CIFAR-10
# one per image, so its demo attacks 20 images in about the time CIFAR-10's takes for 100.
DEFAULT_IMAGES = {"cifar10": DEMO_IMAGES, "imagenette": 20}
DATASET_TITLES = {"cifar10": "CIFAR-10 test images", "imagenette": "Imagenette val images (subset copy)"}


@dataclass(frozen=True)
class DemoSettings:
    model: str | None = None
    out_dir: Path | None = None  # None: default_demo_dir(model, n_images), under the cache
    n_images: int | None = None  # None: DEFAULT_IMAGES of the model's dataset
    device: str = "cpu"
    progress: bool = True


def default_demo_dir(model: str | None, n_images: int) -> Path:
    """Where ``scfront demo`` writes without ``--out``: ``<cache>/demo/<model>-n<N>``.

    One folder per model and sample size, so that any two demo commands can run one after the
    other (each resumes only its own evaluation). ``<model>`` is the shipped name, or for a path
    its folder name and a short hash of its absolute path (two folders of the same name differ).
    """
    from scfront.data.cache import cache_dir

    if model is None:
        key = "cifar10_cpu"
    elif Path(model).exists():
        folder = Path(model).resolve()
        folder = folder.parent if folder.is_file() else folder  # a model file and its folder: one model
        key = f"{folder.name}-{hashlib.sha256(str(folder).encode('utf-8')).hexdigest()[:8]}"
    else:
        key = model
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
    return cache_dir() / "demo" / f"{safe}-n{n_images}"


def _dataset_of(spec: "ModelSpec") -> str:
    """The dataset the model card of a saved or shipped model names; CIFAR-10 otherwise (the
    original ResNet-32 checkpoints, factories)."""
    from scfront.models.loader import SpecKind
    from scfront.models.saving import pretrained_dir, read_card

    if spec.kind is SpecKind.PRETRAINED:
        card = read_card(pretrained_dir(spec.target))
    elif spec.kind is SpecKind.SAVED:
        card = read_card(spec.path.parent if spec.path.is_file() else spec.path)
    else:
        return "cifar10"
    return str(card.get("dataset", {}).get("dataset", "cifar10"))


def resolve_spec_or_default(name_or_dir: str | None) -> "ModelSpec":
    """The :class:`~scfront.models.loader.ModelSpec` of ``--model`` (None: the shipped defense)."""
    from scfront.models import list_pretrained
    from scfront.models.loader import ModelSpec, SpecKind, resolve_spec

    if name_or_dir is None:
        if DEFAULT_MODEL not in list_pretrained():
            raise CheckpointError(
                f"the shipped model {DEFAULT_MODEL!r} is not in this installation; run the demo with a "
                "saved model: scfront demo --model RUN_DIR (e.g. a folder written by scfront train)")
        return ModelSpec(SpecKind.PRETRAINED, DEFAULT_MODEL)
    try:
        return resolve_spec(name_or_dir)
    except ConfigError as exc:
        raise ConfigError(f"--model {name_or_dir!r} is neither a saved model nor another spec "
                          f"scfront.load takes ({exc})") from None


def run_demo(settings: DemoSettings) -> tuple[dict[str, Any], Path]:
    """Evaluate; returns (results.json object, path of report.md). Resumes in ``out_dir``."""
    from scfront.evaluation import EvalData, build_suite, evaluate
    from scfront.models.loader import load
    from scfront.reproduction.sample import load_sample

    spec = resolve_spec_or_default(settings.model)
    dataset = _dataset_of(spec)
    sample = load_sample(dataset=dataset)
    n_total = int(sample.labels.shape[0])
    n = DEFAULT_IMAGES.get(dataset, DEMO_IMAGES) if settings.n_images is None else settings.n_images
    if not 1 <= n <= n_total:
        raise ConfigError(f"--n-images must be in [1, {n_total}] (the shipped {dataset} sample's size), "
                          f"got {n}")
    model, name = load(spec, device=settings.device), spec.display_name
    data = EvalData(sample.indices[:n], sample.images[:n], sample.labels[:n])
    attacks = build_suite(DEMO_ATTACKS)
    out_dir = settings.out_dir if settings.out_dir is not None else default_demo_dir(settings.model, n)
    results = evaluate(model, data, attacks, out_dir, model_name=name, dataset=dataset,
                       subset_seed=sample.subset_seed, batch_size=n, cascade=True, checks=False,
                       device=settings.device, progress=settings.progress)
    if results is None:  # pragma: no cover - no shards here
        raise ConfigError("the demo evaluation did not complete")
    return results, out_dir / "report.md"


def format_results(results: dict[str, Any]) -> str:
    """The printed table: clean accuracy, then the accuracy after each attack of the cascade."""
    title = DATASET_TITLES.get(results.get("dataset", "cifar10"), "test images")
    lines = [f"model {results['model']}: {results['n_images']} {title}",
             f"{'':<28}{'accuracy':>10}{'seconds':>10}",
             f"{'clean':<28}{100 * results['clean_accuracy']:>9.1f}%{results.get('clean_seconds', 0.0):>10.1f}"]
    for a in results["attacks"]:
        label = f"+ {a['name']} {a['norm']} {a['eps'] * 255:.0f}/255" if a["norm"] == "Linf" else a["name"]
        lines.append(f"{label:<28}{100 * a['robust_accuracy']:>9.1f}%{a['seconds']:>10.1f}")
    lines.append("(an upper bound on robust accuracy: longer gradient attacks and the black-box Square "
                 "attack break far more of this model; README, 'How robust is the defense?')")
    return "\n".join(lines)
