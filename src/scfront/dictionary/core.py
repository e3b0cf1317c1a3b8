"""The :class:`Dictionary` value object shared by learners, file I/O and the encoder."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import torch

from scfront.errors import CheckpointError


class AtomShape:
    """Shape properties of anything holding ``atoms``: (n_atoms, channels, p, p) patches.

    Shared by the :class:`Dictionary` value object and the frontend's encoder (whose atoms are a
    buffer or, for the learnable ablation, a parameter).
    """

    atoms: torch.Tensor

    @property
    def n_atoms(self) -> int:
        return int(self.atoms.shape[0])

    @property
    def channels(self) -> int:
        return int(self.atoms.shape[1])

    @property
    def patch_size(self) -> int:
        return int(self.atoms.shape[2])


@dataclass(frozen=True, eq=False)
class Dictionary(AtomShape):
    """An overcomplete dictionary of image patches (docs/method.md §1).

    Attributes:
        atoms: (n_atoms, channels, p, p) float32 tensor; each atom has unit L2 norm when it
            comes from a learner (not enforced: the DCT basis and user files are taken as given).
        meta: free-form provenance (learner, its parameters, source file, ...), JSON-friendly.
    """

    atoms: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        atoms = self.atoms
        if not isinstance(atoms, torch.Tensor) or atoms.ndim != 4:
            raise CheckpointError(
                "dictionary atoms must be a 4-D tensor (n_atoms, channels, p, p), got "
                f"{getattr(atoms, 'shape', type(atoms).__name__)}"
            )
        if atoms.shape[2] != atoms.shape[3]:
            raise CheckpointError(f"dictionary atoms must be square patches, got {tuple(atoms.shape)}")
        if not torch.isfinite(atoms).all():
            raise CheckpointError("dictionary atoms contain NaN or infinite values")
        object.__setattr__(self, "atoms", atoms.detach().to(torch.float32).contiguous())

    @property
    def dim(self) -> int:
        return self.channels * self.patch_size * self.patch_size

    @property
    def l1_norms(self) -> torch.Tensor:
        """(n_atoms,) float32: ‖d_k‖₁, the scale of the ternary activation (docs/method.md §2)."""
        return self.atoms.abs().flatten(1).sum(1)

    def flat(self) -> torch.Tensor:
        """(n_atoms, p*p*c) float32, rows flattened in (height, width, channel) order (npz format)."""
        return self.atoms.permute(0, 2, 3, 1).reshape(self.n_atoms, -1)

    @classmethod
    def from_flat(cls, rows: torch.Tensor, patch_size: int, channels: int = 3,
                  meta: dict[str, Any] | None = None) -> "Dictionary":
        """Inverse of :meth:`flat`: rows (n_atoms, p*p*c) in (h, w, c) order."""
        rows = torch.as_tensor(rows)
        if rows.ndim != 2 or rows.shape[1] != patch_size * patch_size * channels:
            raise CheckpointError(
                f"dictionary rows of shape {tuple(rows.shape)} do not fit {patch_size}x{patch_size}"
                f"x{channels} patches (expected (n_atoms, {patch_size * patch_size * channels}))"
            )
        atoms = rows.reshape(rows.shape[0], patch_size, patch_size, channels).permute(0, 3, 1, 2)
        return cls(atoms.to(torch.float32), dict(meta or {}))

    def sha256(self) -> str:
        """Content hash of the float32 atoms (recorded in model cards)."""
        return hashlib.sha256(self.atoms.numpy().tobytes()).hexdigest()
