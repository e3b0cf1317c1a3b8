"""Small building blocks shared by the classifiers: input layout, eval mode, normalisation,
seeded dropout.

Every random layer of scfront draws from an explicit :class:`torch.Generator` held in its
``generator`` attribute (``None``: torch's default generator). The training loop assigns one
generator to all of them and stores its state in each checkpoint, which is what makes a resumed
run bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scfront import sampling


def cpu_channels_last(x: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W), any values → the same tensor stored channels-last when it is on the CPU.

    The classifiers call this on their input: oneDNN's CPU convolutions are faster on
    channels-last input (ResNet-32, 2 threads, batch 250: 1.2-1.3x both for inference and for
    forward + input gradient; ``python -m benchmarks.bench_layout``), and the layout propagates
    through the network. The input gradient comes back contiguous (NCHW), the layout attacks
    expect of it. Other devices, and input already channels-last, are left alone.
    """
    if x.device.type != "cpu" or x.dim() != 4 or x.is_contiguous(memory_format=torch.channels_last):
        return x
    out = x.contiguous(memory_format=torch.channels_last)
    if out.requires_grad:
        out.register_hook(lambda grad: grad.contiguous())
    return out


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block ``model`` and all its submodules are in eval mode; afterwards every
    submodule gets back its own previous mode.

    Restoring each flag, not ``model.train(previous)``, matters for wrappers: a new
    ``nn.Module`` around an eval-mode model starts in training mode, and ``train(True)`` on it
    would put the wrapped model (its BatchNorm and dropout) into training mode.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, so that models take images in [0, 1].

    The statistics are non-persistent buffers: they follow ``.to(device)`` but are not part of
    the ``state_dict`` (the original checkpoints do not store them either).

    Args:
        mean, std: one value per channel.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std differ in length: {len(mean)} vs {len(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) float in [0, 1] -> (N, C, H, W) standardised."""
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class SeededDropout(nn.Module):
    """Element-wise dropout whose mask comes from ``self.generator``.

    Args:
        p: probability of zeroing an element.
        always_on: drop in eval mode too (a randomised network, e.g. the ablation ResNet of
            docs/method.md §4).
        rescale: multiply the kept elements by ``1 / (1 - p)`` (inverted dropout, PyTorch's
            convention); ``False`` keeps them unchanged, as the original ablation network did.
    """

    def __init__(self, p: float, always_on: bool = False, rescale: bool = True) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.always_on = always_on
        self.rescale = rescale
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not (self.training or self.always_on):
            return x
        # Drawn in float32 on the generator's device, then moved (scfront.sampling), so that a
        # CPU generator (whose state is easy to save) also drives a CUDA model.
        noise = sampling.uniform(x.shape, self.generator, x, draw_dtype=torch.float32)
        keep = (noise >= self.p).to(x.dtype)
        out = x * keep
        return out / (1.0 - self.p) if self.rescale else out

    def extra_repr(self) -> str:
        return f"p={self.p}, always_on={self.always_on}, rescale={self.rescale}"


def match_channels(x: torch.Tensor, out_channels: int) -> torch.Tensor:
    """Zero-pad (or, for fewer channels, crop) the channel axis symmetrically to ``out_channels``.

    x: (N, C, H, W). Half of the difference goes on each side: the parameter-free shortcut of
    Madry et al.'s ResNet (reference/README.md). Cropping keeps the central channels, which is
    what the original code's negative padding did in its 500-filter ablation network.
    """
    diff = out_channels - x.shape[1]
    if diff == 0:
        return x
    before = diff // 2
    return F.pad(x, (0, 0, 0, 0, before, diff - before))
