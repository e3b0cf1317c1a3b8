"""Sparse operations of the frontend: both sides of the codes computed from the active atoms only.

The codes have at most T of n_atoms non-zero coefficients per location (T = 15 of 500 on
CIFAR-10, 3 %), yet a dense ``conv_transpose2d`` multiplies every one of them: 540 M
multiply-adds per CIFAR-10 image for the default decoder. Written per location, a transposed
convolution adds ``Σ_k c_k·W[k]`` (a (out, k, k) slice per atom) into the output window of that
location, so with slot codes (:class:`~scfront.frontend.codes.SparseCodes`):

- forward: ``cols[l] = Σ_{s<T} v[l,s]·W[idx[l,s]]`` (an embedding bag over the rows of W), then
  the windows are overlap-added (col2im, in channels-last) onto the bias;
- weight gradient: ``∂W[k] = Σ_{(l,s): idx[l,s]=k} v[l,s]·unfold(g)[l]``, computed as a dense
  GEMM (faster on CPU than the sparse products available, see :func:`_weight_grad`);
- code gradient (attacks): ``∂v[l,s] = ⟨W[idx[l,s]], unfold(g)[l]⟩`` only for the K slots the
  encoder kept (BPDA top-U sends no gradient anywhere else), a sampled dense product.

The forward and the code gradient do T/n (K/n) of the dense layer's multiply-adds, though as
gathers, which run several times less efficiently per multiply-add than a dense GEMM. The result
equals the dense layer up to float summation order (tests: ``conv_transpose2d``, float64).

The encoder side has the same structure: the gradient of the K kept responses
``z[l, s] = ⟨d_{idx[l,s]}, patch_l⟩`` with respect to the image is a transposed convolution of K
slots with the atoms (:class:`SlotCorrelation`), instead of scattering into a dense
(B, n_atoms, H', W') gradient and back-propagating the full convolution.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from scfront.frontend.codes import SparseCodes

__all__ = ["SlotCorrelation", "SparseConvTranspose", "sparse_conv_transpose"]

DENSE_CODE_GRAD_FRACTION = 0.25  # above this share of slots per atom, code gradients go dense


@contextlib.contextmanager
def _quiet_sparse() -> Iterator[None]:
    """Silence torch's notices that CSR tensors are beta / unchecked (ours are built valid)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
        yield


def _kernel_rows(weight: torch.Tensor) -> list[torch.Tensor]:
    """Per kernel row a, the (n_atoms, kw·out) matrix of weight[:, :, a, :] ordered (kw, out).

    weight: (n_atoms, out, kh, kw) (transposed-conv layout). Working one kernel row at a time
    keeps the gathered table small enough for the core's cache (the whole default decoder table
    is 9.6 MB; one row of it 2.4 MB).
    """
    n_atoms, out_ch, kh, kw = weight.shape
    w = weight.detach()
    return [w[:, :, a, :].permute(0, 2, 1).reshape(n_atoms, kw * out_ch) for a in range(kh)]


def _row_windows(g: torch.Tensor, h: int, w: int, kw: int, stride: int, a: int) -> torch.Tensor:
    """im2col of kernel row a in channels-last: (B·H'·W', kw·C), the adjoint of the forward adds.

    g: (B, H_out, W_out, C) contiguous; row (i, j) holds g[b, i·s + a, j·s + c, :] for c < kw.
    """
    sb, sh, sw, sc = g.stride()
    view = g[:, a:].as_strided((g.shape[0], h, w, kw, g.shape[3]), (sb, stride * sh, stride * sw, sw, sc),
                               g.storage_offset() + a * sh)
    return view.reshape(g.shape[0] * h * w, kw * g.shape[3])


def _slot_pattern(indices: torch.Tensor, dtype: torch.dtype, n_atoms: int) -> torch.Tensor:
    """CSR (N, n_atoms) with the sparsity of the slots (values unused): for sampled products."""
    n_loc, slots = indices.shape
    crow = torch.arange(0, n_loc * slots + 1, slots, dtype=torch.int64, device=indices.device)
    with _quiet_sparse():
        return torch.sparse_csr_tensor(crow, indices.reshape(-1),
                                       torch.zeros(n_loc * slots, dtype=dtype, device=indices.device),
                                       (n_loc, n_atoms))


