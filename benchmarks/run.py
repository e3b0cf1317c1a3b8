"""Run the frontend performance benchmarks and write their results as JSON.

    python benchmarks/run.py --json results/benchmarks.json [--only frontend,train_step,pgd,dictionary]

Every comparison builds the dense reference formulation (plain convolution / transposed
convolution layers, the original code's way) with the same weights in the same process, checks
that the outputs agree (max |difference| ≤ 1e-4), and reports throughputs and their ratio
(best of the repeats, variants run alternately; see benchmarks/common.py). Not collected by
pytest. Runs in under 10 minutes on a quiet 2-core CPU; numbers taken while other processes
load the machine are not valid (the load average is recorded before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scfront.runtime import configure_cpu  # noqa: E402  (needs the path above; imports no torch)

PEAK_GFLOPS = 190.0  # fp32 peak of the 2-core development machine (AVX2 FMA, both cores)
SUITES = ("frontend", "train_step", "pgd", "dictionary")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--only", default=",".join(SUITES), help=f"comma-separated subset of {SUITES}")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    suites = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")

    # Before torch is imported: huge pages and glibc's keep-freed-memory mode.
    cpu = configure_cpu(args.threads, allocator=True)
    import torch

    from benchmarks import bench_dictionary, bench_frontend, bench_pgd, bench_train_step

    load_before = os.getloadavg()
    start = time.perf_counter()
    rows: list[dict] = []
    for suite in suites:
        if suite == "frontend":
            rows += bench_frontend.run(args.batch, args.repeats)
        elif suite == "train_step":
            rows += bench_train_step.run(args.batch, args.repeats)
        elif suite == "pgd":
            rows += bench_pgd.run(args.batch, args.repeats)
        else:
            rows += bench_dictionary.run()
        for row in rows:
            if not row.get("_printed"):
                print(format_row(row), flush=True)
                row["_printed"] = True
    for row in rows:
        row.pop("_printed", None)
    by_name = {row["benchmark"]: row for row in rows}
    summary: dict[str, object] = {
        "torch": torch.__version__, "threads": torch.get_num_threads(), "batch": args.batch,
        "repeats": args.repeats, "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "glibc_keep_freed_memory": cpu["keep_freed_memory"], "peak_gflops": PEAK_GFLOPS,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "seconds": time.perf_counter() - start, "rows": rows,
    }
    for decoder in ("default", "small"):
        if f"frontend_fwd_bwd_{decoder}" in by_name:
            summary[f"frontend_fwd_bwd_speedup_{decoder}"] = by_name[f"frontend_fwd_bwd_{decoder}"]["speedup"]
        if f"frontend_fwd_{decoder}" in by_name:
            summary[f"frontend_fwd_speedup_{decoder}"] = by_name[f"frontend_fwd_{decoder}"]["speedup"]
    if "train_step_small" in by_name:  # the cpu preset: small decoder + ResNet-32, batch 128
        step = by_name["train_step_small"]
        summary["train_step_images_per_s"] = step["fast_images_per_s"]
        summary["train_step_gflops"] = step["fast_gflops"]
        summary["train_step_fraction_of_peak"] = step["fast_gflops"] / PEAK_GFLOPS
    print(f"load average before {load_before}, after {summary['load_average_after']}; "
          f"{summary['seconds']:.0f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


def format_row(row: dict) -> str:
    if "dense_images_per_s" in row:
        return (f"{row['benchmark']:<28} dense {row['dense_images_per_s']:8.1f}/s  "
                f"fast {row['fast_images_per_s']:8.1f}/s  speedup {row['speedup']:5.2f}x "
                f"(CPU time {row['speedup_cpu_time']:5.2f}x)"
                + (f"  {row['fast_gflops']:.1f} GFLOP/s" if "fast_gflops" in row else ""))
    return json.dumps(row)


if __name__ == "__main__":
    sys.exit(main())
