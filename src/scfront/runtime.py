"""Process-wide CPU settings of the ``scfront`` command: threads and the memory allocator.

Two measured wins on a 2-core CPU, applied by :func:`configure_cpu` before a command imports
torch:

- **Allocator.** Evaluation and training allocate and free activations of tens of MB on every
  step. By default glibc returns such blocks to the operating system and every reuse
  page-faults them in again; PyTorch aligns them to 2 MB huge pages only when
  ``THP_MEM_ALLOC_ENABLE`` is set. Keeping freed memory and using huge pages lowered the CPU
  time of PGD on the shipped defended model by about 5 % (one thread, batch 250; ``python -m
  benchmarks.bench_process``), and of the encoder's correlation alone by 3.4x
  (``benchmarks/run.py`` applies the same settings). Set
  ``SCFRONT_SYSTEM_ALLOCATOR=1`` to keep the system's defaults (the process's resident memory
  then shrinks again after peaks).
- **Threads.** ``--threads N`` sets torch's intra-op threads. On the 2-core development machine
  two one-thread processes (e.g. ``scfront --threads 1 evaluate --shard i/2``) get more done
  than one two-thread process (``python -m benchmarks.bench_process``; results/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

OPT_OUT = "SCFRONT_SYSTEM_ALLOCATOR"


def keep_freed_memory() -> bool:
    """glibc only: serve large blocks from the heap and keep freed memory (no mmap/munmap churn).

    Returns whether the setting was applied (False on other C libraries and systems).
    """
    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_top_pad, m_mmap_max = -1, -2, -4
    return bool(libc.mallopt(m_mmap_max, 0) and libc.mallopt(m_trim_threshold, 2**31 - 1)
                and libc.mallopt(m_top_pad, 64 << 20))


def configure_cpu(threads: int | None = None) -> dict[str, object]:
    """Apply the allocator settings (unless opted out) and the thread count; returns what was done.

    Call before the first tensor is allocated: PyTorch reads ``THP_MEM_ALLOC_ENABLE`` once, so
    when torch is already imported the variable is left unset (reported as ``huge_pages: False``).

    Args:
        threads: torch intra-op threads, >= 1; ``None`` keeps torch's default (one per core,
            or ``OMP_NUM_THREADS``).
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    applied: dict[str, object] = {"huge_pages": False, "keep_freed_memory": False, "threads": None}
    if os.environ.get(OPT_OUT, "") in ("", "0"):
        if "torch" not in sys.modules:
            os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
            applied["huge_pages"] = os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
        applied["keep_freed_memory"] = keep_freed_memory()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
        applied["threads"] = threads
    return applied
