"""A tiny, fast training configuration shared by the training tests (a helper module, not
collected: its name does not start with ``test_``)."""

from __future__ import annotations

from scfront.config import RunConfig, load_preset

# Synthetic 16x16 images (no files), a few batches per epoch, one thread: seconds per run.
TINY = [
    'data.dataset="synthetic"', "data.image_size=16", "data.train_limit=128",
    "data.monitor_images=64", "train.batch_size=32", "train.epochs=2", "train.num_threads=1",
    "evaluation.batch_size=64",
]


def tiny_config(recipe: str = "natural", extra: tuple[str, ...] = ()) -> RunConfig:
    return load_preset("smoke", "cifar10", [*TINY, *extra], recipe=recipe)
