"""How wrong were the Boundary columns computed before the train-mode fix (commit 2e1c4bd)?

Before the fix the evaluation left each model in training mode after its first attack, and
Boundary decided success at L2 <= 0.6 with a forward pass on BatchNorm batch statistics. This
script loads each model afresh in eval mode and re-predicts the stored, projected adversarials of
those Boundary columns (the resumable state of the first run, moved to
runs/table1_cpu_trainmode_bug/boundary_<row>/ and not committed: 25-60 MB each). Output in
reverify_boundary_bug.txt. Run from the repository root:

    python results/table1_cpu/reverify_boundary_bug.py defense pgd_at natural
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from scfront.attacks.base import predict
from scfront.attacks.blackbox.transfer import load_model_file

BATCH = 250  # the preset's evaluation batch size: unit b holds subset images [250 b, 250 b + 250)
MODELS = {"natural": "results/train/cifar10_cpu_natural",
          "pgd_at": "../shared/reference/checkpoints/resnet32_pgd_at.pt",
          "defense": "results/train/cifar10_cpu_defense"}

torch.set_num_threads(1)
for row in sys.argv[1:]:
    state = Path(f"runs/table1_cpu_trainmode_bug/boundary_{row}/state")
    labels = load_file(str(state / "subset.safetensors"))["labels"].long()
    model = load_model_file(Path(MODELS[row])).eval()
    attacked = stored = in_eval = disagree = 0
    for unit in sorted((state / "a00-boundary").glob("b*.safetensors")):
        saved = load_file(str(unit))
        b = int(unit.stem[1:])
        ran = saved["ran"]  # the images Boundary attacked (clean-correct ones)
        y = labels[b * BATCH:(b + 1) * BATCH][ran]
        success_eval = predict(model, saved["x_adv"].float()) != y
        success_stored = saved["success"][ran]
        attacked += int(ran.sum())
        stored += int(success_stored.sum())
        in_eval += int(success_eval.sum())
        disagree += int((success_stored != success_eval).sum())
    print(f"{row}: {attacked} images attacked; broken according to the buggy run: {stored}; "
          f"its stored adversarials misclassified in eval mode: {in_eval}; images where the two differ: {disagree}")
