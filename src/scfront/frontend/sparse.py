"""Sparse operations of the frontend: both sides of the codes computed from the active atoms only.

The codes have at most T of n_atoms non-zero coefficients per location (T = 15 of 500 on
CIFAR-10, 3 %), yet a dense ``conv_transpose2d`` multiplies every one of them: 540 M
multiply-adds per CIFAR-10 image for the default decoder. Written per location, a transposed
convolution adds ``Σ_k c_k·W[k]`` (a (out, k, k) slice per atom) into the output window of that
location, so with slot codes (:class:`~scfront.frontend.codes.SparseCodes`):

- forward: ``cols[l] = Σ_{s<T} v[l,s]·W[idx[l,s]]`` (an embedding bag over the rows of W), then
  the windows are overlap-added (col2im, in channels-last) onto the bias;
- weight gradient: ``∂W[k] = Σ_{(l,s): idx[l,s]=k} v[l,s]·unfold(g)[l]``, a sparse-times-dense
  product over the same T entries per location;
- code gradient (attacks): ``∂v[l,s] = ⟨W[idx[l,s]], unfold(g)[l]⟩`` only for the K slots the
  encoder kept (BPDA top-U sends no gradient anywhere else), a sampled dense product.

Each costs T/n (or K/n) of the dense layer. The result equals the dense layer up to float
summation order (checked by the tests against ``conv_transpose2d`` to 1e-4).

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


def _weight_grad(indices: torch.Tensor, values: torch.Tensor, g_cols: torch.Tensor,
                 n_atoms: int) -> torch.Tensor:
    """Σ over entries of values·g_cols[row] into row ``indices`` of an (n_atoms, D) matrix.

    indices, values: (N, T); g_cols: (N, D). Computed as (sparse Cᵀ) @ g_cols with Cᵀ in CSR
    (rows = atoms), which MKL multiplies without materialising the (N·T, D) products.
    """
    n_loc, t = indices.shape
    flat = indices.reshape(-1)
    order = torch.argsort(flat, stable=True)
    crow = torch.zeros(n_atoms + 1, dtype=torch.int64, device=flat.device)
    crow[1:] = torch.bincount(flat, minlength=n_atoms).cumsum(0)
    cols = torch.div(order, t, rounding_mode="floor")
    with _quiet_sparse():
        mat = torch.sparse_csr_tensor(crow, cols, values.reshape(-1)[order], (n_atoms, n_loc),
                                      dtype=g_cols.dtype, device=g_cols.device)
        return mat @ g_cols


def _code_grad(indices: torch.Tensor, weight_rows: torch.Tensor, g_cols: torch.Tensor) -> torch.Tensor:
    """⟨weight_rows[indices[l, s]], g_cols[l]⟩ for every (l, s): (N, K), as a sampled matmul.

    When the slots cover a large part of the atoms (BPDA identity through top-T: all of them),
    the dense product followed by a gather is cheaper.
    """
    n_loc, k = indices.shape
    if k > DENSE_CODE_GRAD_FRACTION * weight_rows.shape[0]:
        return torch.gather(g_cols @ weight_rows.t(), 1, indices)
    crow = torch.arange(0, n_loc * k + 1, k, dtype=torch.int64, device=indices.device)
    with _quiet_sparse():
        pattern = torch.sparse_csr_tensor(crow, indices.reshape(-1),
                                          torch.zeros(n_loc * k, dtype=g_cols.dtype, device=g_cols.device),
                                          (n_loc, weight_rows.shape[0]))
        out = torch.sparse.sampled_addmm(pattern, g_cols, weight_rows.t(), beta=0.0, alpha=1.0)
    return out.values().reshape(n_loc, k)


def _overlap_add(cols: torch.Tensor, out: torch.Tensor, stride: int) -> torch.Tensor:
    """col2im in channels-last: add window (a, c) of every location into ``out`` in place.

    cols: (B, H', W', kh, kw, C); out: (B, H_out, W_out, C) with H_out = (H'−1)·stride + kh.
    """
    _, h, w, kh, kw, _ = cols.shape
    for a in range(kh):
        for c in range(kw):
            out[:, a:a + stride * (h - 1) + 1:stride, c:c + stride * (w - 1) + 1:stride, :] += cols[:, :, :, a, c, :]
    return out


def _windows(grad: torch.Tensor, h: int, w: int, kh: int, kw: int, stride: int) -> torch.Tensor:
    """im2col in channels-last, the adjoint of :func:`_overlap_add`: (B, H', W', kh, kw, C) view.

    grad: (B, H_out, W_out, C) contiguous.
    """
    sb, sh, sw, sc = grad.stride()
    return grad.as_strided((grad.shape[0], h, w, kh, kw, grad.shape[3]),
                           (sb, stride * sh, stride * sw, sh, sw, sc))


def _slots_transposed(values: torch.Tensor, indices: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """Σ_slots values·weight[indices] overlap-added: (B, H_out, W_out, out) channels-last.

    values, indices: (B, H', W', S); weight: (n_atoms, out, k, k) (transposed-conv layout).
    """
    b, h, w, slots = values.shape
    n_atoms, out_ch, kh, kw = weight.shape
    # one row per atom, ordered (kh, kw, out) so that a window is channels-last
    rows = weight.detach().permute(0, 2, 3, 1).reshape(n_atoms, kh * kw * out_ch)
    cols = F.embedding_bag(indices.reshape(-1, slots), rows,
                           per_sample_weights=values.detach().reshape(-1, slots), mode="sum")
    size = ((h - 1) * stride + kh, (w - 1) * stride + kw)
    if bias is None:
        out = cols.new_zeros(b, size[0], size[1], out_ch)
    else:
        out = bias.detach().view(1, 1, 1, out_ch).expand(b, size[0], size[1], out_ch).clone()
    return _overlap_add(cols.view(b, h, w, kh, kw, out_ch), out, stride)


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
        n_atoms, out_ch, kh, kw = weight.shape
        need_values, _, need_weight, need_bias, _, _ = ctx.needs_input_grad
        grad_values = grad_weight = grad_bias = None
        g = grad.permute(0, 2, 3, 1).contiguous()  # no copy when grad is channels-last
        if need_values or need_weight:
            g_cols = _windows(g, h, w, kh, kw, stride).reshape(b * h * w, kh * kw * out_ch)
            if need_weight:
                grad_rows = _weight_grad(indices[..., :n_active].reshape(-1, n_active),
                                         values[..., :n_active].reshape(-1, n_active).detach(),
                                         g_cols, n_atoms)
                grad_weight = grad_rows.view(n_atoms, kh, kw, out_ch).permute(0, 3, 1, 2).contiguous()
            if need_values:
                rows = weight.detach().permute(0, 2, 3, 1).reshape(n_atoms, -1)
                grad_values = _code_grad(indices.reshape(-1, k_slots), rows, g_cols).view_as(values)
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
        n_atoms, channels, p, _ = atoms.shape
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
            patches = _windows(image, h, w, p, p, stride).reshape(b * h * w, p * p * channels)
            grad_rows = _weight_grad(indices.reshape(-1, slots), grad.reshape(-1, slots), patches, n_atoms)
            grad_atoms = grad_rows.view(n_atoms, p, p, channels).permute(0, 3, 1, 2).contiguous()
        return grad_x, grad_atoms, None, None, None


def sparse_conv_transpose(codes: SparseCodes, weight: torch.Tensor, bias: torch.Tensor | None,
                          stride: int) -> torch.Tensor:
    """The transposed convolution of ``codes.to_dense()`` with (weight, bias, stride), sparsely.

    codes: SparseCodes of B images; weight: (n_atoms, out, k, k) as in ``nn.ConvTranspose2d``.
    Returns (B, out, H_out, W_out) float32, equal to the dense layer up to summation order.
    """
    return SparseConvTranspose.apply(codes.values, codes.indices, weight, bias, stride, codes.n_active)
