"""Query access to a classifier for black-box (score- and decision-based) attacks.

Black-box attacks see a model only through its outputs. :class:`Oracle` wraps the model,
evaluates it without gradients in chunks (so that attacks can ask for thousands of candidates at
once without running out of memory) and counts the queries per example, which the attacks report.
"""

from __future__ import annotations

import torch
from torch import nn

from scfront.attacks.losses import margin
from scfront.validate import positive_int

# The black-box attacks draw their random numbers in float32 whatever the data's dtype, so that a
# float64 evaluation sees the same random stream (scfront.sampling's ``draw_dtype``).
DRAW_DTYPE = torch.float32


class Oracle:
    """Gradient-free, chunked, query-counting access to ``model``.

    Args:
        model: maps (B, C, H, W) float in [0, 1] to logits (B, K); used in its current mode
            (the evaluation puts it in eval mode).
        chunk: at most this many images per forward pass.
    """

    def __init__(self, model: nn.Module, chunk: int = 1024) -> None:
        positive_int(chunk, "oracle: chunk")
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
        return margin(self.logits(x), y)


def flat_norm(x: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """(B, ...) -> (B,) vector p-norm of each example."""
    return torch.linalg.vector_norm(x.flatten(1), ord=p, dim=1)
