"""Image patches in the layout of the original dictionary files.

A patch of size p taken from a (C, H, W) image is flattened in (height, width, channel) order,
the row layout of the npz files (docs/method.md §1): element ``(i, j, c)`` of the patch sits at
index ``(i * p + j) * C + c``. Patches sit on the grid ``y, x in {0, stride, 2*stride, ...}`` with
no padding, the same grid as the encoder's ``conv2d(x, atoms, stride, padding=0)``.

:func:`extract_patches` materialises every grid patch of a batch; :class:`PatchSampler` draws
seeded random grid patches from a large image set without materialising all of them (50,000
CIFAR-10 images give 11.25 million stride-2 patches of 4x4x3).
"""

from __future__ import annotations

import torch

from scfront.errors import InputError

# Above this many grid positions a draw without replacement would need a permutation of the
# whole index range (8 bytes each); the sampler then draws with replacement, where collisions
# are negligible for the sample sizes the learners use.
_MAX_PERMUTATION = 50_000_000


def _check_images(images: torch.Tensor, patch_size: int, stride: int) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise InputError(
            "images must be a 4-D tensor (N, C, H, W), got "
            f"{getattr(images, 'shape', type(images).__name__)}"
        )
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise InputError(f"images must be uint8 or floating point, got {images.dtype}")
    if patch_size < 1 or stride < 1:
        raise InputError(f"patch size and stride must be positive, got {patch_size} and {stride}")
    if images.shape[2] < patch_size or images.shape[3] < patch_size:
        raise InputError(
            f"images of size {tuple(images.shape[2:])} are smaller than the {patch_size}x"
            f"{patch_size} patch"
        )


def _as_unit_float(patches: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1]; float input is kept as float32 as given."""
    if patches.dtype == torch.uint8:
        return patches.to(torch.float32).div_(255.0)
    return patches.to(torch.float32)


def grid_size(height: int, width: int, patch_size: int, stride: int) -> tuple[int, int]:
    """Number of patch rows and columns on the stride grid (no padding)."""
    return (height - patch_size) // stride + 1, (width - patch_size) // stride + 1


def extract_patches(images: torch.Tensor, patch_size: int, stride: int) -> torch.Tensor:
    """Every grid patch of ``images``, flattened in (h, w, c) order.

    Args:
        images: (N, C, H, W) float in [0, 1] (uint8 in [0, 255] is converted to that).
        patch_size: side p of the square patches.
        stride: grid step in pixels (2 for CIFAR-10, 4 for Imagenette in the paper).

    Returns:
        (N * nh * nw, p * p * C) float32, ordered by image, then patch row, then patch column,
        where ``nh, nw = grid_size(H, W, p, stride)``.
    """
    _check_images(images, patch_size, stride)
    n, c = images.shape[:2]
    # unfold -> (N, C, nh, nw, p, p); move channels last so each row reads (h, w, c).
    windows = images.unfold(2, patch_size, stride).unfold(3, patch_size, stride)
    rows = windows.permute(0, 2, 3, 4, 5, 1).reshape(-1, patch_size * patch_size * c)
    return _as_unit_float(rows)


class PatchSampler:
    """Seeded random grid patches of an image set, gathered on demand.

    Args:
        images: (N, C, H, W) uint8 in [0, 255] or float in [0, 1]; kept by reference (a uint8
            set of 50,000 CIFAR-10 images is 150 MB, its 11.25 M float patches would be 2 GB).
        patch_size, stride: the grid of :func:`extract_patches`; a sampled patch is always one
            of the rows that :func:`extract_patches` would return.
        generator: the only source of randomness (seed it for reproducible draws).
    """

    def __init__(self, images: torch.Tensor, patch_size: int, stride: int,
                 generator: torch.Generator) -> None:
        _check_images(images, patch_size, stride)
        self.images = images
        self.patch_size = patch_size
        self.stride = stride
        self.generator = generator
        self.grid = grid_size(images.shape[2], images.shape[3], patch_size, stride)

    @property
    def total(self) -> int:
        """Number of distinct grid patches in the image set."""
        return int(self.images.shape[0]) * self.grid[0] * self.grid[1]

    @property
    def dim(self) -> int:
        return self.patch_size * self.patch_size * int(self.images.shape[1])

    def indices(self, n: int, replace: bool = True) -> torch.Tensor:
        """(n,) int64 flat indices into the :func:`extract_patches` order.

        Without replacement the draw is a prefix of a uniform random permutation, which is the
        old scikit-learn recipe of shuffling all patches and walking through them in batches.
        """
        if n < 0:
            raise InputError(f"cannot draw {n} patches")
        if not replace and n > self.total:
            raise InputError(f"cannot draw {n} distinct patches from {self.total}")
        if replace or self.total > _MAX_PERMUTATION:
            return torch.randint(self.total, (n,), generator=self.generator)
        return torch.randperm(self.total, generator=self.generator)[:n]

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """(n, p*p*C) float32 patches at flat ``indices`` (the :func:`extract_patches` order)."""
        nh, nw = self.grid
        image = indices // (nh * nw)
        cell = indices % (nh * nw)
        y0 = (cell // nw) * self.stride
        x0 = (cell % nw) * self.stride
        offsets = torch.arange(self.patch_size)
        ys = (y0[:, None] + offsets)[:, :, None]  # (n, p, 1)
        xs = (x0[:, None] + offsets)[:, None, :]  # (n, 1, p)
        # Advanced indices around the channel slice put the index dims first: (n, p, p, C),
        # which is exactly the (h, w, c) order of a flattened row.
        patches = self.images[image[:, None, None], :, ys, xs]
        return _as_unit_float(patches.reshape(indices.shape[0], self.dim))

    def sample(self, n: int, replace: bool = True) -> torch.Tensor:
        """(n, p*p*C) float32 random grid patches in [0, 1]."""
        return self.gather(self.indices(n, replace=replace))


def require_positive(owner: str, settings: object, names: tuple[str, ...]) -> None:
    """Raise InputError naming the first of ``settings``' fields ``names`` that is not > 0."""
    for name in names:
        value = getattr(settings, name)
        if value <= 0:
            raise InputError(f"{owner}: {name} must be positive, got {value}")