def _code_grad(indices: torch.Tensor, rows: list[torch.Tensor], g: torch.Tensor, h: int, w: int,
               kw: int, stride: int) -> torch.Tensor:
    """⟨W[idx[l, s]], window_l(g)⟩ for every (l, s): (N, S), summed over the kernel rows.

    A sampled matrix product per kernel row; when the slots cover a large share of the atoms
    (BPDA identity through top-T: all of them) a dense product and a gather are cheaper.
    """
    n_loc, slots = indices.shape
    n_atoms = rows[0].shape[0]
    dense = slots > DENSE_CODE_GRAD_FRACTION * n_atoms
    pattern = None if dense else _slot_pattern(indices, g.dtype, n_atoms)
    total = None
    for a, rows_a in enumerate(rows):
        g_cols = _row_windows(g, h, w, kw, stride, a)
        if dense:
            part = torch.gather(g_cols @ rows_a.t(), 1, indices)
        else:
            with _quiet_sparse():
                part = torch.sparse.sampled_addmm(pattern, g_cols, rows_a.t(), beta=0.0).values()
            part = part.view(n_loc, slots)
        total = part if total is None else total.add_(part)
    assert total is not None
    return total


def _weight_grad(indices: torch.Tensor, values: torch.Tensor, g: torch.Tensor, h: int, w: int,
                 kh: int, kw: int, stride: int, n_atoms: int) -> torch.Tensor:
    """∂W (n_atoms, C, kh, kw) of ``Σ_slots values·W[indices]`` overlap-added, given the output
    gradient g (B, H_out, W_out, C) contiguous; indices, values: (N, S).

    ``Cᵀ @ windows(g)`` with the codes C as a dense (N, n_atoms) matrix: on this CPU a dense
    GEMM ran 2-3x faster than MKL's sparse-times-dense product and than the embedding-bag
    backward for these shapes (measured in benchmarks/, see results/benchmarks.md), so the
    weight gradient keeps the dense multiply count and only the forward and the code gradient
    use the sparsity.
    """
    n_loc, _ = indices.shape
    out_ch = g.shape[3]
    codes = values.new_zeros(n_loc, n_atoms).scatter_add_(1, indices, values)
    sb, sh, sw, sc = g.stride()
    windows = g.as_strided((g.shape[0], h, w, kh, kw, out_ch), (sb, stride * sh, stride * sw, sh, sw, sc))
    rows = codes.t() @ windows.reshape(n_loc, kh * kw * out_ch)
    return rows.view(n_atoms, kh, kw, out_ch).permute(0, 3, 1, 2).contiguous()


