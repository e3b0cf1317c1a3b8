"""One evaluation over the ranks of a ``torchrun`` launch.

::

    torchrun --nproc_per_node=K --no-python scfront evaluate MODEL --attacks ... --out OUT

Rank ``r`` of ``K`` computes shard ``r/K`` (:class:`~scfront.evaluation.spec.Shard`: the
batches ``b`` with ``b % K == r``) into its own ``OUT`` folder; the checks run in rank 0, which
owns batch 0. When a rank is done it sends the unit files it computed to rank 0 over the
process group (gloo: plain bytes in uint8 tensors, no pickling; a gloo group is made for this
beside the default one when the default is nccl), rank 0 stores the ones it lacks and writes
results.json, report.md and adversarials.safetensors. ``OUT`` may therefore be a local folder
on each machine or one shared folder (units already there are not rewritten).

Because every unit draws from per-image random streams (:func:`~scfront.evaluation.spec.
unit_generators`), the results equal those of one process and of ``--shard i/n`` +
``evaluate-merge``. A rank that fails makes the others fail when the process group times out
(:data:`TIMEOUT`); rerunning the same command resumes every rank from its stored units.
"""

from __future__ import annotations

import datetime
from pathlib import Path, PurePosixPath

import torch
import torch.distributed as dist

from scfront.distributed import DistContext
from scfront.errors import ConfigError
from scfront.evaluation.state import StateStore
from scfront.io import atomic_write_bytes

__all__ = ["TIMEOUT", "send_units_to_rank0"]

#: How long rank 0 waits for a slower rank's units (and any rank for a collective).
TIMEOUT = datetime.timedelta(days=7)


def _transfer_group(ctx: DistContext) -> object | None:
    """A gloo group of all ranks when the default group is nccl (None: use the default)."""
    if dist.get_backend() == "gloo":
        return None
    return dist.new_group(backend="gloo", timeout=TIMEOUT)


def _send_bytes(data: bytes, group: object | None) -> None:
    dist.send(torch.tensor([len(data)], dtype=torch.int64), dst=0, group=group)
    if data:
        dist.send(torch.frombuffer(bytearray(data), dtype=torch.uint8), dst=0, group=group)


def _recv_bytes(src: int, group: object | None) -> bytes:
    size = torch.zeros(1, dtype=torch.int64)
    dist.recv(size, src=src, group=group)
    buffer = torch.empty(int(size.item()), dtype=torch.uint8)
    if buffer.numel():
        dist.recv(buffer, src=src, group=group)
    return buffer.numpy().tobytes()


def _safe_relative(text: str) -> PurePosixPath:
    """A received unit path, refused unless it is a plain relative path inside the state folder."""
    path = PurePosixPath(text)
    if path.is_absolute() or not path.parts or any(part in ("", ".", "..") for part in path.parts):
        raise ConfigError(f"a rank sent the unit path {text!r}, which is not inside the state folder")
    return path


def send_units_to_rank0(out_dir: str | Path, ctx: DistContext) -> int:
    """Collect every rank's unit files in rank 0's ``out_dir``; a collective (all ranks call it).

    Ranks 1, ..., K − 1 send, in turn, the relative path and bytes of every unit file in their
    ``out_dir``; rank 0 writes (atomically) those it does not have. Returns the number of files
    rank 0 wrote (0 on the other ranks).
    """
    if not ctx.distributed:
        return 0
    group = _transfer_group(ctx)
    store = StateStore(out_dir)
    written = 0
    for source in range(1, ctx.world_size):
        if ctx.rank == source:
            files = store.unit_files()
            dist.send(torch.tensor([len(files)], dtype=torch.int64), dst=0, group=group)
            for rel in files:
                _send_bytes(rel.as_posix().encode("utf-8"), group)
                _send_bytes((store.root / rel).read_bytes(), group)
        elif ctx.rank == 0:
            count = torch.zeros(1, dtype=torch.int64)
            dist.recv(count, src=source, group=group)
            for _ in range(int(count.item())):
                rel = _safe_relative(_recv_bytes(source, group).decode("utf-8"))
                data = _recv_bytes(source, group)
                target = store.root / rel
                if not target.is_file():
                    atomic_write_bytes(target, data)
                    written += 1
    dist.barrier(group=group)
    return written
