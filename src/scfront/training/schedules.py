"""Learning-rate schedules (docs/method.md §5), as pure functions of the training position.

A schedule is evaluated before every optimizer step from ``(epoch, batch)``, so it needs no state
of its own: a resumed run computes exactly the rates an uninterrupted run would.

- ``onecycle``: triangular 0 → ``lr_max`` → 0 over the whole run, stepped every batch. Batch
  ``k`` of ``K = epochs · batches_per_epoch`` uses ``lr_max · (1 − |2k/K − 1|)``, which is what
  the original's ``CyclicLR(base_lr=0, step_size_up=step_size_down=K/2)`` produced (it starts
  at 0 and is stepped after each batch).
- ``step``: ``lr_max · lr_gamma^m`` with ``m`` the number of milestones ≤ epoch; changes at epoch
  boundaries only (TRADES: ×0.1 at epoch 35; the original stepped it per batch by mistake).
- ``multiplicative``: ``lr_max · lr_gamma^epoch``.
- ``constant``: ``lr_max``.
"""

from __future__ import annotations

from scfront.config import Schedule, TrainConfig
from scfront.errors import ConfigError


def learning_rate(config: TrainConfig, epoch: int, batch: int, batches_per_epoch: int) -> float:
    """The rate for batch ``batch`` (0-based) of epoch ``epoch`` (0-based) under ``config``."""
    if batches_per_epoch < 1:
        raise ConfigError("an epoch must have at least one batch (train set smaller than batch size?)")
    if not (0 <= epoch < config.epochs and 0 <= batch < batches_per_epoch):
        raise ValueError(f"position (epoch {epoch}, batch {batch}) outside the run of "
                         f"{config.epochs} x {batches_per_epoch} batches")
    schedule = config.schedule
    if schedule is Schedule.ONECYCLE:
        total = config.epochs * batches_per_epoch
        k = epoch * batches_per_epoch + batch
        return config.lr_max * (1.0 - abs(2.0 * k / total - 1.0))
    if schedule is Schedule.STEP:
        passed = sum(1 for milestone in config.lr_milestones if milestone <= epoch)
        return config.lr_max * config.lr_gamma ** passed
    if schedule is Schedule.MULTIPLICATIVE:
        return config.lr_max * config.lr_gamma ** epoch
    return config.lr_max
