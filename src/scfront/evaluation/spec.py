"""What an evaluation is: the model, the images, the attacks, and how work is split.

An :class:`EvalSpec` is written to ``OUT/spec.json`` before any work; a resumed run or another
shard must present the same spec (a different one is refused, so that results of two evaluations
are never mixed). Work is cut into *units*: the clean pass and each attack on each *batch* of the
subset. Batches are fixed slices of the subset, the same in every run, and a shard owns whole
batches (``b % n == i``), so a unit computes exactly the same thing whether it runs in one
process, after a restart, or in another shard. The attacks' randomness is per image
(:func:`unit_generators`): the stream of an image is keyed by the seed, the attack and the
image's index in the dataset, never by its batch, so an image draws the same numbers whatever
the batch size, the shard or the points its batch mates leave (the attacks also compute every
quantity per image, so its result is the same up to the rounding of batched kernels).

An evaluation's attacks may be grouped into *columns* (the columns of the paper's Table 1): each
attack carries a column label, a column is the set of attacks sharing one, and the AutoAttack
cascade runs inside each column (an attack only sees the points the earlier attacks *of its
column* failed on). Columns are independent of each other; the per-example worst case is over
every attack. Without labels the whole suite is one cascade.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from scfront.errors import ConfigError
from scfront.io import atomic_write_json
from scfront.sampling import RowGenerators

SPEC_FILE = "spec.json"


@dataclass(frozen=True)
class AttackSpec:
    """One attack of the suite: registry name, full parameters (JSON values), its ε-ball,
    whether it is black-box (queries only), and the label of its column (None: no columns)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    norm: str | None = None
    eps: float | None = None
    black_box: bool = False
    column: str | None = None


@dataclass(frozen=True)
class EvalSpec:
    """Everything that determines the results of an evaluation (not where or how fast it runs).

    Attributes:
        model: a display name (the model file's name, never a full path).
        model_sha256: hash of the model's parameters and buffers (:func:`model_digest`).
        dataset: "cifar10" or "imagenette". n_images, subset_seed: the subset (docs/evaluation.md §2).
        seed: base seed of the attacks' generators. batch_size: images per unit.
        cascade: each attack only runs on points every earlier attack failed on (AutoAttack).
        checks: run the gradient-masking checks on the first ``check_images`` images.
        attacks: the suite, in order; either every attack has a column label or none has.
    """

    model: str
    model_sha256: str
    dataset: str
    n_images: int
    subset_seed: int
    seed: int
    batch_size: int
    cascade: bool
    checks: bool
    check_images: int
    attacks: tuple[AttackSpec, ...]
    # The randomised model's own stream (scfront.models.randomness.seed_model), reseeded per
    # unit of work; None for a deterministic model (nothing reseeded, nothing recorded).
    model_seed: int | None = None

    def __post_init__(self) -> None:
        if self.n_images < 1 or self.batch_size < 1:
            raise ConfigError(f"n_images and batch_size must be >= 1, got {self.n_images}, {self.batch_size}")
        names = [a.name for a in self.attacks]
        if len(set(names)) != len(names):
            raise ConfigError(f"each attack may appear once in the suite, got {', '.join(names)}")
        labels = [a.column for a in self.attacks]
        if any(label is None for label in labels) and any(label is not None for label in labels):
            raise ConfigError("either every attack of the suite has a column label or none has, got "
                              + ", ".join(f"{a.name}: {a.column}" for a in self.attacks))
        for label in labels:
            if label is not None and (not isinstance(label, str) or not label.strip()):
                raise ConfigError(f"a column label must be a non-empty string, got {label!r}")

    @property
    def columns(self) -> dict[str, tuple[int, ...]]:
        """{column label: positions of its attacks in the suite}, in order of first appearance;
        empty when the attacks are not grouped into columns."""
        out: dict[str, list[int]] = {}
        for pos, attack in enumerate(self.attacks):
            if attack.column is not None:
                out.setdefault(attack.column, []).append(pos)
        return {label: tuple(positions) for label, positions in out.items()}

    def column_peers(self, position: int) -> tuple[int, ...]:
        """Positions of the attacks before ``position`` in the same column (the whole suite
        without columns): the attacks whose successes the cascade removes from its points."""
        label = self.attacks[position].column
        return tuple(p for p in range(position) if self.attacks[p].column == label)

    def position_in_column(self, position: int) -> int:
        """Index of attack ``position`` inside its column (its suite position without columns).

        It names the attack's random streams (:func:`unit_generators`), so an attack in a
        column draws exactly what it draws when its column is evaluated on its own.
        """
        return len(self.column_peers(position))

    @property
    def n_batches(self) -> int:
        return -(-self.n_images // self.batch_size)

    def batch_slice(self, batch: int) -> slice:
        """Positions (in subset order) of batch ``batch``."""
        return slice(batch * self.batch_size, min((batch + 1) * self.batch_size, self.n_images))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["attacks"] = [asdict(a) for a in self.attacks]
        if out["model_seed"] is None:  # deterministic models: spec.json as before the field
            del out["model_seed"]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "EvalSpec":
        data = dict(data)
        data["attacks"] = tuple(AttackSpec(**a) for a in data["attacks"])
        return cls(**data)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: owns the batches ``b`` with ``b % count == index``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard must be i/n with 0 <= i < n, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        try:
            i, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise ConfigError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
        return cls(i, n)

    def batches(self, spec: EvalSpec) -> list[int]:
        return [b for b in range(spec.n_batches) if b % self.count == self.index]

    @property
    def runs_checks(self) -> bool:
        """The checks run once, in the shard that owns batch 0."""
        return self.index == 0


def unit_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed derived from ``seed`` and the unit's identity (stable across runs)."""
    text = "/".join([str(seed)] + [str(p) for p in parts])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def unit_generator(seed: int, *parts: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with :func:`unit_seed` of ``seed`` and ``parts``."""
    return torch.Generator(device=device).manual_seed(unit_seed(seed, *parts))


def unit_generators(seed: int, images: torch.Tensor | Sequence[int], *parts: object,
                    device: torch.device | str = "cpu") -> RowGenerators:
    """Per-image random streams: row ``i`` keyed ``stable_seed(seed, *parts, images[i])``.

    Args:
        seed: the evaluation's base seed. images: (N,) the dataset indices of the attacked
            images, in row order. parts: what draws (e.g. the attack's position in its column
            and its name; ``"check", name`` for a check).
        device: where the streams' state lives and numbers are computed (the model's device).
    """
    return RowGenerators.seeded(seed, *parts, rows=images, device=device)


def model_digest(model: nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and values of the model's parameters and buffers."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def write_or_check_spec(out_dir: Path, spec: EvalSpec) -> None:
    """Write ``spec.json``, or refuse if ``out_dir`` holds a different evaluation."""
    path = out_dir / SPEC_FILE
    if path.is_file():
        existing = read_spec(out_dir)
        if existing != spec:
            mine, theirs = spec.to_json(), existing.to_json()
            differing = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise ConfigError(f"{out_dir} holds another evaluation (differs in: {', '.join(differing)}); "
                              "use another --out or the same settings to resume")
        return
    atomic_write_json(path, spec.to_json())


def read_spec(out_dir: Path) -> EvalSpec:
    path = out_dir / SPEC_FILE
    if not path.is_file():
        raise ConfigError(f"{out_dir} is not an evaluation folder (no {SPEC_FILE})")
    try:
        return EvalSpec.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise ConfigError(f"{path} is not a valid evaluation spec ({exc})") from None
