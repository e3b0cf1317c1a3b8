"""Random draws from explicit randomness, placed next to the data. Every draw of scfront goes here.

Two kinds of randomness are accepted wherever a draw is made:

- a ``torch.Generator`` (or ``None``: torch's default generator on the data's device, never
  reseeded): one stream for the whole tensor, *batch semantics*. torch only samples with a
  generator on that generator's own device; the numbers are drawn there and moved to the data,
  so a CPU generator serves a CUDA model and the stream does not depend on where the model runs.
- :class:`RowGenerators`: one independent stream per example (*row*). The first dimension of a
  draw is then the example dimension and must equal ``len(generators)``; row ``i`` of the result
  is computed from stream ``i`` only, so what an example draws never depends on which other
  examples share its batch, how large the batch is, or in which order batches run. An attack
  that works on a subset of its rows passes :func:`rows_of` of its generators (the streams of
  those rows, advanced in place), which is a no-op for a plain generator, so one code path
  serves both kinds.

The per-row streams are SplitMix64 sequences (Steele, Lea & Flood 2014, "Fast splittable
pseudorandom number generators"; the generator that seeds xoshiro): the ``j``-th 64-bit value of
the stream with key ``s`` is ``mix64(s + (j + 1)·γ)`` with ``γ = 0x9E3779B97F4A7C15`` and
``mix64`` the Stafford variant 13 finaliser. The state of a stream is one counter, so a subset
of rows is a view of the same counters, and a draw for many rows is computed without a Python
loop over the rows. A row's key comes from :func:`stable_seed` of the parts naming it (for an
evaluation: seed, attack, image index).

How a draw of ``k`` numbers per row is made from a row's stream:

- ``k ≤ 256`` (:data:`DIRECT_MAX`; e.g. Square's window positions and signs): straight from the
  stream's next values, vectorised over the rows; the same integers on every device.
  :func:`uniform` takes the top ``b`` bits of a value as ``m·2^-b`` in [0, 1), ``b`` the draw
  dtype's significand width (24 for float32, 53 for float64), exact in that dtype;
  :func:`normal` is Box-Muller in float64 from two values, cast to the draw dtype;
  :func:`randint` is the top 63 bits modulo ``high`` (bias at most ``high / 2^63``).
- ``k > 256`` (e.g. a random start, Boundary's and HopSkipJump's probes): the stream's next value
  seeds a ``torch.Generator`` on the streams' device, which draws the row's ``k`` numbers with
  ``torch.rand``/``randn``/``randint`` (one call per row: torch's speed for large draws, where
  the vectorised integer hash is 4-13x slower on a CPU). These numbers are torch's for that
  device type, as with a plain generator.
"""

from __future__ import annotations

import hashlib
import math
from typing import Sequence, Union

import torch

from scfront.errors import InputError

__all__ = ["DIRECT_MAX", "RowGenerators", "Randomness", "normal", "randint", "rows_of", "stable_seed", "uniform"]

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
# Elements computed at once per draw (each needs a few int64 temporaries).
_CHUNK_ELEMENTS = 1 << 22


