"""Transfer attacks: adversarial examples made elsewhere, evaluated on the target model.

Two sources: a stored adversarials file of another evaluation (``scfront evaluate`` writes
``adversarials.safetensors``; images are matched by their exact 8-bit content), or a source model
(any spec ``scfront.load`` takes) on which a white-box attack is run now. The target model is queried only to pick, per image,
the first stored candidate that fools it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from scfront.attacks.blackbox.common import BlackBoxAttack
from scfront.attacks.blackbox.oracle import Oracle
from scfront.attacks.blackbox.stored import is_adversarials_file, load_adversarials
from scfront.attacks.registry import create_attack, register_attack
from scfront.attacks.threat import Norm
from scfront.errors import ConfigError
from scfront.sampling import Randomness

if TYPE_CHECKING:
    from scfront.attacks.blackbox.starts import StartPool


@functools.lru_cache(maxsize=2)
def _cached_stored(path: str, mtime: float) -> dict[bytes, list[tuple[str, float, torch.Tensor]]]:
    """Stored adversarials keyed by the clean image's bytes: [(attack, eps, x_adv (C, H, W))]."""
    stored = load_adversarials(path)
    by_image: dict[bytes, list[tuple[str, float, torch.Tensor]]] = {}
    keys = [stored.clean[i].numpy().tobytes() for i in range(stored.clean.shape[0])]
    for item in stored.attacks:
        for row, x_adv in zip(item.positions.tolist(), item.x_adv):
            by_image.setdefault(keys[row], []).append((f"{item.name}|{item.norm}", item.eps, x_adv))
    return by_image


@register_attack
@dataclass(frozen=True)
class TransferAttack(BlackBoxAttack):
    """Transfer attack: adversarials from another model, evaluated on this one.

    Args:
        source: a stored ``adversarials.safetensors`` of another evaluation, or a model spec of
            ``scfront.load`` (a saved folder, an original ResNet-32 ``.pt``, a shipped name).
        source_attack: for a stored file, the stored attack whose adversarials are used, or
            ``"all"`` (default): every stored attack of this ``norm``, the first candidate that
            fools the target is kept. For a model source, the attack run on the source model
            (default "all" means "pgd-linf" for Linf, "pgd-l2" for L2).
        norm: "Linf" (default) or "L2": the threat model the result is projected onto.
        eps: radius; None = 8/255 (Linf) or 0.6 (L2).
    Images without a stored adversarial (e.g. misclassified by the source model) stay clean.
    Shapes: x (N, C, H, W) float in [0, 1] (8-bit images for stored files), y (N,) int64; x_adv
    in the ball ∩ [0, 1].
    Example: ``create_attack("transfer", source="runs/pgd_at/adversarials.safetensors")(model, x, y)``.
    """

    name: ClassVar[str] = "transfer"
    norms: ClassVar[tuple[Norm, ...]] = (Norm.LINF, Norm.L2)
    source: str = ""
    source_attack: str = "all"
    norm: Norm = Norm.LINF
    eps: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.source:
            raise ConfigError("transfer: give source=PATH (an adversarials.safetensors or a model spec)")

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            generator: Randomness, starts: StartPool | None = None) -> torch.Tensor:
        path = Path(self.source)
        if is_adversarials_file(path):
            return self._from_file(model, path, x, y)
        source_model = self._source_model(x.device)
        name = self.source_attack
        if name == "all":
            name = "pgd-linf" if self.norm is Norm.LINF else "pgd-l2"
        attack = create_attack(name, eps=self.threat.eps)
        if attack.threat.norm is not self.norm:
            raise ConfigError(f"transfer: source_attack {name!r} is {attack.threat.norm.value}, not {self.norm.value}")
        # x_adv of either kind of attack lies in the ε-ball (a minimum-norm result's verdict)
        return attack(source_model, x, y, generator=generator, starts=starts).x_adv

    def _source_model(self, device: torch.device) -> nn.Module:
        """The source model (any spec of :func:`scfront.models.loader.load`), read on the first
        batch and kept by this attack object for the next ones (no module-level cache)."""
        cached = self.__dict__.get("_loaded_source")
        if cached is None:
            from scfront.models.loader import load

            cached = load(self.source)
            object.__setattr__(self, "_loaded_source", cached)  # not a field: params() ignore it
        return cached.to(device)

    def _from_file(self, model: nn.Module, path: Path, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        by_image = _cached_stored(str(path.resolve()), path.stat().st_mtime)
        threat = self.threat
        keys = (x * 255).round().clamp(0, 255).to(torch.uint8).cpu()
        oracle = Oracle(model)
        out = x.clone()
        done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        candidates = [by_image.get(keys[i].numpy().tobytes(), []) for i in range(x.shape[0])]
        rounds = max((len(c) for c in candidates), default=0)
        for r in range(rounds):
            rows, points = [], []
            for i, cands in enumerate(candidates):
                usable = [c for c in cands if c[0].endswith(f"|{self.norm.value}")
                          and (self.source_attack == "all" or c[0].split("|")[0] == self.source_attack)]
                if r < len(usable) and not bool(done[i]):
                    rows.append(i)
                    points.append(usable[r][2])
            if not rows:
                continue
            index = torch.tensor(rows, device=x.device)
            trial = threat.project(torch.stack(points).to(x), x[index])
            fooled = oracle.is_adversarial(trial, y[index])
            out[index] = trial
            done[index[fooled]] = True
        return out
