"""Batched crop-and-flip augmentation and the batch iterator."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scfront.data import batches, random_crop_flip
from scfront.errors import InputError


def _find_transform(out: torch.Tensor, image: torch.Tensor, padding: int) -> list[tuple[int, int, bool]]:
    """Every (dy, dx, flipped) whose crop of the zero-padded ``image`` equals ``out`` (brute force)."""
    _, h, w = image.shape
    padded = F.pad(image, (padding,) * 4)
    found = []
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            for flipped in (False, True):
                if torch.equal(crop.flip(2) if flipped else crop, out):
                    found.append((dy, dx, flipped))
    return found


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_each_output_is_one_crop_and_flip_of_its_input(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (24, 3, 8, 10), generator=gen).to(dtype)  # no zeros inside
    if dtype.is_floating_point:
        x = x / 255
    out = random_crop_flip(x, padding=3, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    for b in range(x.shape[0]):
        assert len(_find_transform(out[b], x[b], 3)) == 1


def test_offsets_and_flips_cover_all_choices() -> None:
    x = torch.rand(4000, 1, 6, 6) + 1.0  # > 0 everywhere: padding zeros are recognisable
    out = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(5))
    seen = [_find_transform(out[b], x[b], 2)[0] for b in range(0, 4000, 5)]
    assert {(dy, dx) for dy, dx, _ in seen} == {(dy, dx) for dy in range(5) for dx in range(5)}
    flip_rate = sum(f for _, _, f in seen) / len(seen)
    assert 0.43 < flip_rate < 0.57
    assert 0.0 <= float(out.min()) and float(out.max()) <= 2.0 and float(out.min()) == 0.0


def test_deterministic_and_identity_cases() -> None:
    x = torch.rand(16, 3, 32, 32)
    a = random_crop_flip(x, 4, torch.Generator().manual_seed(7))
    b = random_crop_flip(x, 4, torch.Generator().manual_seed(7))
    c = random_crop_flip(x, 4, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(random_crop_flip(x, 0, torch.Generator().manual_seed(0), flip=False), x)
    flipped_or_not = random_crop_flip(x, 0, torch.Generator().manual_seed(0))
    for b_ in range(16):
        assert torch.equal(flipped_or_not[b_], x[b_]) or torch.equal(flipped_or_not[b_], x[b_].flip(2))
    with pytest.raises(InputError, match=r"\(B, C, H, W\)"):
        random_crop_flip(x[0])


def test_batches_cover_each_image_once_per_epoch() -> None:
    n = 103
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).contiguous()
    labels = torch.arange(n)
    it = batches(images, labels, 10, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(it) == 11
    epochs = []
    for _ in range(2):
        seen = []
        for x, y in it:
            assert x.dtype == torch.float32 and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
            # the image content follows its label through the shuffle
            assert torch.equal((x[:, 0, 0, 0] * 255).round().long(), y)
            seen.append(y)
        epochs.append(torch.cat(seen))
    assert sorted(epochs[0].tolist()) == list(range(n)) == sorted(epochs[1].tolist())
    assert not torch.equal(epochs[0], epochs[1])  # a new permutation every epoch
    dropped = batches(images, labels, 10, drop_last=True)
    assert len(dropped) == 10 and torch.equal(torch.cat([y for _, y in dropped]), labels[:100])


def test_batches_augment_is_seeded() -> None:
    images = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    labels = torch.zeros(32, dtype=torch.int64)

    def run(seed: int) -> torch.Tensor:
        it = batches(images, labels, 8, shuffle=True, augment=True, padding=2,
                     generator=torch.Generator().manual_seed(seed), device="cpu")
        return torch.cat([x for x, _ in it])

    first, again = run(3), run(3)
    assert torch.equal(first, again) and not torch.equal(first, run(4))
    assert first.shape == (32, 3, 8, 8) and float(first.min()) >= 0 and float(first.max()) <= 1


def test_batches_rejects_bad_input() -> None:
    with pytest.raises(InputError, match="uint8"):
        batches(torch.rand(4, 3, 8, 8), torch.zeros(4), 2)
    with pytest.raises(InputError, match=r"labels must have shape \(4,\)"):
        batches(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(5), 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("generator_device", ["cpu", "cuda"])
def test_batches_on_cuda(generator_device: str) -> None:
    n = 40
    images = torch.randint(1, 256, (n, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(n)

    def run() -> list[tuple[torch.Tensor, torch.Tensor]]:
        gen = torch.Generator(device=generator_device).manual_seed(0)
        return list(batches(images, labels, 16, shuffle=True, generator=gen, augment=True,
                            padding=2, device="cuda"))

    first, again = run(), run()
    for (x, y), (x2, y2) in zip(first, again):
        assert x.device.type == "cuda" and y.device.type == "cuda" and x.dtype == torch.float32
        assert torch.equal(x, x2) and torch.equal(y, y2)
        # CUDA divides by 255 as a multiplication by its reciprocal (1 ulp from the CPU):
        # compare in the uint8 domain.
        pixels = (x.cpu() * 255).round().to(torch.uint8)
        for b in range(x.shape[0]):
            assert len(_find_transform(pixels[b], images[int(y[b])], 2)) == 1
    assert sorted(torch.cat([y for _, y in first]).tolist()) == list(range(n))
