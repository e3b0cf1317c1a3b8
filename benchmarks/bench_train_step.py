"""Training step of frontend + ResNet-32 (SGD, batch 128): sparse fast path vs dense original.

The fast model is the one scfront trains (sparse first decoder layer, channels-last classifier);
the dense one is the original formulation (:class:`DenseReferenceFrontend`, NCHW classifier)
with the same weights. The achieved GFLOP/s of the fast step counts the work it actually does:
``torch.utils.flop_counter`` for the dense operations (convolutions, matrix products, forward
and backward) plus the sparse first layer's multiply-adds counted analytically (that operator
is invisible to the counter), two FLOPs per multiply-add.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import (DenseReferenceFrontend, NCHWClassifier, TOLERANCE, cifar_batch, compare,
                               max_diff, reference_dictionary, sparse_layer_macs, timing_fields)
from scfront.config import DecoderName, FrontendConfig
from scfront.frontend import build_frontend
from scfront.models import create_model
from scfront.models.defended import DefendedModel
from scfront.models.init import initialize_


def build_models(decoder: DecoderName, seed: int = 0) -> tuple[DefendedModel, nn.Module]:
    frontend = build_frontend(FrontendConfig(decoder=decoder), 32, reference_dictionary())
    fast = initialize_(DefendedModel(frontend, create_model("resnet32")), torch.Generator().manual_seed(seed))
    dense = nn.Sequential(DenseReferenceFrontend(fast.frontend), NCHWClassifier(copy.deepcopy(fast.classifier)))
    fast.classifier.to(memory_format=torch.channels_last)
    return fast, dense


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01,
                                momentum=0.9, weight_decay=5e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return step


def step_flops(model: DefendedModel, x: torch.Tensor, y: torch.Tensor) -> float:
    """FLOPs of one forward + backward of ``model`` (see the module docstring).

    The counter prices a sparse-times-dense product as if the sparse matrix were dense, so the
    matrix products it attributes to the frontend (the sparse weight gradient) are replaced by
    the analytic count of the sparse first layer.
    """
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    counted = float(counter.get_total_flops())
    frontend_counts = counter.get_flop_counts().get(f"{type(model).__name__}.frontend", {})
    counted -= float(sum(v for k, v in frontend_counts.items() if str(k).split(".")[-1] in ("mm", "addmm")))
    sparse = sparse_layer_macs(model.frontend, x.shape[0], with_input_grad=False)
    return counted + 2.0 * (sparse["forward"] + sparse["weight_grad"])


def run(batch: int = 128, repeats: int = 3) -> list[dict]:
    rows = []
    x = cifar_batch(batch, seed=2)
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(3))
    for decoder in (DecoderName.SMALL, DecoderName.DEFAULT):
        fast, dense = build_models(decoder)
        fast.train(), dense.train()
        with torch.no_grad():
            diff = max_diff(fast(x), dense(x))  # train-mode BatchNorm: the same batch statistics
        if diff > TOLERANCE:
            raise AssertionError(f"{decoder.value}: fast and dense logits differ by {diff:.2e}")
        flops = step_flops(fast, x, y)
        t = compare({"dense": make_step(dense, x, y), "fast": make_step(fast, x, y)}, repeats)
        rows.append({
            "benchmark": f"train_step_{decoder.value}", "batch": batch,
            **timing_fields(t, batch),
            "max_abs_output_diff": diff, "fast_step_gflop": flops / 1e9,
            "fast_gflops": flops / 1e9 / t["fast"].best,
        })
    # the classifier alone, for scale: what the frontend adds to a plain ResNet-32 step
    resnet = initialize_(create_model("resnet32"), torch.Generator().manual_seed(0)).train()
    resnet_cl = copy.deepcopy(resnet).to(memory_format=torch.channels_last)
    t = compare({"nchw": make_step(NCHWClassifier(resnet), x, y), "cl": make_step(resnet_cl, x, y)}, repeats)
    rows.append({"benchmark": "train_step_resnet32_only", "batch": batch,
                 **timing_fields(t, batch, dense="nchw", fast="cl")})
    return rows
