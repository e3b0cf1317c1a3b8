"""scfront.sampling: per-example random streams (RowGenerators) and the draws that accept them."""

from __future__ import annotations

import hashlib

import pytest
import torch

from scfront.errors import InputError
from scfront.sampling import DIRECT_MAX, RowGenerators, normal, randint, rows_of, stable_seed, uniform

MASK = (1 << 64) - 1


def _splitmix64(seed: int, n: int) -> list[int]:
    """Reference SplitMix64 (Steele et al. 2014) in Python integers: the first n outputs."""
    state, out = seed & MASK, []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append(z ^ (z >> 31))
    return out


def _draw(kind: str, shape: tuple[int, ...], gen) -> torch.Tensor:
    like = torch.zeros(1)
    if kind == "uniform":
        return uniform(shape, gen, like)
    if kind == "normal":
        return normal(shape, gen, like)
    return randint(7, shape, gen, torch.device("cpu"))


def test_stable_seed_is_the_documented_sha256_prefix() -> None:
    digest = hashlib.sha256(b"0/1/pgd-linf/4321").digest()[:8]
    expected = int.from_bytes(digest, "little")
    assert stable_seed(0, 1, "pgd-linf", 4321) & MASK == expected
    assert stable_seed(0, 1, "pgd-linf", 4321) == -9058465915702080800  # frozen: results depend on it
    assert stable_seed(0, 1, "pgd-linf", 4322) != stable_seed(0, 1, "pgd-linf", 4321)


def test_streams_are_splitmix64_sequences_and_subsets_continue_them() -> None:
    """The int64 arithmetic wraps as the reference's does; a subset advances its rows in place."""
    gen = RowGenerators.seeded(3, "attack", rows=[10, 11, 12])
    reference = [_splitmix64(stable_seed(3, "attack", r), 9) for r in (10, 11, 12)]
    first = gen.raw(4)
    assert [[v & MASK for v in row] for row in first.tolist()] == [ref[:4] for ref in reference]
    part = gen.subset(torch.tensor([2, 0]))
    assert len(part) == 2 and part.device == torch.device("cpu")
    second = part.raw(3)
    assert [[v & MASK for v in row] for row in second.tolist()] == [reference[2][4:7], reference[0][4:7]]
    third = gen.raw(2)  # rows 0 and 2 are 7 values in, row 1 only 4
    assert [[v & MASK for v in row] for row in third.tolist()] == [
        reference[0][7:9], reference[1][4:6], reference[2][7:9]]


@pytest.mark.parametrize("kind", ["uniform", "normal", "randint"])
@pytest.mark.parametrize("per_row", [(3, 1, 1), (DIRECT_MAX + 1,), (3, 8, 8)])
def test_row_i_depends_on_its_own_stream_only(kind: str, per_row: tuple[int, ...]) -> None:
    """Whatever the batch (its size, order, other rows), a row draws the same numbers."""
    ids = [4, 9, 2, 7, 5]
    batch = _draw(kind, (5,) + per_row, RowGenerators.seeded(1, kind, rows=ids))
    for i, image in enumerate(ids):
        alone = _draw(kind, (1,) + per_row, RowGenerators.seeded(1, kind, rows=[image]))
        assert torch.equal(batch[i], alone[0])
    reversed_batch = _draw(kind, (5,) + per_row, RowGenerators.seeded(1, kind, rows=ids[::-1]))
    assert torch.equal(reversed_batch, batch.flip(0))
    assert not torch.equal(batch[0], batch[1])  # distinct images, distinct streams


@pytest.mark.parametrize("kind", ["uniform", "normal", "randint"])
@pytest.mark.parametrize("per_row", [(2,), (DIRECT_MAX + 1,)])
def test_a_subset_draw_equals_the_rows_own_sequence(kind: str, per_row: tuple[int, ...]) -> None:
    """Drawing for some rows, then for all, gives each row the next numbers of its own stream."""
    gen = RowGenerators.seeded(2, rows=range(4))
    sub = rows_of(gen, torch.tensor([True, False, True, False]))
    a = _draw(kind, (2,) + per_row, sub)
    b = _draw(kind, (4,) + per_row, gen)
    for row in range(4):
        own = RowGenerators.seeded(2, rows=[row])
        if row in (0, 2):
            assert torch.equal(_draw(kind, (1,) + per_row, own)[0], a[row // 2])
        assert torch.equal(_draw(kind, (1,) + per_row, own)[0], b[row])


def test_distributions() -> None:
    gen = RowGenerators.seeded(0, rows=range(4000))
    u = uniform((4000, 50), gen, torch.zeros(1, dtype=torch.float64))
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.var()) - 1 / 12) < 0.002
    z = normal((4000, 50), gen, torch.zeros(1))
    assert abs(float(z.mean())) < 0.01 and abs(float(z.var()) - 1.0) < 0.02
    assert abs(float((z ** 4).mean()) - 3.0) < 0.1  # the kurtosis of a normal
    k = randint(7, (4000, 50), gen, torch.device("cpu"))
    counts = torch.bincount(k.flatten(), minlength=7).double()
    assert int(k.min()) == 0 and int(k.max()) == 6
    assert float(((counts - 200000 / 7) ** 2 / (200000 / 7)).sum()) < 30  # chi-square, 6 dof
    big = uniform((10, DIRECT_MAX + 1), gen.subset(torch.arange(10)), torch.zeros(1))
    assert 0.0 <= float(big.min()) and float(big.max()) < 1.0 and abs(float(big.mean()) - 0.5) < 0.05


def test_half_precision_stays_below_one() -> None:
    u = uniform((2000, 100), RowGenerators.seeded(0, rows=range(2000)), torch.zeros(1, dtype=torch.float16))
    assert u.dtype == torch.float16 and float(u.max()) < 1.0


def test_plain_generators_keep_batch_semantics() -> None:
    like = torch.zeros(1)
    assert torch.equal(uniform((3, 4), torch.Generator().manual_seed(5), like),
                       torch.rand(3, 4, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(normal((3, 4), torch.Generator().manual_seed(5), like),
                       torch.randn(3, 4, generator=torch.Generator().manual_seed(5)))
    g = torch.Generator()
    assert rows_of(g, torch.tensor([0])) is g and rows_of(None, torch.tensor([0])) is None


def test_misuse_raises_input_errors() -> None:
    gen = RowGenerators.seeded(0, rows=range(3))
    with pytest.raises(InputError, match="example dimension first"):
        uniform((4, 2), gen, torch.zeros(1))
    with pytest.raises(InputError, match="example dimension first"):
        normal((), gen, torch.zeros(1))
    with pytest.raises(InputError, match="distinct"):
        gen.subset(torch.tensor([1, 1]))
    with pytest.raises(InputError, match=r"\[0, 3\)"):
        gen.subset(torch.tensor([3]))
    with pytest.raises(InputError, match="mask"):
        gen.subset(torch.tensor([True, False]))
    with pytest.raises(InputError, match="high >= 1"):
        randint(0, (3,), gen, torch.device("cpu"))
    assert len(gen.subset(torch.zeros(3, dtype=torch.bool))) == 0
    assert uniform((0, 2), gen.subset(torch.zeros(3, dtype=torch.bool)), torch.zeros(1)).shape == (0, 2)
    assert normal((0, DIRECT_MAX + 1), gen.subset([]), torch.zeros(1)).shape == (0, DIRECT_MAX + 1)
