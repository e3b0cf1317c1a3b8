"""Query access to a classifier for black-box (score- and decision-based) attacks.

Black-box attacks see a model only through its outputs. :class:`Oracle` wraps the model,
evaluates it without gradients in chunks (so that attacks can ask for thousands of candidates at
once without running out of memory) and counts the queries per example, which the attacks report.
"""

from __future__ import annotations

import torch
from torch import nn


class Oracle:
    """Gradient-free, chunked, query-counting access to ``model``.

    Args:
        model: maps (B, C, H, W) float in [0, 1] to logits (B, K); used in its current mode
            (the evaluation puts it in eval mode).
        chunk: at most this many images per forward pass.
    """

    def __init__(self, model: nn.Module, chunk: int = 1024) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be positive, got {chunk}")
        self.model = model
        self.chunk = chunk
        self.queries = 0  # total number of images evaluated

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) float in [0, 1] -> (B, K) float32 logits."""
        self.queries += int(x.shape[0])
        if x.shape[0] <= self.chunk:
            return self.model(x).float()
        return torch.cat([self.model(part).float() for part in x.split(self.chunk)])

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B,) int64 predicted labels."""
        return self.logits(x).argmax(1)

    def is_adversarial(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Untargeted criterion: (B,) bool, True where the prediction on ``x`` differs from ``y``."""
        return self.predict(x) != y

    def margin(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B,) float: ``z_y - max_{j != y} z_j`` on the logits; negative means misclassified.

        The margin loss of Carlini & Wagner (2017) that the score-based attacks minimise.
        """
        z = self.logits(x)
        return margin_from_logits(z, y)


def margin_from_logits(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z: (B, K) logits, y: (B,) labels -> (B,) ``z_y - max_{j != y} z_j``."""
    true = z.gather(1, y[:, None]).squeeze(1)
    other = z.scatter(1, y[:, None], float("-inf")).amax(1)
    return true - other


def flat_norm(x: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """(B, ...) -> (B,) vector p-norm of each example."""
    return torch.linalg.vector_norm(x.flatten(1), ord=p, dim=1)


def rand_like_on(x: torch.Tensor, generator: torch.Generator | None, normal: bool = False,
                 shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """Uniform [0, 1) (or standard normal) noise drawn on ``generator``'s device, moved to ``x``'s.

    Drawing on the generator's own device keeps a CPU generator usable for a CUDA model, and keeps
    the random stream independent of where the model runs.
    """
    size = tuple(x.shape) if shape is None else shape
    device = generator.device if generator is not None else x.device
    draw = torch.randn if normal else torch.rand
    noise = draw(size, generator=generator, device=device, dtype=torch.float32)
    return noise.to(device=x.device, dtype=x.dtype)


def randint_on(high: int, size: tuple[int, ...], generator: torch.Generator | None,
               device: torch.device) -> torch.Tensor:
    """Integers in [0, high) drawn on ``generator``'s device, moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.randint(high, size, generator=generator, device=gen_device).to(device)
