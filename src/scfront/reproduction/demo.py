"""``scfront demo``: a model attacked on the shipped CIFAR-10 sample, offline, in minutes.

Loads the shipped defended model (``scfront.load_pretrained("cifar10_cpu")``) or any model
``scfront.load`` takes (``--model RUN_DIR``, a shipped name, a ``.pt``), evaluates it on the
first ``n_images`` images of the shipped sample (:mod:`.sample`) with clean accuracy, PGD-Linf
8/255 and APGD-CE 8/255 (AutoAttack cascade; BPDA with the model's rules for a defended model)
through :func:`scfront.evaluation.evaluate`, and returns the results and the report's path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from scfront.config import EPS_8
from scfront.errors import CheckpointError, ConfigError

DEFAULT_MODEL = "cifar10_cpu"
# The demo's budget: PGD as in the paper (40 steps of 1/255, one restart), APGD-CE with 50
# iterations (half the paper's), so that a defended model on 100 images takes minutes on a CPU.
DEMO_ATTACKS = (f"pgd-linf:eps={EPS_8!r}:steps=40:restarts=1", f"apgd-ce:eps={EPS_8!r}:steps=50")
DEMO_IMAGES = 100


@dataclass(frozen=True)
class DemoSettings:
    model: str | None = None
    out_dir: Path | None = None  # None: default_demo_dir(model, n_images), under the cache
    n_images: int = DEMO_IMAGES
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


def resolve_model(name_or_dir: str | None, device: str = "cpu") -> tuple[nn.Module, str]:
    """(model in eval mode, display name) for ``--model``: any spec of ``scfront.load`` (None:
    the shipped defended model)."""
    from scfront.models import list_pretrained
    from scfront.models.loader import ModelSpec, SpecKind, load, resolve_spec

    if name_or_dir is None:
        if DEFAULT_MODEL not in list_pretrained():
            raise CheckpointError(
                f"the shipped model {DEFAULT_MODEL!r} is not in this installation; run the demo with a "
                "saved model: scfront demo --model RUN_DIR (e.g. a folder written by scfront train)")
        spec = ModelSpec(SpecKind.PRETRAINED, DEFAULT_MODEL)
    else:
        try:
            spec = resolve_spec(name_or_dir)
        except ConfigError as exc:
            raise ConfigError(f"--model {name_or_dir!r} is neither a saved model nor another spec "
                              f"scfront.load takes ({exc})") from None
    return load(spec, device=device), spec.display_name


def run_demo(settings: DemoSettings) -> tuple[dict[str, Any], Path]:
    """Evaluate; returns (results.json object, path of report.md). Resumes in ``out_dir``."""
    from scfront.evaluation import EvalData, build_suite, evaluate
    from scfront.reproduction.sample import load_sample

    sample = load_sample()
    n_total = int(sample.labels.shape[0])
    if not 1 <= settings.n_images <= n_total:
        raise ConfigError(f"--n-images must be in [1, {n_total}] (the shipped sample's size), "
                          f"got {settings.n_images}")
    model, name = resolve_model(settings.model, settings.device)
    n = settings.n_images
    data = EvalData(sample.indices[:n], sample.images[:n], sample.labels[:n])
    attacks = build_suite(DEMO_ATTACKS)
    out_dir = settings.out_dir if settings.out_dir is not None else default_demo_dir(settings.model, n)
    results = evaluate(model, data, attacks, out_dir, model_name=name, subset_seed=sample.subset_seed,
                       batch_size=n, cascade=True, checks=False, device=settings.device,
                       progress=settings.progress)
    if results is None:  # pragma: no cover - no shards here
        raise ConfigError("the demo evaluation did not complete")
    return results, out_dir / "report.md"


def format_results(results: dict[str, Any]) -> str:
    """The printed table: clean accuracy, then the accuracy after each attack of the cascade."""
    lines = [f"model {results['model']}: {results['n_images']} CIFAR-10 test images",
             f"{'':<28}{'accuracy':>10}{'seconds':>10}",
             f"{'clean':<28}{100 * results['clean_accuracy']:>9.1f}%{results.get('clean_seconds', 0.0):>10.1f}"]
    for a in results["attacks"]:
        label = f"+ {a['name']} {a['norm']} {a['eps'] * 255:.0f}/255" if a["norm"] == "Linf" else a["name"]
        lines.append(f"{label:<28}{100 * a['robust_accuracy']:>9.1f}%{a['seconds']:>10.1f}")
    lines.append("(an upper bound on robust accuracy: longer gradient attacks and the black-box Square "
                 "attack break far more of this model; README, 'How robust is the defense?')")
    return "\n".join(lines)