def _as_int64(value: int) -> int:
    """An unsigned 64-bit integer as the int64 with the same bits (two's complement)."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


def stable_seed(*parts: object) -> int:
    """A 64-bit key from ``parts``, the same in every run, process and Python version.

    The key is the first 8 bytes (little-endian) of ``sha256("/".join(str(p) for p in parts))``,
    as an int64 (two's complement). Example: ``stable_seed(0, 1, "pgd-linf", 4321)``.
    """
    text = "/".join(str(p) for p in parts)
    return _as_int64(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))


def _shift_right(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 ``z`` (torch's ``>>`` is arithmetic on signed integers)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's output function on int64 tensors (wrapping multiplication)."""
    z = (z ^ _shift_right(z, 30)) * _as_int64(_MIX1)
    z = (z ^ _shift_right(z, 27)) * _as_int64(_MIX2)
    return z ^ _shift_right(z, 31)


class RowGenerators:
    """Independent random streams, one per example (row) of a batch.

    Build them with :meth:`seeded` (keys from :func:`stable_seed`) or from explicit int64 keys.
    :meth:`subset` returns the streams of some rows *sharing their state*: drawing from a subset
    advances those rows' streams in the parent as well, exactly as if the parent had drawn for
    them alone. The state is one draw counter per stream, on :attr:`device`, where the numbers
    are computed before they are moved to the data.

    Args:
        keys: (N,) integer tensor: the rows' 64-bit keys.
        device: where the state lives and draws are computed (default: ``keys``'s device).
    """

    def __init__(self, keys: torch.Tensor, device: torch.device | str | None = None) -> None:
        if not isinstance(keys, torch.Tensor) or keys.dim() != 1 or keys.dtype.is_floating_point:
            raise InputError(f"RowGenerators needs a 1-D integer tensor of keys, got {keys!r}")
        device = keys.device if device is None else torch.device(device)
        self._keys = keys.to(device=device, dtype=torch.int64)
        self._counts = torch.zeros_like(self._keys)
        self._rows = torch.arange(self._keys.shape[0], device=device)

    @classmethod
    def seeded(cls, seed: int, *parts: object, rows: Sequence[int] | torch.Tensor,
               device: torch.device | str = "cpu") -> "RowGenerators":
        """Streams keyed ``stable_seed(seed, *parts, row)`` for each ``row`` of ``rows``.

        Args:
            seed: the base seed. parts: what the streams are for (e.g. attack position and name).
            rows: (N,) identities of the rows, e.g. dataset image indices; row ``i`` of every
                draw then depends on ``(seed, parts, rows[i])`` only.
        """
        values = rows.tolist() if isinstance(rows, torch.Tensor) else list(rows)
        keys = torch.tensor([stable_seed(seed, *parts, int(r)) for r in values], dtype=torch.int64)
        return cls(keys, device)

    def __len__(self) -> int:
        return int(self._rows.shape[0])

    def __repr__(self) -> str:
        return f"RowGenerators({len(self)} rows on {self.device})"

    @property
    def device(self) -> torch.device:
        """The device where the streams' state lives and the numbers are computed."""
        return self._keys.device

    def subset(self, index: torch.Tensor | Sequence[int]) -> "RowGenerators":
        """The streams of rows ``index`` (a bool mask of length N or distinct integer positions),
        in that order, sharing their state with this object."""
        if isinstance(index, torch.Tensor):
            index = index.to(self.device)
        else:
            values = list(index)
            is_mask = bool(values) and all(isinstance(v, bool) for v in values)
            index = torch.as_tensor(values, dtype=torch.bool if is_mask else torch.int64, device=self.device)
        if index.dtype == torch.bool:
            if index.shape != (len(self),):
                raise InputError(f"a row mask must have shape ({len(self)},), got {tuple(index.shape)}")
            index = index.nonzero().squeeze(1)
        elif index.dtype.is_floating_point or index.dim() != 1:
            raise InputError(f"row positions must be a 1-D integer tensor or a bool mask, got {index.dtype} "
                             f"of shape {tuple(index.shape)}")
        index = index.to(torch.int64)
        if index.numel():
            if int(index.min()) < 0 or int(index.max()) >= len(self):
                raise InputError(f"row positions must lie in [0, {len(self)}), got "
                                 f"[{int(index.min())}, {int(index.max())}]")
            if torch.unique(index).numel() != index.numel():
                raise InputError("row positions must be distinct: a stream cannot serve two rows")
        out = object.__new__(RowGenerators)
        out._keys, out._counts, out._rows = self._keys, self._counts, self._rows[index]
        return out

    def raw(self, per_row: int) -> torch.Tensor:
        """The next ``per_row`` 64-bit values of every stream: (N, per_row) int64 on :attr:`device`.

        Advances every stream by ``per_row``. The building block of :func:`uniform`,
        :func:`normal` and :func:`randint`.
        """
        n = len(self)
        out = torch.empty((n, per_row), dtype=torch.int64, device=self.device)
        if n == 0 or per_row == 0:
            return out
        keys, start = self._keys[self._rows], self._counts[self._rows]
        rows_per_chunk = max(1, _CHUNK_ELEMENTS // per_row)
        cols_per_chunk = min(per_row, _CHUNK_ELEMENTS)
        for r0 in range(0, n, rows_per_chunk):
            r1 = min(n, r0 + rows_per_chunk)
            for c0 in range(0, per_row, cols_per_chunk):
                c1 = min(per_row, c0 + cols_per_chunk)
                j = torch.arange(c0 + 1, c1 + 1, device=self.device, dtype=torch.int64)
                state = keys[r0:r1, None] + (start[r0:r1, None] + j[None, :]) * _as_int64(_GOLDEN)
                out[r0:r1, c0:c1] = _mix64(state)
        self._counts[self._rows] = start + per_row
        return out


#: What a draw accepts: one stream for the tensor, one stream per row, or torch's default.
Randomness = Union[torch.Generator, RowGenerators, None]


def rows_of(generator: Randomness, index: torch.Tensor | Sequence[int]) -> Randomness:
    """The randomness of rows ``index`` of a batch: ``generator.subset(index)`` for
    :class:`RowGenerators`, ``generator`` itself for a ``torch.Generator`` or ``None``."""
    return generator.subset(index) if isinstance(generator, RowGenerators) else generator


def _per_row(shape: Sequence[int], generator: RowGenerators) -> int:
    """Numbers per row of a per-row draw of ``shape`` (checks its first dimension)."""
    if len(shape) == 0 or int(shape[0]) != len(generator):
        raise InputError(f"a draw with per-example generators must have the example dimension first: "
                         f"shape {tuple(shape)} for {len(generator)} rows")
    return math.prod(int(s) for s in shape[1:])


def _unit_interval(bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """int64 random values → ``k·2^-b`` in [0, 1), exact in ``dtype`` (``b`` its significand width)."""
    b = min(round(-math.log2(torch.finfo(dtype).eps)) + 1, 53)  # eps = 2^-(significand bits - 1)
    return _shift_right(bits, 64 - b).to(torch.float64).mul_(2.0 ** -b).to(dtype)


#: Numbers per row up to which a per-row draw comes straight from the streams (vectorised);
#: larger draws seed one torch.Generator per row (see the module docstring).
DIRECT_MAX = 256


def _draw_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


def _row_generators(generators: RowGenerators) -> list[torch.Generator]:
    """One fresh ``torch.Generator`` per row on the streams' device, seeded by each stream's next value."""
    seeds = generators.raw(1)[:, 0].tolist()
    return [torch.Generator(device=generators.device).manual_seed(s & _MASK64) for s in seeds]


def _stack(rows: list[torch.Tensor], k: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.stack(rows) if rows else torch.empty((0, k), dtype=dtype, device=device)


def uniform(shape: Sequence[int], generator: Randomness, like: torch.Tensor,
            draw_dtype: torch.dtype | None = None) -> torch.Tensor:
    """U[0, 1) numbers of ``shape`` on ``like``'s device and dtype.

    Args:
        shape: the output shape; with :class:`RowGenerators` ``shape[0]`` is the number of rows.
        generator: the randomness (``None``: torch's default).
        like: a tensor whose device and dtype the result takes.
        draw_dtype: the dtype in which the numbers are drawn (``None``: ``like.dtype``); a fixed
            draw dtype (e.g. float32) makes the random stream independent of the data's dtype.
    Returns:
        (``shape``) float tensor in [0, 1).
    Raises:
        InputError: per-row generators and ``shape[0]`` is not their number of rows.
    """
    dtype = like.dtype if draw_dtype is None else draw_dtype
    if isinstance(generator, RowGenerators):
        k = _per_row(shape, generator)
        if k <= DIRECT_MAX:
            draw = _unit_interval(generator.raw(k), dtype)
        else:
            draw = _stack([torch.rand(k, generator=g, device=generator.device, dtype=dtype)
                           for g in _row_generators(generator)], k, dtype, generator.device)
        draw = draw.view(tuple(shape))
    else:
        draw = torch.rand(tuple(shape), generator=generator, device=_draw_device(generator, like.device), dtype=dtype)
    return draw.to(device=like.device, dtype=like.dtype)


def normal(shape: Sequence[int], generator: Randomness, like: torch.Tensor,
           draw_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Standard normal numbers of ``shape`` on ``like``'s device and dtype (arguments as :func:`uniform`).

    Per-row draws of at most :data:`DIRECT_MAX` numbers: Box-Muller ``sqrt(−2 ln u₁)·cos(2π u₂)``
    in float64, ``u₁`` in (0, 1] and ``u₂`` in [0, 1) from the first and second half of the
    row's next ``2·k`` values.
    """
    dtype = like.dtype if draw_dtype is None else draw_dtype
    if isinstance(generator, RowGenerators):
        k = _per_row(shape, generator)
        if k <= DIRECT_MAX:
            bits = generator.raw(2 * k)
            u1 = 1.0 - _unit_interval(bits[:, :k], torch.float64)  # (0, 1]: the logarithm stays finite
            u2 = _unit_interval(bits[:, k:], torch.float64)
            draw = (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)).to(dtype)
        else:
            draw = _stack([torch.randn(k, generator=g, device=generator.device, dtype=dtype)
                           for g in _row_generators(generator)], k, dtype, generator.device)
        draw = draw.view(tuple(shape))
    else:
        draw = torch.randn(tuple(shape), generator=generator, device=_draw_device(generator, like.device), dtype=dtype)
    return draw.to(device=like.device, dtype=like.dtype)


def randint(high: int, shape: Sequence[int], generator: Randomness,
            device: torch.device) -> torch.Tensor:
    """Integers uniform in ``[0, high)`` of ``shape``: int64 on ``device`` (``high`` ≥ 1)."""
    if int(high) < 1:
        raise InputError(f"randint needs high >= 1, got {high}")
    if isinstance(generator, RowGenerators):
        k = _per_row(shape, generator)
        if k <= DIRECT_MAX:
            draw = _shift_right(generator.raw(k), 1) % int(high)
        else:
            draw = _stack([torch.randint(int(high), (k,), generator=g, device=generator.device)
                           for g in _row_generators(generator)], k, torch.int64, generator.device)
        draw = draw.view(tuple(shape))
    else:
        draw = torch.randint(high, tuple(shape), generator=generator, device=_draw_device(generator, device))
    return draw.to(device)
