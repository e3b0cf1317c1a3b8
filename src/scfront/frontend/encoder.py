"""The sparse coding encoder (docs/method.md §2) with attack-time BPDA rules (§6).

Steps, in order, each optional: convolution with the dictionary atoms → uniform noise → top-T by
|z| per location → dropout of kept coefficients → ternary activation. The forward pass is always
exact; the backward pass of top-T and of the activation follows ``encoder.bpda``, which
:func:`use_bpda` replaces on every encoder of a model for the duration of an attack.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from scfront.config import EPS_8
from scfront.dictionary.core import AtomShape, Dictionary
from scfront.errors import CheckpointError, ConfigError, InputError
from scfront.frontend.bpda import BPDA, IdentityBackward, TanhSurrogateBackward, TopUMaskBackward, ternary
from scfront.frontend.codes import SparseCodes
from scfront.frontend.sparse import SlotCorrelation
from scfront.sampling import uniform

__all__ = ["Encoder", "RANGE_TOLERANCE", "top_indices", "use_bpda"]

RANGE_TOLERANCE = 1e-6  # inputs may leave [0, 1] by this much (float rounding in attacks)


def _check_number(name: str, value: Any, low: float, high: float = math.inf,
                  low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"encoder {name} must be a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ConfigError(f"encoder {name} must be in {lo}{low}, {high}{hi}, got {value!r}")
    return float(value)


def top_indices(magnitude: torch.Tensor, k: int, dim: int = -1, boundaries: tuple[int, ...] = ()) -> torch.Tensor:
    """Indices of the ``k`` largest entries along ``dim``, largest first.

    Ties are broken towards the lower index wherever they decide membership: at the k-th place
    and at every place in ``boundaries`` (e.g. T inside a top-U selection). The result therefore
    does not depend on the memory layout or on k (``torch.topk`` alone leaves ties unspecified,
    and the coherent CIFAR-10 dictionary does produce exactly equal float32 |z| at times).
    Rows with such ties, rare, are re-ranked by a stable sort.

    magnitude: any shape, float; non-negative float32/float64 (e.g. |z|) takes a faster path:
    the selection runs on the integer view of the bits, whose order is the same for
    non-negative floats (``torch.topk`` on int32 was 1.4-1.6x faster than on float32 for rows
    of 500 on this CPU; identical indices).
    """
    if magnitude.ndim == 1:
        return top_indices(magnitude.unsqueeze(0), k, -1, boundaries)[0]
    n = magnitude.shape[dim]
    if k >= n:
        return torch.sort(magnitude, dim=dim, descending=True, stable=True).indices
    values, indices = torch.topk(_order_preserving_bits(magnitude), k + 1, dim=dim, sorted=True)
    tied = torch.zeros_like(values.select(dim, 0), dtype=torch.bool)
    for place in {k, *boundaries}:
        if 0 < place <= k:
            tied |= values.select(dim, place - 1) == values.select(dim, place)
    indices = indices.narrow(dim, 0, k)
    if bool(tied.any()):
        rows = tied.nonzero(as_tuple=True)
        moved_mag, moved_idx = magnitude.movedim(dim, -1), indices.movedim(dim, -1)
        fixed = torch.sort(moved_mag[rows], dim=-1, descending=True, stable=True).indices[:, :k]
        moved_idx = moved_idx.clone()
        moved_idx[rows] = fixed
        indices = moved_idx.movedim(-1, dim)
    return indices


_SAME_SIZE_INT = {torch.float32: torch.int32, torch.float64: torch.int64}


def _order_preserving_bits(x: torch.Tensor) -> torch.Tensor:
    """``x`` viewed as integers when that keeps its order (float32/64, entries in [+0, +inf]).

    IEEE floats of the same sign order like their bit patterns. Any negative float, -0.0
    included, has a negative pattern and any NaN a pattern above +inf's, so one min/max pass
    over the bits (in memory order) decides; otherwise ``x`` is returned unchanged.
    """
    int_type = _SAME_SIZE_INT.get(x.dtype)
    if int_type is None or x.numel() == 0:
        return x
    bits = x.view(int_type)
    in_memory_order = bits.permute(*sorted(range(bits.ndim), key=lambda d: -bits.stride(d)))
    if not in_memory_order.is_contiguous():  # overlapping or gapped storage: not worth it
        return x
    low, high = torch.aminmax(in_memory_order)
    infinity = torch.tensor(float("inf"), dtype=x.dtype).view(int_type)
    if bool(low < 0) or bool(high > infinity):
        return x
    return bits


@contextlib.contextmanager
def ieee_fp32_convolutions() -> Iterator[None]:
    """Within the block, cuDNN convolutions of float32 tensors use full float32, not TF32.

    cuDNN uses TF32 (10-bit mantissa) for float32 convolutions by default on recent GPUs. The
    encoder's coefficients then move by about 1e-3 relative, enough to change which atoms pass
    top-T and the activation threshold: the shipped cifar10_cpu model was 74.0 % clean on an
    H200 and 75.3 % on the CPU, on the same 1,000 test images. The flag is
    global, so it is restored on exit; without CUDA the block changes nothing that is used.
    """
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9
        owner, name, value = conv, "fp32_precision", "ieee"
    else:
        owner, name, value = torch.backends.cudnn, "allow_tf32", False
    previous = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, previous)


def correlate(x: torch.Tensor, atoms: torch.Tensor, stride: int) -> torch.Tensor:
    """z = conv2d(x, atoms, stride) in IEEE float32 on every device.

    x: (B, C, H, W); atoms: (n_atoms, C, p, p). Returns (B, n_atoms, H', W') stored
    channels-last, so that its (B, H', W', n_atoms) permutation, the layout of top-T, is
    contiguous. The input is made channels-last first: oneDNN's convolution is then 2-3x faster
    on this shape, with bit-identical results (``python -m benchmarks.bench_correlate``). On CUDA
    the convolution runs under :func:`ieee_fp32_convolutions` (top-T and the threshold are
    discontinuous, so TF32 rounding changes the codes).
    """
    x = x.contiguous(memory_format=torch.channels_last)
    with ieee_fp32_convolutions() if x.is_cuda else contextlib.nullcontext():
        return F.conv2d(x, atoms, stride=stride)


class Encoder(nn.Module, AtomShape):
    """Sparse coding encoder: images → ternary sparse codes (docs/method.md §2).

    Args:
        dictionary: the atoms, (n_atoms, C, p, p); stored as a buffer (a Parameter when
            ``learnable``), so a saved state_dict is self-contained.
        stride: of the patch convolution (2 for CIFAR-10, 4 for Imagenette).
        top_t: coefficients kept per location (T = 15); ``None`` disables top-T.
        beta, assumed_eps: threshold j = β·ε_a of the activation (3 · 8/255 ≈ 0.0941).
        activation: ternary quantisation on/off.
        noise_gamma_train, noise_gamma_test: γ of the uniform noise in train / eval mode
            (``module.training``); 0 disables it (the "noisy" variant uses 100 / 0).
        dropout_p: probability of dropping a kept coefficient, without rescaling. It is applied
            in train and eval mode alike: the dropout variant is a randomised frontend (the
            original applied it unconditionally; evaluations use EOT against it).
        learnable: ablation "learnable dictionary": the atoms are a Parameter, their L1 norms
            are recomputed from the current atoms at every forward.
        bpda: backward rules, replaceable at attack time (``encoder.bpda = BPDA(...)``).
        generator: source of the noise and dropout randomness; default: a generator owned by the
            encoder, seeded from ``seed`` or, when ``seed`` is None, from fresh OS entropy.
            Training replaces it by the run's model generator, and loading a saved model by one
            keyed by ``model.random_seed`` (:mod:`scfront.models.randomness`).
        seed: seed of the owned generator (ignored when ``generator`` is given).

    ``forward(x)``: x (B, C, H, W) float in [0, 1] → codes (B, n_atoms, H', W') float32 with
    H' = (H − p)//stride + 1; with top-T and activation each location holds at most T non-zero
    values, each ±‖d_k‖₁.
    """

    def __init__(self, dictionary: Dictionary, stride: int = 2, top_t: int | None = 15,
                 beta: float = 3.0, assumed_eps: float = EPS_8, activation: bool = True,
                 noise_gamma_train: float = 0.0, noise_gamma_test: float = 0.0,
                 dropout_p: float = 0.0, learnable: bool = False, bpda: BPDA = BPDA(),
                 generator: torch.Generator | None = None, seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(dictionary, Dictionary):
            raise ConfigError(f"Encoder needs a scfront Dictionary, got {type(dictionary).__name__}")
        n_atoms, patch = dictionary.n_atoms, dictionary.patch_size
        if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= patch:
            raise ConfigError(f"encoder stride must be an integer in [1, patch size {patch}], got {stride!r}")
        if top_t is not None and (isinstance(top_t, bool) or not isinstance(top_t, int)
                                  or not 1 <= top_t <= n_atoms):
            raise ConfigError(f"encoder top_t must be None or an integer in [1, {n_atoms}] "
                              f"(the dictionary has {n_atoms} atoms), got {top_t!r}")
        self.stride = stride
        self.top_t = top_t
        self.beta = _check_number("beta", beta, 0.0)
        self.assumed_eps = _check_number("assumed_eps", assumed_eps, 0.0, low_open=True)
        self.activation = bool(activation)
        self.noise_gamma_train = _check_number("noise_gamma_train", noise_gamma_train, 0.0)
        self.noise_gamma_test = _check_number("noise_gamma_test", noise_gamma_test, 0.0)
        self.dropout_p = _check_number("dropout_p", dropout_p, 0.0, 1.0, high_open=True)
        self.learnable = bool(learnable)
        self.bpda = bpda
        if generator is None:
            generator = torch.Generator()
            if seed is None:
                generator.seed()  # this generator only; the global RNG is left alone
            else:
                generator.manual_seed(seed)
        self.generator = generator
        atoms = dictionary.atoms.clone()
        if self.learnable:
            self.atoms = nn.Parameter(atoms)
        else:
            self.register_buffer("atoms", atoms)

    # ------------------------------------------------------------------ properties
    @property
    def bpda(self) -> BPDA:
        return self._bpda

    @bpda.setter
    def bpda(self, rule: BPDA) -> None:
        if not isinstance(rule, BPDA):
            raise ConfigError(f"encoder.bpda must be a scfront.frontend.BPDA, got {type(rule).__name__}")
        self._bpda = rule

    @property
    def randomized(self) -> bool:
        """Whether the eval-mode forward pass draws (test-time noise or dropout): the deployed
        model is then random and is evaluated with EOT or wrapped in an ensemble."""
        return self.noise_gamma_test > 0.0 or self.dropout_p > 0.0

    @property
    def jump(self) -> float:
        """The activation threshold j = β·ε_a (on u = z/‖d_k‖₁)."""
        return self.beta * self.assumed_eps

    def l1_norms(self) -> torch.Tensor:
        """(n_atoms,) ‖d_k‖₁ of the current atoms, without gradient (recomputed every call)."""
        return self.atoms.detach().abs().flatten(1).sum(1)

    def output_size(self, size: int) -> int:
        """Spatial size H' of the codes for an input of size H."""
        return (size - self.patch_size) // self.stride + 1

    def dictionary(self) -> Dictionary:
        """The current atoms as a :class:`Dictionary` (detached copy)."""
        return Dictionary(self.atoms.detach().cpu().clone(), {"source": "encoder"})

    def extra_repr(self) -> str:
        return (f"n_atoms={self.n_atoms}, patch={self.patch_size}, stride={self.stride}, "
                f"top_t={self.top_t}, jump={self.jump:.4f}, activation={self.activation}, "
                f"noise_gamma=({self.noise_gamma_train}, {self.noise_gamma_test}), "
                f"dropout_p={self.dropout_p}, learnable={self.learnable}, bpda={self.bpda}")

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        saved = state_dict.get(prefix + "atoms")
        if saved is not None and tuple(saved.shape) != tuple(self.atoms.shape):
            raise CheckpointError(
                f"saved dictionary atoms have shape {tuple(saved.shape)} but this encoder was built "
                f"for {tuple(self.atoms.shape)} (n_atoms, channels, p, p)")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ input checks
    def check_input(self, x: torch.Tensor) -> None:
        """Raise InputError unless x is (B, C, H, W) float in [0, 1] and at least one patch big."""
        if not isinstance(x, torch.Tensor):
            raise InputError(f"encoder input must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise InputError(f"encoder input must be (batch, {self.channels}, height, width) images, "
                             f"got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputError(f"encoder input must be a float tensor in [0, 1], got {x.dtype}")
        if min(x.shape[2], x.shape[3]) < self.patch_size:
            raise InputError(f"images of {x.shape[2]}x{x.shape[3]} are smaller than the "
                             f"{self.patch_size}x{self.patch_size} dictionary patches")
        if x.numel() == 0:
            raise InputError("encoder input is an empty batch")
        low, high = torch.aminmax(x.detach())
        low_v, high_v = float(low), float(high)
        if math.isnan(low_v) or math.isnan(high_v):  # aminmax propagates NaN
            raise InputError("encoder input contains NaN")
        if low_v < -RANGE_TOLERANCE or high_v > 1.0 + RANGE_TOLERANCE:
            raise InputError(f"encoder input must be images in [0, 1], got values in [{low_v:.4g}, {high_v:.4g}]")

    # ------------------------------------------------------------------ steps
    def _uniform(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """U[0, 1) numbers from the encoder's generator, on ``like``'s device and dtype."""
        return uniform(shape, self.generator, like)

    def _noise(self, z: torch.Tensor, l1: torch.Tensor) -> torch.Tensor:
        """z + γ·ε_a·‖d_k‖₁·n, n ~ U[-1, 1] with unit L1 norm over each (sample, atom) map."""
        gamma = self.noise_gamma_train if self.training else self.noise_gamma_test
        if gamma == 0.0:
            return z
        n = self._uniform(tuple(z.shape), z) * 2.0 - 1.0
        n = n / n.abs().sum(dim=(2, 3), keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)
        return z + (gamma * self.assumed_eps) * l1.view(1, -1, 1, 1) * n

    def _activate(self, v: torch.Tensor, l1: torch.Tensor) -> torch.Tensor:
        if not self.activation:
            return v
        jump = self.jump
        if self.bpda.steepness == 0.0:
            return IdentityBackward.apply(v, lambda t: ternary(t, l1, jump))
        return TanhSurrogateBackward.apply(v, l1, jump, self.bpda.steepness)

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        """z = conv2d(x, atoms, stride) (+ noise): (B, n_atoms, H', W') float32 (steps 1-2)."""
        self.check_input(x)
        z = correlate(x, self.atoms, self.stride)
        return self._noise(z, self.l1_norms())

    def _needs_input_grad(self, x: torch.Tensor) -> bool:
        return torch.is_grad_enabled() and (x.requires_grad or self.atoms.requires_grad)

    def sparse_codes(self, x: torch.Tensor) -> SparseCodes:
        """The codes in slot layout (see :class:`SparseCodes`); needs top-T.

        Slots hold the top-K atoms by |z| per location, K = T when no gradient is needed and
        K = max(T, U) under autograd with ``bpda.top_u = U`` (K = n_atoms for the identity rule
        ``top_u = 0``).
        """
        if self.top_t is None:
            raise ConfigError("sparse codes need top-T; this encoder has top_t=None")
        self.check_input(x)
        n, t = self.n_atoms, self.top_t
        top_u = self.bpda.top_u
        needs_grad = self._needs_input_grad(x)
        if not needs_grad:
            slots = t
        elif top_u == 0:
            slots = n  # identity through top-T: every coefficient gets gradient
        else:
            slots = max(t, min(top_u, n))
        with torch.no_grad():  # the gradient is routed through the kept slots only (SlotCorrelation)
            z = self._noise(correlate(x, self.atoms, self.stride), self.l1_norms())
        z_last = z.permute(0, 2, 3, 1)  # (B, H', W', n): one location per row
        # |z| written contiguous in this layout: topk along a strided axis is far slower
        magnitude = torch.abs(z_last, out=torch.empty(z_last.shape, dtype=z.dtype, device=z.device))
        indices = top_indices(magnitude, slots, dim=-1, boundaries=(t,))
        if needs_grad:
            values = SlotCorrelation.apply(x, self.atoms, indices, z_last, self.stride)
        else:
            values = torch.gather(z_last, -1, indices)
        slot = torch.arange(slots, device=z.device)
        keep = slot < t
        if needs_grad and top_u == 0:
            values = IdentityBackward.apply(values, lambda v: torch.where(keep, v, torch.zeros_like(v)))
        elif needs_grad:
            values = TopUMaskBackward.apply(values, keep, slot < top_u)
        if self.dropout_p > 0.0:
            # drawn on the dense layout so that the dense and slot forms see the same mask
            kept = self._uniform(tuple(z_last.shape), z) >= self.dropout_p
            values = torch.where(torch.gather(kept, -1, indices), values, torch.zeros_like(values))
        l1 = self.l1_norms()
        values = self._activate(values, l1[indices])
        return SparseCodes(values, indices, n, t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) float in [0, 1] → codes (B, n_atoms, H', W') float32 (channels-last)."""
        if self.top_t is not None:
            return self.sparse_codes(x).to_dense()
        z = self.preactivation(x)
        if self.dropout_p > 0.0:
            kept = self._uniform(tuple(z.permute(0, 2, 3, 1).shape), z) >= self.dropout_p
            z = torch.where(kept.permute(0, 3, 1, 2), z, torch.zeros_like(z))
        return self._activate(z, self.l1_norms().view(1, -1, 1, 1))


@contextlib.contextmanager
def use_bpda(model: nn.Module, rules: BPDA) -> Iterator[list[Encoder]]:
    """Use the backward rules ``rules`` on every :class:`Encoder` inside ``model`` for the block.

    The previous rule of each encoder is restored on exit, also on error. ``rules`` is a whole
    :class:`~scfront.frontend.bpda.BPDA` value (``BPDA(top_u=0, steepness=0)``: identity through
    top-T and the activation); the forward pass is unchanged.

    Example::

        with scfront.frontend.use_bpda(model, BPDA(top_u=60, steepness=8.0)):
            (grad,) = torch.autograd.grad(loss_fn(model(x)), x)

    Yields the list of encoders that were changed. Raises ConfigError if ``rules`` is not a BPDA
    value or ``model`` holds no encoder (so that an attack cannot silently run with rules it
    asked not to use).
    """
    if not isinstance(rules, BPDA):
        raise ConfigError(f"use_bpda needs a scfront.frontend.BPDA value, got {type(rules).__name__}")
    encoders = [m for m in model.modules() if isinstance(m, Encoder)]
    if not encoders:
        raise ConfigError(f"{type(model).__name__} contains no sparse coding Encoder to set BPDA rules on")
    previous = [enc.bpda for enc in encoders]
    try:
        for enc in encoders:
            enc.bpda = rules
        yield encoders
    finally:
        for enc, rule in zip(encoders, previous):
            enc.bpda = rule
