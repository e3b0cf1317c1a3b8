"""Save and load trained models: ``model.safetensors`` + ``model_card.json`` + ``config.toml``.

A saved model is a folder (normally the training run's folder)::

    model.safetensors   the state_dict (weights, BatchNorm statistics, dictionary atoms)
    model_card.json     architecture, parameter count, dictionary name and sha256, frontend
                        settings, training settings, dataset, metrics, scfront version, time
    config.toml         the resolved run configuration the model is rebuilt from

:func:`load_model` rebuilds the network with :func:`~scfront.models.build_model` from
``config.toml``, checks the dictionary it resolves to against the card's hash, and loads the
weights with strict key matching. Weights are never unpickled (safetensors only). A model whose
``model.classifier`` is ``package.module:factory`` (a user's classifier; the card says
``"classifier_factory": true``) is rebuilt by importing that module and calling the factory, with
no registration: loading it runs that module's code, so such a folder is as trusted as the module.
``scfront.load`` (:mod:`scfront.models.loader`) reads these folders and every other kind of
model spec.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from scfront.config import RunConfig, load_config, save_config, to_dict
from scfront.errors import CheckpointError
from scfront.io import atomic_write, atomic_write_json, read_json_record, sha256_file
from scfront.models.build import build_model
from scfront.models.factory import is_factory_spec
from scfront.models.original import load_state_dict_strict
from scfront.models.randomness import is_randomized, seed_model
from scfront.models.registry import count_parameters
from scfront.version import __version__

if TYPE_CHECKING:
    from scfront.dictionary.core import Dictionary

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
CONFIG_FILE = "config.toml"
CARD_FORMAT = 1
PRETRAINED_PACKAGE_DIR = ("assets", "models")


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (else ``model``)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def _without_ensemble(model: nn.Module) -> nn.Module:
    """The single network inside an :class:`~scfront.models.ensemble.Ensemble` (else ``model``):
    what is saved; the number of passes is the configuration's ``model.ensemble_samples``."""
    from scfront.models.ensemble import Ensemble

    return model.model if isinstance(model, Ensemble) else model


def find_encoder(model: nn.Module) -> Any:
    """The frontend encoder inside ``model``, or None for a plain classifier."""
    from scfront.frontend.encoder import Encoder

    return next((m for m in model.modules() if isinstance(m, Encoder)), None)


def _named_dictionary(config: RunConfig) -> "Dictionary":
    from scfront.dictionary import get_dictionary

    return get_dictionary(config.frontend.dictionary)


def _dictionary_record(model: nn.Module, config: RunConfig,
                       dictionary: "Dictionary | None") -> dict[str, Any] | None:
    encoder = find_encoder(model)
    if not config.frontend.enabled or encoder is None:
        return None
    if dictionary is None:
        # A learnable dictionary has moved away from the file it started from: hash the file.
        dictionary = (_named_dictionary(config) if config.frontend.learnable_dictionary
                      else encoder.dictionary())
    return {
        "name": config.frontend.dictionary,
        "sha256": dictionary.sha256(),
        "n_atoms": dictionary.n_atoms,
        "patch_size": dictionary.patch_size,
        "learnable": config.frontend.learnable_dictionary,
    }


