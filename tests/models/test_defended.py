"""DefendedModel: [0, 1] images → logits, self-contained weights, BPDA-switchable gradients."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from scfront.config import DecoderName, FrontendConfig
from scfront.dictionary.core import Dictionary
from scfront.frontend import BPDA, build_frontend, use_bpda
from scfront.models.defended import DefendedModel


def tiny_classifier() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def random_dictionary(seed: int) -> Dictionary:
    atoms = torch.randn(500, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    return Dictionary(atoms / atoms.flatten(1).norm(dim=1).view(-1, 1, 1, 1))


@pytest.fixture()
def reference_dictionary(reference_dir: Path) -> Dictionary:
    with zipfile.ZipFile(reference_dir / "dictionaries" / "cifar10_ps4_n500.npz") as archive:
        with archive.open("dict.npy") as handle:
            rows = np.lib.format.read_array(handle, allow_pickle=False)
    return Dictionary.from_flat(torch.from_numpy(rows), 4)


def test_logits_and_bpda_gradients(reference_dictionary: Dictionary) -> None:
    torch.manual_seed(0)  # test-only: layer init
    model = DefendedModel(build_frontend(FrontendConfig(decoder=DecoderName.SMALL), 32, reference_dictionary),
                          tiny_classifier()).eval()
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2)).requires_grad_()
    logits = model(x)
    assert logits.shape == (3, 10)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2])), x)
    assert torch.isfinite(grad).all() and float(grad.abs().max()) > 0
    with use_bpda(model, BPDA(top_u=0, steepness=0.0)):  # identity through top-T and activation
        assert torch.equal(model(x), logits)
        (other,) = torch.autograd.grad(nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2])), x)
    assert not torch.allclose(grad, other)
    assert model.encoder is model.frontend.encoder


def test_safetensors_file_is_self_contained(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = FrontendConfig(decoder=DecoderName.SMALL)
    model = DefendedModel(build_frontend(cfg, 32, random_dictionary(1)), tiny_classifier()).eval()
    assert "frontend.encoder.atoms" in model.state_dict()
    save_file(model.state_dict(), str(tmp_path / "model.safetensors"))
    other = DefendedModel(build_frontend(cfg, 32, random_dictionary(2)), tiny_classifier()).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    assert not torch.equal(other(x), model(x))
    other.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    assert torch.equal(other(x), model(x))
