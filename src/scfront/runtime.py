"""Process-wide CPU settings of the ``scfront`` command: threads and, opt-in, the allocator.

Applied by :func:`configure_cpu` before a command imports torch:

- **Threads.** ``--threads N`` sets torch's intra-op threads. On the 2-core development machine
  two one-thread processes (e.g. ``scfront --threads 1 evaluate --shard i/2``) got 1.09x the
  attack throughput of one two-thread process (``python -m benchmarks.bench_attack_cpu``;
  results/benchmarks.md).
- **Allocator (opt-in: ``SCFRONT_TUNED_ALLOCATOR=1``).** Activations of tens of MB are
  allocated and freed on every step; by default glibc returns them to the operating system and
  every reuse page-faults them in again, and PyTorch aligns them to 2 MB huge pages only when
  ``THP_MEM_ALLOC_ENABLE`` is set. Keeping freed memory and using huge pages made the encoder's
  correlation alone 3.4x cheaper in CPU time (``benchmarks/run.py`` always applies them), but
  on whole PGD runs of the defended model the measured effect (-9 % to +9 % CPU time,
  ``bench_attack_cpu``) is inside this machine's run-to-run spread, so it is not the default.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

from scfront.validate import positive_int

OPT_IN = "SCFRONT_TUNED_ALLOCATOR"


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


def configure_cpu(threads: int | None = None, allocator: bool | None = None) -> dict[str, object]:
    """Apply the thread count and, if asked, the allocator settings; returns what was done.

    Call before the first tensor is allocated: PyTorch reads ``THP_MEM_ALLOC_ENABLE`` once, so
    when torch is already imported the variable is left unset (reported as ``huge_pages: False``).

    Args:
        threads: torch intra-op threads, >= 1 (else :class:`ConfigError`); ``None`` keeps
            torch's default (one per core, or ``OMP_NUM_THREADS``).
        allocator: huge pages + keep freed memory; ``None`` reads ``SCFRONT_TUNED_ALLOCATOR``.
    """
    if threads is not None:
        positive_int(threads, "--threads")
    if allocator is None:
        allocator = os.environ.get(OPT_IN, "") not in ("", "0")
    applied: dict[str, object] = {"huge_pages": False, "keep_freed_memory": False, "threads": None}
    if allocator:
        if "torch" not in sys.modules:
            os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
            applied["huge_pages"] = os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
        applied["keep_freed_memory"] = keep_freed_memory()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
        applied["threads"] = threads
    return applied
