"""What the self-checks of an evaluation cost next to its attacks (issue 21 item 6).

Runs ``scfront evaluate MODEL --attacks ATTACKS --n-images N --data-root DIR --out OUT
--no-progress [EXTRA...]`` in this process and times its phases from the log lines the
evaluation writes in background runs (one per finished unit, one per finished check): wall
seconds and process-CPU seconds (every thread of the process) from the start of the command to
the last attack unit, then per check, and the checks' share of the command's total. On a shared
machine wall times follow the load of the others; the CPU seconds are the steadier comparison.

The script only uses what every version of scfront has (the command line and its log lines), so
the same file measures the code before and after a change:

    git worktree add ../scfront_before REV
    PYTHONPATH=../scfront_before/src python -m benchmarks.bench_check_cost --threads 1 \\
        --data-root DIR --out runs/check_cost_before --json before.json
    python -m benchmarks.bench_check_cost --threads 1 --data-root DIR --out runs/check_cost_after \\
        --json after.json
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

_UNIT = re.compile(r"\] (?P<attack>\S+) batch (?P<batch>\d+)")
_CHECK = re.compile(r"^check (?P<name>\S+) done")


class _Clock(logging.Handler):
    """Keeps (message, wall, CPU) of every record of the ``scfront`` loggers."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.events: list[tuple[str, float, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append((record.getMessage(), time.perf_counter(), time.process_time()))


def measure(argv: list[str], threads: int | None = None) -> dict[str, Any]:
    """Run ``scfront [--threads T] evaluate`` with ``argv``; its phases' wall and CPU seconds."""
    from scfront.cli import main

    clock = _Clock()
    logger = logging.getLogger("scfront")
    logger.addHandler(clock)
    logger.setLevel(logging.INFO)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        code = main(([] if threads is None else ["--threads", str(threads)]) + ["evaluate", *argv])
    finally:
        logger.removeHandler(clock)
    wall1, cpu1 = time.perf_counter(), time.process_time()
    if code != 0:
        raise SystemExit(f"scfront evaluate exited with {code}")
    units = [(w, c) for msg, w, c in clock.events if _UNIT.search(msg)]
    if not units:
        raise SystemExit("no attack unit was logged: give a new --out (a finished evaluation logs nothing)")
    attacks_end = units[-1]
    checks, previous = [], attacks_end
    for msg, w, c in clock.events:
        match = _CHECK.match(msg)
        if match and w >= attacks_end[0]:
            checks.append({"name": match["name"], "wall": w - previous[0], "cpu": c - previous[1]})
            previous = (w, c)
    check_wall = sum(c["wall"] for c in checks)
    check_cpu = sum(c["cpu"] for c in checks)
    return {"argv": argv, "threads": threads, "total": {"wall": wall1 - wall0, "cpu": cpu1 - cpu0},
            "to_last_attack_unit": {"wall": attacks_end[0] - wall0, "cpu": attacks_end[1] - cpu0},
            "checks": checks, "checks_total": {"wall": check_wall, "cpu": check_cpu},
            "checks_share": {"wall": check_wall / (wall1 - wall0), "cpu": check_cpu / (cpu1 - cpu0)}}


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--out", required=True, help="a new evaluation folder")
    parser.add_argument("--model", default="cifar10_cpu")
    parser.add_argument("--attacks", default="pgd-linf")
    parser.add_argument("--n-images", default="100")
    parser.add_argument("--threads", type=int, default=None,
                        help="scfront --threads T (one thread: CPU seconds proportional to the work; with "
                             "more threads on a loaded machine, waiting threads spin and inflate small batches)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parsed, extra = parser.parse_known_args(args)
    argv = [parsed.model, "--attacks", parsed.attacks, "--n-images", parsed.n_images, "--data-root",
            parsed.data_root, "--out", parsed.out, "--no-progress", *extra]
    result = measure(argv, parsed.threads)
    threads = "" if parsed.threads is None else f"--threads {parsed.threads} "
    print(f"scfront {threads}evaluate {' '.join(argv)}")
    print(f"{'phase':<28}{'wall s':>10}{'CPU s':>10}")
    print(f"{'start to last attack unit':<28}{result['to_last_attack_unit']['wall']:>10.1f}"
          f"{result['to_last_attack_unit']['cpu']:>10.1f}")
    for check in result["checks"]:
        print(f"{'  check ' + check['name']:<28}{check['wall']:>10.1f}{check['cpu']:>10.1f}")
    print(f"{'checks':<28}{result['checks_total']['wall']:>10.1f}{result['checks_total']['cpu']:>10.1f}")
    print(f"{'total':<28}{result['total']['wall']:>10.1f}{result['total']['cpu']:>10.1f}")
    print(f"checks' share of the total: {100 * result['checks_share']['wall']:.1f} % wall, "
          f"{100 * result['checks_share']['cpu']:.1f} % CPU")
    if parsed.json is not None:
        parsed.json.parent.mkdir(parents=True, exist_ok=True)
        parsed.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
