"""Shared pieces of the benchmarks: timing, the reference dictionary, the dense reference model.

Timing: the two variants of a comparison run alternately (dense, fast, dense, fast, ...) after a
warm-up call each, and each reports the best of its repeats, which is the least disturbed by
other processes on a shared machine; the median is reported beside it, and so is the process
CPU time per call (all threads), whose ratio is less sensitive to other processes than wall time.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

from scfront.dictionary import Dictionary, load_dictionary
from scfront.frontend import Frontend, Resize
from scfront.frontend.bpda import IdentityBackward, TanhSurrogateBackward, TopUMaskBackward, ternary
from scfront.frontend.decoders import center_crop
from scfront.frontend.encoder import top_indices

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4  # max |fast - dense| allowed on outputs (and on gradients, relative to their scale)


def shared_root() -> Path:
    env = os.environ.get("SCFRONT_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def reference_dictionary() -> Dictionary:
    """The paper's CIFAR-10 dictionary (500 atoms of 4x4x3), from the shared reference files."""
    return load_dictionary(shared_root() / "reference" / "dictionaries" / "cifar10_ps4_n500.npz")


def cifar_batch(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, 32, 32) float in [0, 1]: a seeded random choice of CIFAR-10 test images."""
    from scfront.data import load_cifar10

    images = load_cifar10(shared_root() / "datasets", "test").images
    pick = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return images[pick].float() / 255.0


@dataclass
class Timing:
    best: float  # wall seconds, best of the repeats
    median: float  # wall seconds
    cpu: float  # process CPU seconds per call, best of the repeats
    runs: list[float]


def compare(variants: dict[str, Callable[[], object]], repeats: int = 3) -> dict[str, Timing]:
    """Seconds per call of each variant, run alternately after one warm-up call each."""
    for fn in variants.values():
        fn()
    runs: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            runs[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: Timing(min(r), statistics.median(r), min(cpu[name]), r) for name, r in runs.items()}


def timing_fields(t: dict[str, Timing], batch: int, dense: str = "dense", fast: str = "fast",
                  per_call: int = 1) -> dict[str, float]:
    """The throughput fields of a result row: images (× steps) per second and ratios."""
    return {
        "dense_images_per_s": batch * per_call / t[dense].best,
        "fast_images_per_s": batch * per_call / t[fast].best,
        "speedup": t[dense].best / t[fast].best,
        "speedup_cpu_time": t[dense].cpu / t[fast].cpu,
        "dense_median_s": t[dense].median, "fast_median_s": t[fast].median,
        "dense_cpu_s": t[dense].cpu, "fast_cpu_s": t[fast].cpu,
    }


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float() - b.detach().float()).abs().max())


def relative_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b| / max(1, max |b|): gradients are compared on their own scale."""
    return max_diff(a, b) / max(1.0, float(b.detach().abs().max()))


class DenseReferenceFrontend(nn.Module):
    """The original formulation of a frontend, with the weights of ``frontend``.

    NCHW throughout: ``conv2d`` with the atoms, top-T over the atom axis of the dense
    (B, n_atoms, H', W') tensor (BPDA top-U), the ternary activation (BPDA tanh surrogate), then
    plain ``nn.ConvTranspose2d`` layers with ReLU, crop and clamp — every multiply of the dense
    codes is done, as in the original code.
    """

    def __init__(self, frontend: Frontend) -> None:
        super().__init__()
        enc = frontend.encoder
        self.register_buffer("atoms", enc.atoms.detach().clone())
        self.stride, self.top_t, self.jump = enc.stride, enc.top_t, enc.jump
        self.top_u, self.steepness = enc.bpda.top_u, enc.bpda.steepness
        self.spec = frontend.decoder.spec
        self.image_size = frontend.decoder.image_size
        self.convs = nn.ModuleList()
        for conv in frontend.decoder.convs:
            copy = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                      conv.stride, bias=True)
            copy.load_state_dict(conv.state_dict())
            self.convs.append(copy)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        z = F.conv2d(x, self.atoms, stride=self.stride)
        n = z.shape[1]
        u = n if self.top_u == 0 else min(max(self.top_u, self.top_t), n)  # top_u 0: identity
        order = top_indices(z.detach().abs(), u, dim=1, boundaries=(self.top_t,))
        keep = torch.zeros_like(z, dtype=torch.bool).scatter(1, order[:, :self.top_t], True)
        if self.top_u == 0:
            z = IdentityBackward.apply(z, lambda t: torch.where(keep, t, torch.zeros_like(t)))
        else:
            passed = torch.zeros_like(z, dtype=torch.bool).scatter(1, order[:, :self.top_u], True)
            z = TopUMaskBackward.apply(z, keep, passed)
        l1 = self.atoms.abs().flatten(1).sum(1).view(1, -1, 1, 1)
        if self.steepness == 0.0:
            return IdentityBackward.apply(z, lambda t: ternary(t, l1, self.jump))
        return TanhSurrogateBackward.apply(z, l1, self.jump, self.steepness)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.codes(x)
        convs = iter(self.convs)
        for layer in self.spec:
            if isinstance(layer, Resize):
                size = self.image_size + layer.margin
                out = F.interpolate(out, size=(size, size), mode="bicubic", align_corners=False)
            else:
                out = F.relu(next(convs)(out))
        return center_crop(out, self.image_size).clamp(0.0, 1.0)


class NCHWClassifier(nn.Module):
    """A scfront classifier computed in NCHW throughout, as the original code did.

    scfront's classifiers copy their input to channels-last on the CPU
    (:func:`scfront.models.layers.cpu_channels_last`); the dense reference must not.
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.inner = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        module = sys.modules[type(self.inner).__module__]
        with mock.patch.object(module, "cpu_channels_last", lambda t: t):
            return self.inner(x)


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def sparse_layer_macs(frontend: Frontend, batch: int, with_input_grad: bool) -> dict[str, float]:
    """Multiply-adds of the sparse first layer (not seen by torch's FLOP counter), counted
    analytically: T·D per location forward and for the weight gradient, K·D for the code
    gradient (D = out·k·k, K = max(T, U) slots)."""
    enc, first = frontend.encoder, frontend.decoder.convs[0]
    locations = batch * enc.output_size(frontend.decoder.image_size) ** 2
    d = first.out_channels * first.kernel_size[0] * first.kernel_size[1]
    slots = max(enc.top_t, enc.bpda.top_u or enc.n_atoms) if with_input_grad else enc.top_t  # 0: all
    return {"forward": locations * enc.top_t * d, "weight_grad": locations * enc.top_t * d,
            "code_grad": locations * slots * d}
