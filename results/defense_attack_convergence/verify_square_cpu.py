"""Re-attack on the CPU the first 8 images that Square broke after APGD-CE/DLR in eval/cascade.

Run from the repository root: python results/defense_attack_convergence/verify_square_cpu.py DATA_ROOT
"""
import json
import sys
import time

import torch

from scfront.attacks.base import predict
from scfront.attacks.registry import create_attack
from scfront.data.cifar10 import load_cifar10
from scfront.models import load_model

torch.set_num_threads(1)
result = json.load(open("results/defense_attack_convergence/eval/cascade/results.json"))
square_position = [a["name"] for a in result["attacks"]].index("square")
broken = [i for i, by in zip(result["indices"], result["broken_by"]) if by == square_position]
index = torch.tensor(broken[:8])
model = load_model("results/train/cifar10_cpu_defense").eval()
test = load_cifar10(sys.argv[1], "test")
x, y = test.images[index].float() / 255, test.labels[index]
print("test indices", index.tolist())
print("clean correct", (predict(model, x) == y).tolist())
for name in ("apgd-ce", "square"):
    start = time.perf_counter()
    out = create_attack(name, eps=8 / 255)(model, x, y, generator=torch.Generator().manual_seed(0))
    print(f"{name}: broken {out.success.tolist()} ({time.perf_counter() - start:.0f} s)")
linf = (out.x_adv - x).abs().flatten(1).amax(1) * 255
print("square Linf x 255:", [round(v, 4) for v in linf.tolist()])
print("square adversarials re-predicted one by one, wrong:",
      [bool(predict(model, out.x_adv[i:i + 1]) != y[i]) for i in range(len(y))])
