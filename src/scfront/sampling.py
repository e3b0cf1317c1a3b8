"""Random draws from an explicit ``torch.Generator``, placed next to the data.

torch only samples with a generator on that generator's own device. Drawing there and moving the
result to the data keeps a CPU generator usable for a CUDA model and makes the random stream
independent of where the model runs. Every draw of this kind in scfront goes through here.

``generator=None`` draws from torch's default generator on the data's device (never reseeded).
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["normal", "randint", "uniform"]


def _draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


def uniform(shape: Sequence[int], generator: torch.Generator | None, like: torch.Tensor,
            draw_dtype: torch.dtype | None = None) -> torch.Tensor:
    """U[0, 1) numbers of ``shape`` on ``like``'s device and dtype.

    Args:
        shape: the output shape. generator: the randomness (``None``: torch's default).
        like: a tensor whose device and dtype the result takes.
        draw_dtype: the dtype in which the numbers are drawn (``None``: ``like.dtype``); a fixed
            draw dtype (e.g. float32) makes the random stream independent of the data's dtype.
    Returns:
        (``shape``) float tensor in [0, 1).
    """
    dtype = like.dtype if draw_dtype is None else draw_dtype
    draw = torch.rand(tuple(shape), generator=generator, device=_draw_device(generator, like.device), dtype=dtype)
    return draw.to(device=like.device, dtype=like.dtype)


def normal(shape: Sequence[int], generator: torch.Generator | None, like: torch.Tensor,
           draw_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard normal numbers of ``shape`` on ``like``'s device and dtype (arguments as :func:`uniform`)."""
    dtype = like.dtype if draw_dtype is None else draw_dtype
    draw = torch.randn(tuple(shape), generator=generator, device=_draw_device(generator, like.device), dtype=dtype)
    return draw.to(device=like.device, dtype=like.dtype)


def randint(high: int, shape: Sequence[int], generator: torch.Generator | None,
            device: torch.device) -> torch.Tensor:
    """Integers uniform in ``[0, high)`` of ``shape``: int64 on ``device``."""
    draw = torch.randint(high, tuple(shape), generator=generator, device=_draw_device(generator, device))
    return draw.to(device)
