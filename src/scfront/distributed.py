"""Processes launched by ``torchrun``: joining the process group and the few collectives used.

Training (:mod:`scfront.training.loop`, DistributedDataParallel)::

    torchrun --nproc_per_node=2 --no-python scfront train --preset cpu ...

Evaluation (:mod:`scfront.evaluation.ranks`: each rank computes one shard, rank 0 writes the
results)::

    torchrun --nproc_per_node=2 --no-python scfront evaluate MODEL ...

In training, every process iterates over the same global batches (same data generator, same augmentation,
same attack starts) and keeps its contiguous shard of each batch; DDP averages the gradients, and
the loss of a shard is weighted by its share of the batch so that the average equals the
gradient of the whole batch. BatchNorm statistics are per process (as usual with DDP), so
results are close to, not identical with, a single process using the same global batch.

Backend: ``nccl`` for CUDA devices, ``gloo`` otherwise.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from scfront.validate import available_device


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``; ``device`` it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched() -> bool:
    """Whether this process is one of several that ``torchrun`` started (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str, timeout: datetime.timedelta | None = None, where: str = "train.device") -> DistContext:
    """Join the process group ``torchrun`` describes in the environment (if any).

    Args:
        device: "cpu", "cuda" or "cuda:N"; under torchrun, CUDA processes use ``cuda:LOCAL_RANK``.
        timeout: how long a collective waits for the other ranks (None: torch's default, 30
            minutes for gloo); an evaluation's ranks may finish hours apart.
        where: the setting ``device`` came from, for the error message of a device this
            machine lacks.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    target = available_device(device, where)
    if world <= 1:
        return DistContext(device=target)
    if target.type == "cuda":
        target = torch.device("cuda", local)
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        kwargs = {} if timeout is None else {"timeout": timeout}
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo", **kwargs)
    return DistContext(rank, world, local, target)


def teardown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def shard(n: int, ctx: DistContext) -> slice:
    """This process's contiguous part of a batch of ``n`` (sizes differ by at most one)."""
    base, extra = divmod(n, ctx.world_size)
    start = ctx.rank * base + min(ctx.rank, extra)
    return slice(start, start + base + (1 if ctx.rank < extra else 0))


def sum_across(values: list[float], ctx: DistContext) -> list[float]:
    """Element-wise sum of ``values`` over all processes (identity for one process)."""
    if not ctx.distributed:
        return list(values)
    device = ctx.device if ctx.device.type == "cuda" else torch.device("cpu")
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not ctx.distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