def _slots_transposed(values: torch.Tensor, indices: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """Σ_slots values·weight[indices] overlap-added: (B, H_out, W_out, out) channels-last.

    values, indices: (B, H', W', S); weight: (n_atoms, out, k, k) (transposed-conv layout).
    Per kernel row a: an embedding bag gives each location's (kw, out) window row, which is
    added in place into the output rows i·stride + a (col2im in channels-last).
    """
    b, h, w, slots = values.shape
    n_atoms, out_ch, kh, kw = weight.shape
    size = ((h - 1) * stride + kh, (w - 1) * stride + kw)
    if bias is None:
        out = values.new_zeros(b, size[0], size[1], out_ch)
    else:
        out = bias.detach().view(1, 1, 1, out_ch).expand(b, size[0], size[1], out_ch).clone()
    idx = indices.reshape(-1, slots)
    weights = values.detach().reshape(-1, slots)
    for a, rows_a in enumerate(_kernel_rows(weight)):
        window = F.embedding_bag(idx, rows_a, per_sample_weights=weights, mode="sum").view(b, h, w, kw, out_ch)
        for c in range(kw):
            out[:, a:a + stride * (h - 1) + 1:stride, c:c + stride * (w - 1) + 1:stride, :] += window[:, :, :, c, :]
    return out


class SparseConvTranspose(torch.autograd.Function):
    """``conv_transpose2d(dense(codes), weight, bias, stride)`` computed from the slots.

    Args (forward): values (B, H', W', K) float; indices (B, H', W', K) int64; weight
    (n_atoms, out, k, k); bias (out,); stride; n_active (T ≤ K: slots that carry values).
    Returns (B, out, (H'−1)·stride + k, (W'−1)·stride + k), stored channels-last (the layout
    in which the windows are summed, and the faster one for the convolutions that follow).
    """

    @staticmethod
    def forward(ctx: Any, values: torch.Tensor, indices: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None, stride: int, n_active: int) -> torch.Tensor:
        out = _slots_transposed(values[..., :n_active], indices[..., :n_active], weight, bias, stride)
        ctx.save_for_backward(values, indices, weight)
        ctx.geometry = (stride, n_active, bias is not None)
        return out.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        values, indices, weight = ctx.saved_tensors
        stride, n_active, has_bias = ctx.geometry
        b, h, w, k_slots = values.shape
        n_atoms, _, kh, kw = weight.shape
        need_values, _, need_weight, need_bias, _, _ = ctx.needs_input_grad
        grad_values = grad_weight = grad_bias = None
        g = grad.permute(0, 2, 3, 1).contiguous()  # no copy when grad is channels-last
        if need_weight:
            grad_weight = _weight_grad(indices[..., :n_active].reshape(-1, n_active),
                                       values[..., :n_active].reshape(-1, n_active).detach(),
                                       g, h, w, kh, kw, stride, n_atoms)
        if need_values:
            grad_values = _code_grad(indices.reshape(-1, k_slots), _kernel_rows(weight), g, h, w, kw,
                                     stride).view_as(values)
        if has_bias and need_bias:
            grad_bias = g.sum(dim=(0, 1, 2))
        return grad_values, None, grad_weight, grad_bias, None, None


class SlotCorrelation(torch.autograd.Function):
    """Forward: ``gather(z, -1, indices)``, the kept responses. Backward: to the image (and the
    atoms) through the K slots only.

    Args (forward): x (B, C, H, W) image; atoms (n_atoms, C, p, p); indices (B, H', W', K) int64;
    z (B, H', W', n_atoms) = conv2d(x, atoms, stride) permuted (computed without autograd, plus
    any input-independent noise); stride. Returns (B, H', W', K).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, atoms: torch.Tensor, indices: torch.Tensor,
                z: torch.Tensor, stride: int) -> torch.Tensor:
        ctx.save_for_backward(x, atoms, indices)
        ctx.stride = stride
        return torch.gather(z, -1, indices)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        x, atoms, indices = ctx.saved_tensors
        stride = ctx.stride
        need_x, need_atoms = ctx.needs_input_grad[:2]
        b, h, w, slots = grad.shape
        n_atoms, _, p, _ = atoms.shape
        grad_x = grad_atoms = None
        if need_x:
            if slots > DENSE_CODE_GRAD_FRACTION * n_atoms:
                dense = grad.new_zeros(b, h, w, n_atoms).scatter_(-1, indices, grad)
                covered = F.conv_transpose2d(dense.permute(0, 3, 1, 2), atoms.detach(), stride=stride)
            else:
                # atoms as a transposed-conv weight (n_atoms, C, p, p): the adjoint of conv2d
                covered = _slots_transposed(grad, indices, atoms, None, stride).permute(0, 3, 1, 2)
            # rows/columns beyond the last patch get no gradient
            grad_x = F.pad(covered, (0, x.shape[3] - covered.shape[3], 0, x.shape[2] - covered.shape[2]))
        if need_atoms:
            image = x.detach().permute(0, 2, 3, 1).contiguous()
            grad_atoms = _weight_grad(indices.reshape(-1, slots), grad.reshape(-1, slots), image,
                                      h, w, p, p, stride, n_atoms)
        return grad_x, grad_atoms, None, None, None


def sparse_conv_transpose(codes: SparseCodes, weight: torch.Tensor, bias: torch.Tensor | None,
                          stride: int) -> torch.Tensor:
    """The transposed convolution of ``codes.to_dense()`` with (weight, bias, stride), sparsely.

    codes: SparseCodes of B images; weight: (n_atoms, out, k, k) as in ``nn.ConvTranspose2d``.
    Returns (B, out, H_out, W_out) float32, equal to the dense layer up to summation order.
    """
    return SparseConvTranspose.apply(codes.values, codes.indices, weight, bias, stride, codes.n_active)
