"""Typed, frozen run configuration with TOML presets and command-line overrides.

A run is described by one :class:`RunConfig` made of sections (``data``, ``frontend``,
``model``, ``train``, ``evaluation``). Presets are TOML files shipped in
``scfront/configs/<dataset>/<preset>.toml`` (``smoke``, ``cpu``, ``paper``); a preset only lists
what differs from the dataclass defaults. Overrides are ``section.key=value`` strings whose value
is read by :func:`scfront.values.parse_value`, as on the rest of the command line
(``train.epochs=5``, ``train.attack_eps=8/255``, ``frontend.top_t=none``,
``evaluation.attacks=["pgd-linf"]``). Unknown sections or keys are errors, values are type
checked and converted when a section is built (also in Python: ``TrainConfig(method="pgd_at")``
holds ``TrainMethod.PGD_AT``), and the resolved configuration is written next to every output
(:func:`save_config`), never encoded into file names.

``None`` has no TOML spelling: optional fields use the string ``"none"``.

Every numeric setting has a documented valid range (the ``Attributes`` of each section, and
:data:`RANGES` for code), enforced when a section is built, so an invalid value
(``--set train.epochs=-1``, ``frontend.top_t=0``) is refused before anything runs or is written.
``frontend.top_t`` must also be at most the dictionary's number of atoms, which is known only
once the dictionary is: :func:`scfront.models.build_model` checks it (``scfront train`` builds the
model before it writes to the run folder).
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence, TypeVar

import tomli_w

from scfront.errors import ConfigError
from scfront.validate import Range, device_name, to_enum
from scfront.values import parse_value

EPS_8 = 8.0 / 255.0


class DatasetName(str, enum.Enum):
    CIFAR10 = "cifar10"
    IMAGENETTE = "imagenette"
    SYNTHETIC = "synthetic"


class DecoderName(str, enum.Enum):
    """Decoders of docs/method.md §3."""

    DEFAULT = "default"
    SMALL = "small"
    DEEP = "deep"
    RESIZE = "resize"
    IDENTITY = "identity"


class TrainMethod(str, enum.Enum):
    """``natural`` is plain cross-entropy; with ``frontend.enabled`` it trains the defense.
    ``fgsm_rs`` is fast adversarial training (Wong, Rice & Kolter 2020): PGD-AT with one step of
    ``fgsm_alpha · attack_eps`` from a uniform random start (docs/method.md §5)."""

    NATURAL = "natural"
    PGD_AT = "pgd_at"
    TRADES = "trades"
    FGSM_RS = "fgsm_rs"


class Schedule(str, enum.Enum):
    """Learning-rate schedules of the original code (docs/method.md §5)."""

    ONECYCLE = "onecycle"  # triangular 0 -> lr_max -> 0, stepped every batch
    STEP = "step"  # lr_max, multiplied by lr_gamma at each epoch of lr_milestones
    MULTIPLICATIVE = "multiplicative"  # lr_max * lr_gamma ** epoch
    CONSTANT = "constant"


# Valid ranges shared by several fields.
_AT_LEAST_0 = Range(0)
_AT_LEAST_1 = Range(1)
_POSITIVE = Range(0, low_open=True)
_FRACTION = Range(0, 1, high_open=True)  # [0, 1)
_LINF_RADIUS = Range(0, 1, low_open=True)  # (0, 1]: a radius on [0, 1] images
_PROBABILITY = Range(0, 1)  # [0, 1]: an accuracy or a difference of accuracies
# FGSM-RS step over radius: Wong et al. (2020) saw catastrophic overfitting from 1.25 on upwards
# in steps of the radius (2 ε always overfitted); above 1.25 is refused (docs/method.md §5).
FGSM_ALPHA_MAX = 1.25


class _Section:
    """Base of the configuration dataclasses: every field is checked and converted when the object
    is built, whether from TOML (:func:`from_dict`) or in Python (``TrainConfig(method="pgd_at")``):
    strings become their enum members, lists tuples, integers floats where a float is declared. So
    code reading a configuration never converts a field again.

    Each numeric field is then checked against its valid range in the class's ``RANGES``
    (``None`` of an optional field is always valid; each item of a tuple is checked), and
    :meth:`_check` runs the section's other rules. A numeric field without a range is a bug
    (``tests/config`` checks that there is none)."""

    RANGES: ClassVar[Mapping[str, Range]] = {}

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        where = _SECTION_NAMES.get(type(self).__name__, type(self).__name__)
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            converted = _coerce(value, hints[f.name], f"{where}.{f.name}")
            if converted is not value:
                object.__setattr__(self, f.name, converted)
        for name, valid in self.RANGES.items():
            value = getattr(self, name)
            items = value if isinstance(value, tuple) else (value,)
            for i, item in enumerate(items):
                if item is not None and not valid.contains(item):
                    key = f"{where}.{name}" + (f"[{i}]" if isinstance(value, tuple) else "")
                    alternative = " or none" if _is_optional(hints[name])[0] else ""
                    raise ConfigError(f"{key} must be {valid}{alternative}, got {item!r}")
        self._check(where)

    def _check(self, where: str) -> None:
        """Rules beyond ranges (none by default); raise ConfigError naming ``{where}.field``."""


@dataclass(frozen=True)
class DataConfig(_Section):
    """What the model is trained and monitored on.

    Attributes:
        dataset: cifar10, imagenette (or synthetic, for tests).
        image_size: >= 1 (and at least the dictionary's patch size with a frontend); the size
            the model is trained for, which its input check then requires.
        train_limit: >= 1, or None for the whole training set.
        augment: random crop with zero padding + horizontal flip.
        crop_padding: >= 0 pixels of zero padding before the random crop.
        monitor_images: >= 0 test images of the per-epoch accuracy (0: none).
        subset_seed: >= 0.
    """

    RANGES: ClassVar[Mapping[str, Range]] = {
        "image_size": _AT_LEAST_1, "train_limit": _AT_LEAST_1, "crop_padding": _AT_LEAST_0,
        "monitor_images": _AT_LEAST_0, "subset_seed": _AT_LEAST_0}

    dataset: DatasetName = DatasetName.CIFAR10
    image_size: int = 32  # Imagenette images are resized/center-cropped to this size
    train_limit: int | None = None  # seeded subset of the training set; None = all of it
    augment: bool = True  # random crop with zero padding + horizontal flip, on whole batches
    crop_padding: int = 4
    monitor_images: int = 1000  # fixed seeded test subset for the per-epoch accuracy
    subset_seed: int = 0


@dataclass(frozen=True)
class FrontendConfig(_Section):
    """The sparse coding frontend (docs/method.md §1-§3); ``enabled=False`` = no frontend.

    Attributes (valid ranges):
        stride: >= 1, the step of the patch grid.
        top_t: >= 1 and at most the dictionary's atoms (checked when the model is built), or
            None (no top-T).
        beta: > 0, the activation threshold in units of ``assumed_eps``.
        assumed_eps: in (0, 1], the Linf radius the frontend is designed for.
        noise_gamma_train, noise_gamma_test: >= 0.
        dropout_p: in [0, 1).
        bpda_top_u: >= 0 (0: identity backward through top-T).
        bpda_steepness: >= 0 (0: identity backward through the activation).
    """

    RANGES: ClassVar[Mapping[str, Range]] = {
        "stride": _AT_LEAST_1, "top_t": _AT_LEAST_1, "beta": _POSITIVE, "assumed_eps": _LINF_RADIUS,
        "noise_gamma_train": _AT_LEAST_0, "noise_gamma_test": _AT_LEAST_0, "dropout_p": _FRACTION,
        "bpda_top_u": _AT_LEAST_0, "bpda_steepness": _AT_LEAST_0}

    enabled: bool = False
    dictionary: str = "cifar10"  # name of a dictionary shipped with scfront, or an .npz path
    stride: int = 2
    top_t: int | None = 15
    beta: float = 3.0
    assumed_eps: float = EPS_8
    activation: bool = True
    noise_gamma_train: float = 0.0  # docs/method.md §2.2: 100 for the "noisy" variant
    noise_gamma_test: float = 0.0
    dropout_p: float = 0.0  # docs/method.md §2.4: 0.95 for the dropout variant
    learnable_dictionary: bool = False
    decoder: DecoderName = DecoderName.DEFAULT
    # The model's own BPDA rules (scfront.frontend.BPDA), used by attacks that do not choose
    # others: U for top-T (0 = identity) and the tanh steepness s (0 = identity).
    bpda_top_u: int = 30
    bpda_steepness: float = 4.0


@dataclass(frozen=True)
class ModelConfig(_Section):
    """The classifier and its number of classes.

    Attributes:
        classifier: a name of :func:`scfront.models.create_model` (checked when the model is
            built), or ``"package.module:factory"``: a callable returning the ``nn.Module``,
            called as ``factory(num_classes=...)`` when it takes that argument, else
            ``factory()`` (:mod:`scfront.models.factory`). Building or loading such a model
            imports that module, i.e. runs its code.
        num_classes: >= 2.
        ensemble_samples: >= 1; the saved model is loaded as
            :class:`~scfront.models.ensemble.Ensemble` of this many forward passes when > 1 (the
            randomised variants, docs/method.md §2.7). Training is the same for every value.
        random_seed: >= 0, the seed of the loaded model's own noise/dropout generator
            (:mod:`scfront.models.randomness`); training draws from ``train.seed`` instead.
    """

    RANGES: ClassVar[Mapping[str, Range]] = {"num_classes": Range(2), "ensemble_samples": _AT_LEAST_1,
                                             "random_seed": _AT_LEAST_0}

    classifier: str = "resnet32"  # a name of scfront.models.create_model, or package.module:factory
    num_classes: int = 10
    ensemble_samples: int = 1  # > 1: scfront.load averages the softmax of this many passes
    random_seed: int = 0  # the loaded model's noise/dropout generator (inference only)

    def _check(self, where: str) -> None:
        from scfront.models.factory import is_factory_spec

        if ":" in self.classifier and not is_factory_spec(self.classifier):
            raise ConfigError(f"{where}.classifier must be a registered name or package.module:factory "
                              f"(a callable returning the nn.Module), got {self.classifier!r}")


@dataclass(frozen=True)
class TrainConfig(_Section):
    """How the model is trained.

    Attributes (valid ranges):
        epochs: >= 1. batch_size: >= 1 (and at most the training set).
        lr_max: > 0. lr_milestones: each >= 1 (0-based epochs where STEP multiplies the rate by
            ``lr_gamma``). lr_gamma: > 0. momentum: in [0, 1). weight_decay: >= 0.
        seed: >= 0.
        attack_eps: in (0, 1], the Linf radius of PGD-AT and TRADES. attack_step: in (0, 1].
        attack_steps: >= 1. trades_beta: >= 0.
        fgsm_alpha: in (0, 1.25], the step of ``fgsm_rs`` in units of ``attack_eps`` (default
            1.25, Wong et al.'s α = 10/255 at ε = 8/255). Larger steps are refused: they are where
            FGSM-RS overfits catastrophically. (``pgd_at`` with ``attack_steps = 1`` and any
            ``attack_step`` is the same algorithm without this limit, for studying it.)
        early_stop_images: >= 0 training images held out (never trained on) for the per-epoch
            robustness check of docs/method.md §5: 0 (default) = no check. With N > 0, after
            every epoch PGD-Linf at ``attack_eps`` (``early_stop_steps`` steps of
            ``early_stop_rel_step · attack_eps``, random start) measures their robust accuracy in
            eval mode; training stops when it collapses, and the best epoch's weights become the
            model (:mod:`scfront.training.early_stop`).
        early_stop_steps: >= 1. early_stop_rel_step: > 0.
        early_stop_drop: in [0, 1]: collapse when the robust accuracy is more than this below
            its best (0.2 = 20 points, Wong et al.'s rule).
        early_stop_floor: in [0, 1]: also a collapse when the robust accuracy falls to at most
            this while it was above it at its best and the clean accuracy of the held-out images
            is above that of the best epoch.
        autoencoder_epochs: >= 0. With N > 0 training has two stages (the unsupervised defense,
            docs/method.md §5): N epochs of the frontend alone as an autoencoder (pixel MSE, the
            encoder fixed, the decoder learned, labels unused), then ``epochs`` epochs of the
            classifier on the frozen frontend's output. 0 (default): one stage, everything
            trained together as before.
        autoencoder_lr_max: > 0, the peak of stage 1's one-cycle learning rate.
        device: a torch device string (cpu, cuda, cuda:N; whether this machine has it is
            checked when training starts). num_threads: >= 1, or None (torch's default).
    """

    RANGES: ClassVar[Mapping[str, Range]] = {
        "epochs": _AT_LEAST_1, "batch_size": _AT_LEAST_1, "lr_max": _POSITIVE,
        "lr_milestones": _AT_LEAST_1, "lr_gamma": _POSITIVE, "momentum": _FRACTION,
        "weight_decay": _AT_LEAST_0, "seed": _AT_LEAST_0, "attack_eps": _LINF_RADIUS,
        "attack_step": _LINF_RADIUS, "attack_steps": _AT_LEAST_1, "trades_beta": _AT_LEAST_0,
        "num_threads": _AT_LEAST_1, "autoencoder_epochs": _AT_LEAST_0, "autoencoder_lr_max": _POSITIVE,
        "fgsm_alpha": Range(0, FGSM_ALPHA_MAX, low_open=True), "early_stop_images": _AT_LEAST_0,
        "early_stop_steps": _AT_LEAST_1, "early_stop_rel_step": _POSITIVE,
        "early_stop_drop": _PROBABILITY, "early_stop_floor": _PROBABILITY}

    method: TrainMethod = TrainMethod.NATURAL
    epochs: int = 70
    batch_size: int = 64
    lr_max: float = 0.02
    schedule: Schedule = Schedule.ONECYCLE
    lr_milestones: tuple[int, ...] = (35,)  # epochs where STEP multiplies the rate by lr_gamma
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 2021
    # adversarial training (PGD-AT and TRADES): Linf ball, docs/method.md §5
    attack_eps: float = EPS_8
    attack_step: float = 1.0 / 255.0
    attack_steps: int = 10
    trades_beta: float = 6.0
    device: str = "cpu"
    num_threads: int | None = None  # torch intra-op threads; None = torch's default
    channels_last: bool = True
    # stage 1 of the unsupervised defense (0 = no stage 1: one-stage training)
    autoencoder_epochs: int = 0
    autoencoder_lr_max: float = 0.02
    # fast adversarial training (fgsm_rs): the step in units of attack_eps
    fgsm_alpha: float = FGSM_ALPHA_MAX
    # per-epoch PGD robustness check on held-out training images (0 images = no check)
    early_stop_images: int = 0
    early_stop_steps: int = 5
    early_stop_rel_step: float = 0.25  # 2/255 at 8/255, as Wong et al.'s check
    early_stop_drop: float = 0.2
    early_stop_floor: float = 0.02

    def _check(self, where: str) -> None:
        device_name(self.device, f"{where}.device")


@dataclass(frozen=True)
class EvalConfig(_Section):
    """The evaluation of a trained model (``scfront reproduce``).

    Attributes (valid ranges):
        n_images: >= 1 test images (a seeded subset). subset_seed: >= 0. batch_size: >= 1.
        restarts: >= 1. steps: >= 1. attacks: at least one attack item.
    """

    RANGES: ClassVar[Mapping[str, Range]] = {
        "n_images": _AT_LEAST_1, "subset_seed": _AT_LEAST_0, "batch_size": _AT_LEAST_1,
        "restarts": _AT_LEAST_1, "steps": _AT_LEAST_1}

    n_images: int = 1000
    subset_seed: int = 0
    batch_size: int = 250
    restarts: int = 1
    steps: int = 40
    attacks: tuple[str, ...] = ("pgd-linf",)

    def _check(self, where: str) -> None:
        if not self.attacks or not all(item.strip() for item in self.attacks):
            raise ConfigError(f"{where}.attacks must list at least one attack (and no empty item), "
                              f"got {list(self.attacks)!r}; e.g. [\"pgd-linf\"]")


@dataclass(frozen=True)
class RunConfig(_Section):
    data: DataConfig = field(default_factory=DataConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def _check(self, where: str) -> None:
        if self.train.autoencoder_epochs > 0:
            fe = self.frontend
            problem = ("frontend.enabled = false" if not fe.enabled else
                       "the identity decoder (nothing to reconstruct)" if fe.decoder is DecoderName.IDENTITY
                       else "frontend.learnable_dictionary = true" if fe.learnable_dictionary else None)
            if problem is not None:
                raise ConfigError(f"train.autoencoder_epochs = {self.train.autoencoder_epochs} trains the "
                                  f"frontend's decoder as an autoencoder with a fixed dictionary; it "
                                  f"cannot be used with {problem} (set train.autoencoder_epochs = 0)")

    def replace(self, overrides: Sequence[str] | Mapping[str, Any]) -> "RunConfig":
        """A copy with ``section.key`` overrides applied (strings ``"a.b=v"`` or a mapping)."""
        return apply_overrides(self, overrides)


_SECTION_NAMES = {"DataConfig": "data", "FrontendConfig": "frontend", "ModelConfig": "model",
                  "TrainConfig": "train", "EvalConfig": "evaluation", "RunConfig": "config"}
PRESETS = ("smoke", "cpu", "paper")
# The valid range of every numeric setting, by "section.key" (what the sections enforce).
RANGES: dict[str, Range] = {
    f"{_SECTION_NAMES[cls.__name__]}.{key}": valid
    for cls in (DataConfig, FrontendConfig, ModelConfig, TrainConfig, EvalConfig)
    for key, valid in cls.RANGES.items()}
# What is trained: the defense (frontend + classifier) or one of the paper's baselines. A preset
# file holds the defense's settings plus, under ``[recipes.<name>]``, what each baseline changes.
# The defense's variants (docs/method.md §2.7): defense_unsupervised (two-stage training),
# defense_noisy (noise in training only), defense_noisy_test (noise in training and at test
# time) and defense_dropout (dropout in training and at test time). Adversarial training through
# the frontend (docs/method.md §5): defense_pgd_at, defense_fast_at (FGSM-RS) and fast_at (the same
# FGSM-RS without the frontend).
RECIPES = ("defense", "natural", "pgd_at", "trades", "defense_unsupervised", "defense_noisy",
           "defense_noisy_test", "defense_dropout", "defense_pgd_at", "defense_fast_at", "fast_at")
T = TypeVar("T")


# --------------------------------------------------------------------------- conversion
def _is_optional(tp: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _coerce(value: Any, tp: Any, where: str) -> Any:
    optional, inner = _is_optional(tp)
    if optional:
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        return _coerce(value, inner, where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value  # checked when it was built
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return from_dict(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return to_enum(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if typing.get_origin(tp) is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    raise ConfigError(f"{where}: unsupported field type {tp!r}")  # pragma: no cover


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if value is None:
        return "none"
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """Plain TOML/JSON-compatible dictionary (``None`` written as ``"none"``)."""
    return _plain(config)


def flat_settings(config: Any) -> dict[str, Any]:
    """:func:`to_dict` of ``config`` with nested sections flattened to dotted keys
    (``{"train.epochs": 14, ...}``), e.g. to list the settings two configurations differ in."""
    def flatten(table: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in table.items():
            if isinstance(value, dict):
                out.update(flatten(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    return flatten(to_dict(config), "")


def differing_settings(a: Mapping[str, Any], b: Mapping[str, Any], ignore: Sequence[str] = ()) -> list[str]:
    """The sorted keys of two :func:`flat_settings` dictionaries whose values differ (a key
    only one of them has counts), leaving out ``ignore``."""
    return sorted(k for k in a.keys() | b.keys() if k not in ignore and a.get(k) != b.get(k))


# --------------------------------------------------------------------------- overrides
def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def overrides_to_dict(overrides: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    items: list[tuple[str, Any]]
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for text in overrides:
            if "=" not in text:
                raise ConfigError(f"override {text!r} must look like section.key=value")
            key, raw = text.split("=", 1)
            items.append((key.strip(), parse_value(raw)))
    for key, value in items:
        parts = key.split(".")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"override key {key!r} must look like section.key")
        nested.setdefault(parts[0], {})[parts[1]] = value
    return nested


def apply_overrides(config: RunConfig, overrides: Sequence[str] | Mapping[str, Any]) -> RunConfig:
    merged = _merge(to_dict(config), overrides_to_dict(overrides))
    return from_dict(RunConfig, merged)


# --------------------------------------------------------------------------- files
def loads_config(text: str, where: str = "config") -> RunConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML ({exc})") from None
    return from_dict(RunConfig, data, where)


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    return loads_config(path.read_text(encoding="utf-8"), str(path))


def dumps_config(config: RunConfig) -> str:
    return tomli_w.dumps(to_dict(config))


def save_config(config: RunConfig, path: str | Path) -> Path:
    """Write the resolved configuration as TOML (atomically)."""
    from scfront.io import atomic_write_text

    return atomic_write_text(Path(path), dumps_config(config))


def preset_path(preset: str, dataset: str | DatasetName = DatasetName.CIFAR10) -> Path:
    dataset = to_enum(DatasetName, dataset, "dataset").value
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    ref = resources.files("scfront") / "configs" / dataset / f"{preset}.toml"
    path = Path(str(ref))
    if not path.is_file():
        raise ConfigError(f"no preset {preset!r} for dataset {dataset!r} (looked for {path.name})")
    return path


def load_preset(
    preset: str,
    dataset: str | DatasetName = DatasetName.CIFAR10,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    recipe: str = "defense",
) -> RunConfig:
    """Preset ``preset`` for ``dataset``, adjusted for ``recipe``, with ``overrides`` applied."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    path = preset_path(preset, dataset)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    recipes = data.pop("recipes", {})
    unknown = sorted(set(recipes) - set(RECIPES) - {"defense"})
    if unknown:
        raise ConfigError(f"{path}: unknown recipe(s) {', '.join(unknown)}")
    if recipe in recipes:
        data = _merge(data, recipes[recipe])
    elif recipe != "defense":  # the preset's own settings are the defense, never another recipe's
        raise ConfigError(f"preset {preset!r} of {dataset} defines no recipe {recipe!r} "
                          f"(it has: defense, {', '.join(recipes)})")
    config = from_dict(RunConfig, data, f"{path.name}[{recipe}]")
    return apply_overrides(config, overrides) if overrides else config
