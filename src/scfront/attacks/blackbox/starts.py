"""Starting points for decision-based attacks (Boundary, HopSkipJump).

A decision-based attack walks along the decision boundary from a point that is already
misclassified. As in the original evaluation of the paper, that point is the *nearest test image
(in L2) that the model labels differently from the true label* of the image under attack: a
natural image of another class, so the walk starts on the data manifold and close by.

The search is one chunked matrix product over the pool, ``‖x − p‖² = ‖x‖² + ‖p‖² − 2⟨x, p⟩``,
keeping a few best candidates per image, then re-ranked with exact float64 distances (the
expansion loses precision in float32 when two candidates are almost equally far).
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

from scfront.attacks.blackbox.oracle import DRAW_DTYPE, Oracle
from scfront.errors import InputError
from scfront.sampling import Randomness, rows_of, uniform


class StartPool:
    """A set of candidate starting images, with the model's labels for them computed once.

    Args:
        images: (M, C, H, W) uint8 in [0, 255] or float in [0, 1] (e.g. the CIFAR-10 test set
            ``dataset.images``). Kept in its dtype; converted chunk by chunk when used.
        chunk: images per chunk in the distance search and the labelling pass.
    """

    def __init__(self, images: torch.Tensor, chunk: int = 1024) -> None:
        if images.ndim != 4 or images.shape[0] == 0:
            raise InputError(f"a start pool must be a non-empty (M, C, H, W) tensor, got {tuple(images.shape)}")
        self.images = images.detach()
        self.chunk = chunk
        # model -> (M,) predictions; weak keys so that a pool never keeps a model alive.
        self._predictions: "weakref.WeakKeyDictionary[nn.Module, torch.Tensor]" = weakref.WeakKeyDictionary()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def floats(self, start: int, stop: int, device: torch.device) -> torch.Tensor:
        """Images ``start:stop`` as float32 in [0, 1] on ``device``."""
        part = self.images[start:stop].to(device)
        return part.float() / 255.0 if part.dtype == torch.uint8 else part.float()

    def take(self, index: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Images at ``index`` (any shape of int64) as float32 in [0, 1], shape index.shape + (C, H, W)."""
        part = self.images[index.cpu()].to(device)
        return part.float() / 255.0 if part.dtype == torch.uint8 else part.float()

    def predictions(self, model: nn.Module, device: torch.device) -> torch.Tensor:
        """(M,) int64: the model's label for every pool image (cached per model)."""
        cached = self._predictions.get(model)
        if cached is None:
            oracle = Oracle(model, chunk=self.chunk)
            cached = torch.cat([
                oracle.predict(self.floats(i, i + self.chunk, device)).cpu()
                for i in range(0, len(self), self.chunk)
            ])
            self._predictions[model] = cached
        return cached.to(device)


