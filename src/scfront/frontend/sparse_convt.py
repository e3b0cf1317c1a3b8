"""Transposed convolution of sparse codes: the decoder's first layer from the active atoms only.

The codes have at most T of n_atoms non-zero coefficients per location (T = 15 of 500 on
CIFAR-10, 3 %), yet a dense ``conv_transpose2d`` multiplies every one of them: 540 M
multiply-adds per CIFAR-10 image for the default decoder. Written per location, a transposed
convolution adds ``Σ_k c_k·W[k]`` (a (out, k, k) slice per atom) into the output window of that
location, so with slot codes (:class:`~scfront.frontend.codes.SparseCodes`):

- forward: ``cols[l] = Σ_{s<T} v[l,s]·W[idx[l,s]]`` (an embedding bag over the rows of W), then
  the windows are overlap-added (``fold``, i.e. col2im) and the bias added;
- weight gradient: ``∂W[k] = Σ_{(l,s): idx[l,s]=k} v[l,s]·unfold(g)[l]``, a sparse-times-dense
  product over the same T entries per location;
- code gradient (attacks): ``∂v[l,s] = ⟨W[idx[l,s]], unfold(g)[l]⟩`` only for the K slots the
  encoder kept (BPDA top-U sends no gradient anywhere else), a sampled dense product.

Each costs T/n (or K/n) of the dense layer. The result equals the dense layer up to float
summation order (checked by the tests against ``conv_transpose2d`` to 1e-4).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from scfront.frontend.codes import SparseCodes

__all__ = ["SparseConvTranspose", "sparse_conv_transpose"]

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


class SparseConvTranspose(torch.autograd.Function):
    """``conv_transpose2d(dense(codes), weight, bias, stride)`` computed from the slots.

    Args (forward): values (B, H', W', K) float; indices (B, H', W', K) int64; weight
    (n_atoms, out, k, k); bias (out,); stride; n_active (T ≤ K: slots that carry values).
    Returns (B, out, (H'−1)·stride + k, (W'−1)·stride + k).
    """

    @staticmethod
    def forward(ctx: Any, values: torch.Tensor, indices: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None, stride: int, n_active: int) -> torch.Tensor:
        b, h, w, k_slots = values.shape
        n_atoms, out_ch, kh, kw = weight.shape
        rows = weight.reshape(n_atoms, out_ch * kh * kw)
        idx_t = indices[..., :n_active].reshape(b * h * w, n_active)
        val_t = values[..., :n_active].reshape(b * h * w, n_active)
        cols = F.embedding_bag(idx_t, rows, per_sample_weights=val_t, mode="sum")
        size = ((h - 1) * stride + kh, (w - 1) * stride + kw)
        out = F.fold(cols.view(b, h * w, -1).transpose(1, 2), size, (kh, kw), stride=stride)
        if bias is not None:
            out = out + bias.view(1, -1, 1, 1)
        ctx.save_for_backward(values, indices, weight)
        ctx.geometry = (stride, n_active, bias is not None)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        values, indices, weight = ctx.saved_tensors
        stride, n_active, has_bias = ctx.geometry
        b, h, w, k_slots = values.shape
        n_atoms, out_ch, kh, kw = weight.shape
        need_values, _, need_weight, need_bias, _, _ = ctx.needs_input_grad
        grad_values = grad_weight = grad_bias = None
        if need_values or need_weight:
            g_cols = F.unfold(grad, (kh, kw), stride=stride).transpose(1, 2).reshape(b * h * w, -1)
            g_cols = g_cols.contiguous()
            if need_weight:
                grad_weight = _weight_grad(indices[..., :n_active].reshape(-1, n_active),
                                           values[..., :n_active].reshape(-1, n_active).detach(),
                                           g_cols, n_atoms).view_as(weight)
            if need_values:
                rows = weight.detach().reshape(n_atoms, -1)
                grad_values = _code_grad(indices.reshape(-1, k_slots), rows, g_cols).view_as(values)
        if has_bias and need_bias:
            grad_bias = grad.sum(dim=(0, 2, 3))
        return grad_values, None, grad_weight, grad_bias, None, None


def sparse_conv_transpose(codes: SparseCodes, weight: torch.Tensor, bias: torch.Tensor | None,
                          stride: int) -> torch.Tensor:
    """The transposed convolution of ``codes.to_dense()`` with (weight, bias, stride), sparsely.

    codes: SparseCodes of B images; weight: (n_atoms, out, k, k) as in ``nn.ConvTranspose2d``.
    Returns (B, out, H_out, W_out) float32, equal to the dense layer up to summation order.
    """
    return SparseConvTranspose.apply(codes.values, codes.indices, weight, bias, stride, codes.n_active)
