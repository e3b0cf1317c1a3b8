"""Frontend alone: forward (inference) and forward + backward to the image through BPDA (the
attack path), sparse fast path vs the dense original formulation, default and small decoders."""

from __future__ import annotations

import torch

from benchmarks.common import (DenseReferenceFrontend, TOLERANCE, cifar_batch, compare, max_diff,
                               reference_dictionary, relative_diff, timing_fields)
from scfront.config import DecoderName, FrontendConfig
from scfront.frontend import Frontend, build_frontend
from scfront.models.init import initialize_


def build_pair(decoder: DecoderName, seed: int = 0) -> tuple[Frontend, DenseReferenceFrontend]:
    frontend = build_frontend(FrontendConfig(decoder=decoder), 32, reference_dictionary())
    initialize_(frontend, torch.Generator().manual_seed(seed))
    return frontend, DenseReferenceFrontend(frontend)


def run(batch: int = 128, repeats: int = 3) -> list[dict]:
    rows = []
    x = cifar_batch(batch)
    weights = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for decoder in (DecoderName.DEFAULT, DecoderName.SMALL):
        fast, dense = build_pair(decoder)
        fast.eval(), dense.eval()
        for model in (fast, dense):
            model.requires_grad_(False)  # an attack differentiates wrt the image only

        def forward(model: torch.nn.Module) -> torch.Tensor:
            with torch.inference_mode():
                return model(x)

        def attack_grad(model: torch.nn.Module) -> torch.Tensor:
            xg = x.clone().requires_grad_()
            (grad,) = torch.autograd.grad((model(xg) * weights).sum(), xg)
            return grad

        out_diff = max_diff(forward(fast), forward(dense))
        grad_diff = relative_diff(attack_grad(fast), attack_grad(dense))
        if out_diff > TOLERANCE:
            raise AssertionError(f"{decoder.value}: fast and dense outputs differ by {out_diff:.2e}")
        for name, fn in (("fwd", forward), ("fwd_bwd", attack_grad)):
            t = compare({"dense": lambda fn=fn: fn(dense), "fast": lambda fn=fn: fn(fast)}, repeats)
            rows.append({
                "benchmark": f"frontend_{name}_{decoder.value}", "batch": batch,
                **timing_fields(t, batch),
                "max_abs_output_diff": out_diff,
                "max_rel_grad_diff": grad_diff if name == "fwd_bwd" else None,
            })
    return rows