def nearest_other_label(x: torch.Tensor, y: torch.Tensor, pool: StartPool,
                        pool_labels: torch.Tensor, candidates: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """For each image, the nearest (L2) pool image whose label differs from ``y``.

    Args:
        x: (N, C, H, W) float in [0, 1]; y: (N,) int64 true labels.
        pool: the candidates; pool_labels: (M,) int64 labels of the pool images (the *model's*
            predictions, so that the chosen start is misclassified by the model).
        candidates: how many best candidates per image are re-ranked exactly.
    Returns:
        (index (N,) int64 into the pool, -1 where every pool image has label ``y``;
         distance (N,) float64 L2 distance, inf where index is -1).
    """
    device = x.device
    flat = x.flatten(1).float()
    if flat.shape[1] != pool.images[0].numel():
        raise InputError(f"images of shape {tuple(x.shape[1:])} do not match the start pool's {tuple(pool.images.shape[1:])}")
    x_sq = (flat * flat).sum(1, keepdim=True)
    k = min(candidates, len(pool))
    best_d = torch.full((x.shape[0], k), float("inf"), device=device)
    best_i = torch.full((x.shape[0], k), -1, dtype=torch.long, device=device)
    for start in range(0, len(pool), pool.chunk):
        part = pool.floats(start, start + pool.chunk, device).flatten(1)
        dist = x_sq + (part * part).sum(1)[None, :] - 2.0 * flat @ part.T
        same = pool_labels[start:start + part.shape[0]].to(device)[None, :] == y[:, None]
        dist = dist.masked_fill(same, float("inf"))
        idx = torch.arange(start, start + part.shape[0], device=device).expand_as(dist)
        merged_d = torch.cat([best_d, dist], 1)
        merged_i = torch.cat([best_i, idx], 1)
        best_d, order = merged_d.topk(k, dim=1, largest=False)
        best_i = merged_i.gather(1, order)
    # Exact re-ranking in float64 of the few survivors.
    valid = torch.isfinite(best_d)
    safe_i = best_i.clamp(min=0)
    cand = pool.take(safe_i, device).view(x.shape[0], k, -1).double()
    exact = ((cand - flat.double()[:, None, :]) ** 2).sum(2).sqrt()
    exact = exact.masked_fill(~valid, float("inf"))
    dist, pos = exact.min(1)
    index = best_i.gather(1, pos[:, None]).squeeze(1)
    index = torch.where(torch.isfinite(dist), index, torch.full_like(index, -1))
    return index, dist


def misclassified_starts(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, pool: StartPool | None,
                         generator: Randomness, noise_tries: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Starting points that the model misclassifies, one per image.

    With a pool: the nearest differently-labelled pool image (:func:`nearest_other_label`).
    Without one, or where the pool has no usable image: uniform noise images, redrawn up to
    ``noise_tries`` times until misclassified (the fallback of Brendel et al. 2018); only the
    images still without a start draw again (``generator``: the randomness of the N rows).

    Returns:
        (starts (N, C, H, W) float in [0, 1]; found (N,) bool: False where no misclassified start
        was found, whose start is then ``x`` itself and which the attacks leave unbroken).
    """
    starts = x.clone()
    found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    if pool is not None:
        labels = pool.predictions(oracle.model, x.device)
        index, _ = nearest_other_label(x, y, pool, labels)
        has = index >= 0
        if has.any():
            starts[has] = pool.take(index[has], x.device)
            # The pool labels came from the model; re-check, since a model may be randomised.
            found[has] = oracle.is_adversarial(starts[has], y[has])
    for _ in range(noise_tries):
        todo = (~found).nonzero().squeeze(1)
        if todo.numel() == 0:
            break
        noise = uniform(x[todo].shape, rows_of(generator, todo), x, DRAW_DTYPE)
        ok = oracle.is_adversarial(noise, y[todo])
        starts[todo[ok]] = noise[ok]
        found[todo[ok]] = True
    return starts, found


def blend_search(oracle: Oracle, x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor,
                 tol: float = 1e-3, max_steps: int = 30) -> torch.Tensor:
    """Binary search on the segment from ``x`` to ``adv`` for the adversarial point nearest ``x``.

    The point ``x + t·(adv − x)`` is adversarial at ``t = 1``; the search keeps the smallest
    adversarial ``t`` found, until the bracket is shorter than ``tol`` (relative to the segment).

    Args:
        x, adv: (N, C, H, W) float in [0, 1], ``adv`` misclassified; y: (N,) labels.
    Returns:
        (N, C, H, W): adversarial points on the segment, at most ``tol``·‖adv − x‖ past the boundary.
    """
    low = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    high = torch.ones_like(low)
    for _ in range(max_steps):
        todo = (high - low > tol).nonzero().squeeze(1)
        if todo.numel() == 0:
            break
        mid = (low[todo] + high[todo]) / 2
        t = mid[:, None, None, None]
        point = x[todo] + t * (adv[todo] - x[todo])
        is_adv = oracle.is_adversarial(point, y[todo])
        high[todo] = torch.where(is_adv, mid, high[todo])
        low[todo] = torch.where(is_adv, low[todo], mid)
    return x + high[:, None, None, None] * (adv - x)