def save_model(model: nn.Module, run_dir: str | Path, config: RunConfig,
               metrics: Mapping[str, Any] | None = None, *, dictionary: "Dictionary | None" = None,
               dataset: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` into ``run_dir`` (created if needed); returns the weights' path.

    Args:
        model: the network :func:`build_model` builds from ``config`` (a DDP wrapper is unwrapped).
        config: the resolved run configuration (written as ``config.toml``).
        metrics: JSON-compatible results to record in the card (e.g. monitor accuracy).
        dictionary: the dictionary the frontend was built from (default: read from the model, or
            for a learnable dictionary the file its config names).
        dataset: extra dataset facts for the card (e.g. number of training images).

    Every file is written atomically; the card is written last.
    """
    run_dir = Path(run_dir)
    model = _without_ensemble(unwrap(model))
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    weights = run_dir / MODEL_FILE
    atomic_write(weights, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    save_config(config, run_dir / CONFIG_FILE)
    card = {
        "format": CARD_FORMAT,
        "scfront_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "architecture": {
            "classifier": config.model.classifier,
            # package.module:factory: loading imports that module (runs its code)
            "classifier_factory": is_factory_spec(config.model.classifier),
            "num_classes": config.model.num_classes,
            "defended": config.frontend.enabled,
            "decoder": config.frontend.decoder.value if config.frontend.enabled else None,
            "image_size": config.data.image_size,
        },
        "parameters": count_parameters(model),
        "dictionary": _dictionary_record(model, config, dictionary),
        "frontend": to_dict(config.frontend) if config.frontend.enabled else None,
        "training": to_dict(config.train),
        "dataset": {"name": config.data.dataset.value, **to_dict(config.data), **dict(dataset or {})},
        "metrics": dict(metrics or {}),
        # > 1: load_model returns Ensemble(model, ensemble_samples) (scfront.models.ensemble)
        "ensemble_samples": config.model.ensemble_samples,
        # the loaded model's own generator: seed_model(model, seed) (scfront.models.randomness)
        "randomness": {"randomized": is_randomized(model), "seed": config.model.random_seed},
        "weights": {"file": MODEL_FILE, "sha256": sha256_file(weights)},
    }
    atomic_write_json(run_dir / CARD_FILE, card)
    return weights


def export_model(run_dir: str | Path, out_dir: str | Path, half: bool = False,
                 dictionary: "Dictionary | None" = None) -> dict[str, Any]:
    """Copy the saved model of ``run_dir`` into the new folder ``out_dir`` (what a package ships:
    weights, card and config, none of the run's checkpoints and logs), optionally with the
    parameters stored in float16.

    Args:
        run_dir: a folder :func:`load_model` reads (it is loaded and checked first).
        out_dir: must not exist; written in a temporary sibling and renamed, so a failure leaves
            nothing behind.
        half: store the floating-point *parameters* in float16 (half the file); buffers (the
            dictionary's atoms, BatchNorm statistics) stay float32, so the frontend and its
            dictionary hash are unchanged. :func:`load_model` casts them back to float32.
        dictionary: as in :func:`load_model`.

    Returns:
        ``{"path", "bytes", "half", "max_abs_logit_change", "relative_logit_change",
        "prediction_changes"}``: the exported folder, its weights' size, and how far its logits
        are from the run's on 16 seeded probe images in [0, 1] (zero without ``half``).

    Raises:
        CheckpointError: what :func:`load_model` raises for ``run_dir``, or ``out_dir`` exists.
    """
    run_dir, out_dir = _model_dir(run_dir), Path(out_dir)
    if out_dir.exists():
        raise CheckpointError(f"{out_dir} exists; export into a new folder")
    model = load_model(run_dir, dictionary=dictionary, ensemble_samples=1)
    card = read_card(run_dir)
    parameters = {name for name, _ in model.named_parameters()}
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        state[key] = value.half() if half and key in parameters and value.is_floating_point() else value
    tmp = out_dir.parent / f".{out_dir.name}.export.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        save_file(state, str(tmp / MODEL_FILE), metadata={"format": "pt"})
        shutil.copyfile(run_dir / CONFIG_FILE, tmp / CONFIG_FILE)
        card["weights"] = {"file": MODEL_FILE, "sha256": sha256_file(tmp / MODEL_FILE),
                           "dtype": "float16 parameters, float32 buffers" if half else "float32"}
        atomic_write_json(tmp / CARD_FILE, card)
        exported = load_model(tmp, dictionary=dictionary, ensemble_samples=1)
        size = int(card["architecture"].get("image_size") or 32)
        probe = torch.rand(16, 3, size, size, generator=torch.Generator().manual_seed(0))
        seed_model(model, 0)
        with torch.no_grad():
            before = model(probe)
            seed_model(exported, 0)
            after = exported(probe)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    change = (after - before).abs()
    return {"path": str(out_dir), "bytes": (out_dir / MODEL_FILE).stat().st_size, "half": half,
            "max_abs_logit_change": float(change.max()),
            "relative_logit_change": float(change.norm() / before.norm().clamp_min(1e-12)),
            "prediction_changes": int((after.argmax(1) != before.argmax(1)).sum())}


def _model_dir(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        return path
    if path.suffix == ".safetensors":
        return path.parent
    if path.suffix in (".pt", ".pth"):
        raise CheckpointError(f"{path} is a PyTorch checkpoint, not a model saved by scfront; "
                              "scfront.load reads the original ResNet-32 ones (with "
                              "scfront.models.import_original_resnet32)")
    raise CheckpointError(f"{path} does not exist (expected a run folder or its {MODEL_FILE})")


def read_card(model_dir: str | Path) -> dict[str, Any]:
    """The parsed ``model_card.json`` of a saved model folder."""
    path = Path(model_dir) / CARD_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist (not a model saved by scfront, or an "
                              "unfinished run)")
    return read_json_record(path, CARD_FORMAT, "scfront model card")


def load_model(path: str | Path, device: torch.device | str = "cpu",
               dictionary: "Dictionary | None" = None, ensemble_samples: int | None = None) -> nn.Module:
    """A model saved by :func:`save_model`, in eval mode, input (N, 3, H, W) float in [0, 1].

    Args:
        path: the folder, or its ``model.safetensors``.
        device: where to put the model.
        dictionary: the frontend's dictionary, when the name recorded in the config does not
            resolve on this machine (its sha256 must match the card's).
        ensemble_samples: E > 1 returns ``Ensemble(model, E)``, 1 the single network; default:
            the config's ``model.ensemble_samples`` (1 for models saved before the field existed).

    The random layers of the model (noise, dropout) draw from one generator seeded with the
    config's ``model.random_seed`` (:func:`~scfront.models.randomness.seed_model`), so two loads
    of the same folder draw the same noise.

    Raises:
        CheckpointError: missing, corrupt or inconsistent files, weights that do not fit the
            architecture, or a dictionary whose hash differs from the one the model was
            trained with.
        ConfigError: a ``package.module:factory`` classifier whose module cannot be imported
            here (or no longer builds the saved architecture's classifier).
    """
    model_dir = _model_dir(path)
    weights = model_dir / MODEL_FILE
    if not weights.is_file():
        raise CheckpointError(f"no {MODEL_FILE} in {model_dir} (not a saved model, or training "
                              "has not finished)")
    card = read_card(model_dir)
    config_path = model_dir / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{config_path} does not exist: the model cannot be rebuilt")
    config = load_config(config_path)
    expected = card.get("weights", {}).get("sha256")
    if expected != sha256_file(weights):
        raise CheckpointError(f"{weights} does not match the sha256 in {CARD_FILE} (corrupt or "
                              "replaced file)")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is not a readable safetensors file ({exc})") from None
    if is_factory_spec(config.model.classifier):
        log.info("%s: importing the classifier factory %s (its module's code runs)", model_dir,
                 config.model.classifier)
    model = build_model(config, dictionary=dictionary)
    record = card.get("dictionary")
    encoder = find_encoder(model)
    if record is not None and encoder is not None:
        found = encoder.dictionary().sha256()
        if found != record.get("sha256"):
            raise CheckpointError(
                f"the dictionary {record.get('name')!r} resolves to atoms with sha256 {found[:12]}…, "
                f"but the model was trained with {str(record.get('sha256'))[:12]}…; pass the "
                "original dictionary (load_model(..., dictionary=...))")
    load_state_dict_strict(model, state, str(weights))
    model = model.to(device)
    seed_model(model, config.model.random_seed)
    samples = config.model.ensemble_samples if ensemble_samples is None else ensemble_samples
    if samples != 1:
        from scfront.models.ensemble import Ensemble

        model = Ensemble(model, samples)
    return model.eval()


def _pretrained_root() -> Path:
    return Path(str(resources.files("scfront").joinpath(*PRETRAINED_PACKAGE_DIR)))


def list_pretrained() -> list[str]:
    """Names of the models shipped in ``scfront/assets/models``."""
    root = _pretrained_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CARD_FILE).is_file())


def pretrained_dir(name: str) -> Path:
    """The folder of the shipped model ``name`` (``scfront/assets/models/<name>/``).

    Raises:
        CheckpointError: no shipped model has that name (the message lists those there are).
    """
    available = list_pretrained()
    if name not in available:
        listed = ", ".join(available) if available else "none are shipped in this installation"
        raise CheckpointError(f"no pretrained model {name!r}; available: {listed}")
    return _pretrained_root() / name


def load_pretrained(name: str = "cifar10_cpu", device: torch.device | str = "cpu") -> nn.Module:
    """A model shipped inside the package (``scfront/assets/models/<name>/``), eval mode."""
    return load_model(pretrained_dir(name), device=device)
