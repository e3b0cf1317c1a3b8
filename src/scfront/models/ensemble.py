"""The ensemble of a randomised model: the average of the softmax of E forward passes.

The noisy (test-time noise) and dropout variants of the defense (docs/method.md §2.7) are random
functions of their input; the original code deployed them as an ensemble, averaging the softmax
outputs of E passes of the same network. :class:`Ensemble` is that wrapper, usable wherever a
model is: from Python (``Ensemble(scfront.load(path), samples=10)``), from a saved model whose
``model.ensemble_samples`` is above 1 (``scfront.load`` then returns the ensemble; the model
card records ``ensemble_samples``), and from the command line through that field
(``scfront train ... --set model.ensemble_samples=10``).

What an attacker gets. ``forward`` returns ``log(mean_e softmax(model(x)))``, the log of the
averaged probabilities, (N, classes). These are valid logits: ``softmax`` of them gives back the
averaged probabilities (they sum to 1 already, so the log-sum-exp is 0), and cross-entropy on
them is the negative log of the ensemble's probability of the label, so CE attacks (PGD, APGD-CE)
attack the ensemble's own prediction, and their gradient is the probability-weighted average of
the passes' gradients. Every quantity invariant to a per-example shift of the logits keeps its
meaning: the arg-max, a margin ``z_y - max_{j≠y} z_j`` (the log of the ratio of two averaged
probabilities) and the DLR ratio. What changes is the scale: a margin is in nats of the averaged
probabilities, bounded by ``-log`` of the smallest averaged probability, not in the units of any
single pass's logits, so a CW confidence κ or a logit-margin threshold tuned on plain logits
means something else here (κ = 50 is never reached unless a probability falls below e⁻⁵⁰).
Each call draws E fresh passes, so the ensemble is still random (less so as E grows); attacks on
it may still average gradients over calls (EOT).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from scfront.errors import ConfigError
from scfront.models.inputs import attach_input_check, input_spec
from scfront.models.randomness import is_randomized

__all__ = ["Ensemble"]


class Ensemble(nn.Module):
    """``x`` (N, C, H, W) float in [0, 1] → ``log(mean_e softmax(model(x)))``, (N, classes) float.

    Args:
        model: any module mapping the input to (N, classes) logits, normally a randomised one
            (:func:`~scfront.models.randomness.is_randomized`); it is kept as ``self.model``
            (state-dict keys ``model.*``) and run ``samples`` times per call, one pass after the
            other, each drawing from the model's own generators.
        samples: E >= 1, the passes per call (the original used 10). E = 1 returns the
            log-softmax of one pass.

    ``randomized`` is declared: True when the wrapped model is random. The wrapped model's
    input check, if any, is attached to the ensemble too, so callers see the same
    ``input_spec``.
    """

    def __init__(self, model: nn.Module, samples: int = 10) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ConfigError(f"Ensemble wraps an nn.Module, got {type(model).__name__}")
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ConfigError(f"ensemble samples must be an integer >= 1, got {samples!r}")
        self.model = model
        self.samples = samples
        self.training = model.training
        spec = input_spec(model)
        if spec is not None:
            attach_input_check(self, spec)

    @property
    def randomized(self) -> bool:
        """Whether the output is random: the wrapped model's eval-mode forward draws."""
        return is_randomized(self.model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) float in [0, 1] → (N, classes) log of the averaged probabilities,
        each entry <= 0, ``logsumexp`` over classes = 0 (up to rounding)."""
        total: torch.Tensor | None = None
        for _ in range(self.samples):
            log_p = torch.log_softmax(self.model(x).float(), dim=1)
            # log-sum-exp over the passes, accumulated pairwise: no underflow of small probabilities
            total = log_p if total is None else torch.logaddexp(total, log_p)
        assert total is not None
        return total - math.log(self.samples)

    def extra_repr(self) -> str:
        return f"samples={self.samples}"
