"""The sparse layout of the encoder's output: per location, the few atoms that can be non-zero.

With top-T on, at most T of the n_atoms coefficients of a location are non-zero, so the encoder
hands out its codes as ``K ≥ T`` (value, atom index) slots per location, sorted by decreasing |z|.
The first ``n_active = T`` slots carry the forward values; slots ``T..K-1`` are zero in the
forward pass and exist only so that BPDA's top-U rule (U > T) can send gradient to them. The
decoder's first layer consumes this layout directly (:mod:`scfront.frontend.sparse`); the
dense tensor is :meth:`SparseCodes.to_dense`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SparseCodes:
    """Codes of a batch in slot layout.

    Attributes:
        values: (B, H', W', K) float32; values[..., s] is the code of atom indices[..., s]
            (zero for s ≥ n_active). Differentiable: gradients flow back to the encoder.
        indices: (B, H', W', K) int64 in [0, n_atoms), distinct along the last axis.
        n_atoms: number of dictionary atoms (channels of the dense codes).
        n_active: slots that can be non-zero in the forward pass (T).
    """

    values: torch.Tensor
    indices: torch.Tensor
    n_atoms: int
    n_active: int

    @property
    def slots(self) -> int:
        return int(self.values.shape[-1])

    def to_dense(self) -> torch.Tensor:
        """(B, n_atoms, H', W') float32 codes, stored channels-last (a permuted view)."""
        b, h, w, _ = self.values.shape
        dense = self.values.new_zeros(b, h, w, self.n_atoms).scatter(-1, self.indices, self.values)
        return dense.permute(0, 3, 1, 2)
