"""Square (Linf 8/255, 1,000 queries) on the defense: this CPU run against the earlier H200 run.

Run from the repository root: ``python results/table1_cpu/compare_square.py``. Both runs attack
the same 1,000 images with the same seeds; the H200 run computed the encoder's correlation in
TF32 (see results/table1_cpu_h200/README.md).
"""

import json
from pathlib import Path

COLUMN = Path("eval/defense/square/results.json")
cpu = json.loads((Path("results/table1_cpu") / COLUMN).read_text())
gpu = json.loads((Path("results/table1_cpu_h200") / COLUMN).read_text())
if cpu["indices"] != gpu["indices"]:
    raise SystemExit("the two runs attacked different images")
cpu_robust = [b == -1 for b in cpu["broken_by"]]
gpu_robust = [b == -1 for b in gpu["broken_by"]]
n = len(cpu_robust)
print(f"images: {n}")
print(f"clean accuracy: CPU {cpu['clean_accuracy']:.3f}, H200 {gpu['clean_accuracy']:.3f}")
print(f"robust after Square: CPU {sum(cpu_robust)}, H200 {sum(gpu_robust)}")
print(f"robust on both: {sum(c and g for c, g in zip(cpu_robust, gpu_robust))}")
print(f"robust only on the H200: {sum(g and not c for c, g in zip(cpu_robust, gpu_robust))}")
print(f"robust only on the CPU: {sum(c and not g for c, g in zip(cpu_robust, gpu_robust))}")
for name, res in (("CPU", cpu), ("H200", gpu)):
    (attack,) = res["attacks"]
    print(f"{name}: {attack['queries']} queries in all, {attack['seconds']:.0f} s")
