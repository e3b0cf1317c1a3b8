"""Patch extraction and the random patch sampler against a naive loop."""

from __future__ import annotations

import pytest
import torch

from scfront.dictionary.patches import PatchSampler, extract_patches, grid_size
from scfront.errors import InputError


def naive_patches(images: torch.Tensor, p: int, stride: int) -> torch.Tensor:
    rows = []
    n, c, h, w = images.shape
    for k in range(n):
        for y in range(0, h - p + 1, stride):
            for x in range(0, w - p + 1, stride):
                row = [float(images[k, ch, y + i, x + j])
                       for i in range(p) for j in range(p) for ch in range(c)]
                rows.append(row)
    return torch.tensor(rows, dtype=torch.float32)


@pytest.mark.parametrize("p,stride", [(3, 2), (4, 2), (2, 3), (5, 1)])
def test_extract_patches_matches_naive_loop(p: int, stride: int) -> None:
    images = torch.rand(2, 3, 9, 11, generator=torch.Generator().manual_seed(p * 10 + stride))
    got = extract_patches(images, p, stride)
    nh, nw = grid_size(9, 11, p, stride)
    assert got.shape == (2 * nh * nw, p * p * 3)
    assert torch.equal(got, naive_patches(images, p, stride))


def test_uint8_images_become_unit_floats() -> None:
    images = torch.randint(0, 256, (1, 3, 6, 6), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    got = extract_patches(images, 4, 2)
    assert got.dtype == torch.float32
    assert torch.allclose(got, naive_patches(images.float() / 255.0, 4, 2))


def test_sampler_gathers_exactly_the_extracted_rows() -> None:
    images = torch.randint(0, 256, (5, 3, 12, 10), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    sampler = PatchSampler(images, 4, 2, torch.Generator().manual_seed(2))
    every = extract_patches(images, 4, 2)
    assert sampler.total == every.shape[0]
    indices = sampler.indices(sampler.total, replace=False)
    assert torch.equal(torch.sort(indices).values, torch.arange(sampler.total))
    assert torch.equal(sampler.gather(indices), every[indices])


def test_sampler_is_seeded() -> None:
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    first = PatchSampler(images, 4, 2, torch.Generator().manual_seed(7)).sample(50)
    again = PatchSampler(images, 4, 2, torch.Generator().manual_seed(7)).sample(50)
    other = PatchSampler(images, 4, 2, torch.Generator().manual_seed(8)).sample(50)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_bad_inputs_raise_one_clear_error() -> None:
    with pytest.raises(InputError, match="4-D"):
        extract_patches(torch.rand(3, 8, 8), 4, 2)
    with pytest.raises(InputError, match="smaller"):
        extract_patches(torch.rand(1, 3, 3, 3), 4, 2)
    with pytest.raises(InputError, match="positive"):
        extract_patches(torch.rand(1, 3, 8, 8), 4, 0)
    sampler = PatchSampler(torch.rand(1, 3, 4, 4), 4, 2, torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match="distinct"):
        sampler.indices(2, replace=False)
