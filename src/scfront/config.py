"""Typed, frozen run configuration with TOML presets and command-line overrides.

A run is described by one :class:`RunConfig` made of sections (``data``, ``frontend``,
``model``, ``train``, ``evaluation``). Presets are TOML files shipped in
``scfront/configs/<dataset>/<preset>.toml`` (``smoke``, ``cpu``, ``paper``); a preset only lists
what differs from the dataclass defaults. Overrides are ``section.key=value`` strings whose value
is parsed as a TOML value (``train.epochs=5``, ``frontend.top_t=none``,
``evaluation.attacks=["pgd-linf"]``). Unknown sections or keys are errors, values are type
checked, and the resolved configuration is written next to every output
(:func:`save_config`), never encoded into file names.

``None`` has no TOML spelling: optional fields use the string ``"none"``.
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
from typing import Any, Mapping, Sequence, TypeVar

import tomli_w

from scfront.errors import ConfigError

EPS_8 = 8.0 / 255.0


class DatasetName(str, enum.Enum):
    CIFAR10 = "cifar10"
    IMAGENETTE = "imagenette"
    SYNTHETIC = "synthetic"


class DecoderName(str, enum.Enum):
    """Decoders of PAPER.md section 3."""

    DEFAULT = "default"
    SMALL = "small"
    DEEP = "deep"
    RESIZE = "resize"
    IDENTITY = "identity"


class TrainMethod(str, enum.Enum):
    """``natural`` is plain cross-entropy; with ``frontend.enabled`` it trains the defense."""

    NATURAL = "natural"
    PGD_AT = "pgd_at"
    TRADES = "trades"


class Schedule(str, enum.Enum):
    """Learning-rate schedules of the original code (PAPER.md section 5)."""

    ONECYCLE = "onecycle"  # triangular 0 -> lr_max -> 0, stepped every batch
    STEP = "step"  # lr_max, multiplied by lr_gamma at each epoch of lr_milestones
    MULTIPLICATIVE = "multiplicative"  # lr_max * lr_gamma ** epoch
    CONSTANT = "constant"


@dataclass(frozen=True)
class DataConfig:
    dataset: DatasetName = DatasetName.CIFAR10
    image_size: int = 32  # Imagenette images are resized/center-cropped to this size
    train_limit: int | None = None  # seeded subset of the training set; None = all of it
    augment: bool = True  # random crop with zero padding + horizontal flip, on whole batches
    crop_padding: int = 4
    monitor_images: int = 1000  # fixed seeded test subset for the per-epoch accuracy
    subset_seed: int = 0


@dataclass(frozen=True)
class FrontendConfig:
    """The sparse coding frontend (PAPER.md sections 1-3); ``enabled=False`` = no frontend."""

    enabled: bool = False
    dictionary: str = "cifar10"  # name of a dictionary shipped with scfront, or an .npz path
    stride: int = 2
    top_t: int | None = 15
    beta: float = 3.0
    assumed_eps: float = EPS_8
    activation: bool = True
    noise_gamma_train: float = 0.0  # PAPER.md: 100 for the "noisy" variant
    noise_gamma_test: float = 0.0
    dropout_p: float = 0.0  # PAPER.md: 0.95 for the dropout variant
    learnable_dictionary: bool = False
    decoder: DecoderName = DecoderName.DEFAULT
    bpda_top_u: int | None = 30  # backward rule used by attacks unless they choose another
    bpda_steepness: float = 4.0


@dataclass(frozen=True)
class ModelConfig:
    classifier: str = "resnet32"  # a name of scfront.models.create_model
    num_classes: int = 10


@dataclass(frozen=True)
class TrainConfig:
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
    # adversarial training (PGD-AT and TRADES): Linf ball, PAPER.md section 5
    attack_eps: float = EPS_8
    attack_step: float = 1.0 / 255.0
    attack_steps: int = 10
    trades_beta: float = 6.0
    device: str = "cpu"
    num_threads: int | None = None  # torch intra-op threads; None = torch's default
    channels_last: bool = True


@dataclass(frozen=True)
class EvalConfig:
    n_images: int = 1000
    subset_seed: int = 0
    batch_size: int = 250
    restarts: int = 1
    steps: int = 40
    attacks: tuple[str, ...] = ("pgd-linf",)


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def replace(self, overrides: Sequence[str] | Mapping[str, Any]) -> "RunConfig":
        """A copy with ``section.key`` overrides applied (strings ``"a.b=v"`` or a mapping)."""
        return apply_overrides(self, overrides)


PRESETS = ("smoke", "cpu", "paper")
# What is trained: the defense (frontend + classifier) or one of the paper's baselines. A preset
# file holds the defense's settings plus, under ``[recipes.<name>]``, what each baseline changes.
RECIPES = ("defense", "natural", "pgd_at", "trades")
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
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return from_dict(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in tp)
            raise ConfigError(f"{where}: {value!r} is not one of {choices}") from None
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


# --------------------------------------------------------------------------- overrides
def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word such as a path or an enum value


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
            items.append((key.strip(), _parse_value(raw.strip())))
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
    dataset = DatasetName(dataset).value if not isinstance(dataset, DatasetName) else dataset.value
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
    config = from_dict(RunConfig, data, f"{path.name}[{recipe}]")
    return apply_overrides(config, overrides) if overrides else config
