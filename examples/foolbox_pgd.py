"""Attack an scfront defended model with foolbox 3 (not a dependency: `pip install foolbox`).

The defended model is a plain ``nn.Module`` on [0, 1] images, so third-party attacks work on it
as is; their gradient calls go through the BPDA rules set with ``scfront.frontend.use_bpda``.

    python examples/foolbox_pgd.py [RUN_DIR]     # a saved model; default: an untrained cpu-preset one
"""

from __future__ import annotations

import sys

import foolbox as fb
import torch

import scfront
from scfront.config import load_preset
from scfront.frontend import BPDA, use_bpda
from scfront.models import build_model
from scfront.reproduction import load_sample


def main() -> None:
    model = scfront.load(sys.argv[1]) if len(sys.argv) > 1 else build_model(load_preset("cpu")).eval()
    sample = load_sample()
    x, y = sample.images[:8].float() / 255, sample.labels[:8]
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    with use_bpda(model, BPDA(top_u=30, steepness=4.0)):
        _, clipped, success = fb.attacks.LinfPGD(steps=10)(fmodel, x, y, epsilons=8 / 255)
    print(f"max |delta| = {float((clipped - x).abs().max()):.5f} (eps {8 / 255:.5f}); "
          f"fooled {int(success.sum())} of {len(y)}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
