"""scfront.evaluate: one call from tensors to typed results, and any model from the command line
(a model defined in a temporary module, evaluated as module:factory with --weights)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from eval_helpers import mlp  # type: ignore[import-not-found]
from safetensors.torch import save_file
from torch import nn

import scfront
from scfront.cli import main
from scfront.errors import ConfigError, InputError
from scfront.evaluation.api import Evaluation
from scfront.evaluation.checks import default_checks
from scfront.evaluation.results import without_timings

ITEMS = "fgsm:eps=0.05,pgd-linf:steps=3"


def _data(n: int = 16) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    model = mlp()
    gen = torch.Generator().manual_seed(3)
    images = (torch.rand(n, 3, 8, 8, generator=gen) * 255).round().to(torch.uint8)
    with torch.no_grad():
        labels = model(images.float() / 255).argmax(1)
    labels[:2] = (labels[:2] + 1) % 10  # two images misclassified without attack
    return model, images, labels


def test_one_call_gives_typed_results_and_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    model, images, labels = _data()
    result = scfront.evaluate(model, images, labels, ITEMS, eps=0.05, check_images=8)
    assert isinstance(result, Evaluation) and result.out is None
    assert not any(scratch.iterdir())  # the temporary evaluation folder is gone
    r = result.results
    assert result.clean_accuracy == r["clean_accuracy"] == 14 / 16
    assert result.robust_accuracy == {a["name"]: a["robust_accuracy"] for a in r["attacks"]}
    assert list(result.robust_accuracy) == ["fgsm", "pgd-linf"]
    assert result.worst_case_accuracy == r["worst_case_accuracy"] == float(result.robust.float().mean())
    assert result.attacks[1].eps == 0.05 and result.attacks[1].norm == "Linf"
    for i, position in enumerate(r["broken_by"]):
        assert result.broken_by[i] == (r["attacks"][position]["name"] if position >= 0 else None)
        assert bool(result.correct[i]) == (position != -2) and bool(result.robust[i]) == (position == -1)
    assert not result.correct[:2].any()
    assert list(result.checks) == default_checks()
    assert result.check_seconds == pytest.approx(sum(c.seconds for c in result.checks.values()))
    assert result.attack_seconds == pytest.approx(sum(a.seconds for a in result.attacks))
    assert result.failed_checks == [n for n, c in result.checks.items() if not c.passed]


def test_uint8_and_float_images_and_a_kept_folder_give_the_same_results(tmp_path: Path) -> None:
    model, images, labels = _data()
    pixels = scfront.evaluate(model, images, labels, ITEMS, eps=0.05, checks=False)
    floats = scfront.evaluate(model, images.float() / 255, labels.tolist(), ITEMS, eps=0.05, checks=False,
                              out=tmp_path / "kept")
    assert floats.out == tmp_path / "kept"
    assert json.loads((tmp_path / "kept" / "results.json").read_text()) == floats.results
    assert without_timings(dict(pixels.results)) == without_timings(dict(floats.results))
    assert pixels.checks == {} and pixels.check_seconds == 0.0


def test_norm_and_eps_reach_the_attacks_that_take_them() -> None:
    model, images, labels = _data(8)
    result = scfront.evaluate(model, images, labels, ["apgd-ce:steps=2", "pgd-l2:steps=2"], eps=0.5, norm="L2",
                              checks=False)
    assert [(a.name, a.norm, a.eps) for a in result.attacks] == [("apgd-ce", "L2", 0.5), ("pgd-l2", "L2", 0.5)]
    with pytest.raises(ConfigError, match="pgd-linf attack.s. another norm"):
        scfront.evaluate(model, images, labels, "pgd-l2,pgd-linf", eps=0.5, norm="L2")
    with pytest.raises(ConfigError, match="norm must be one of"):
        scfront.evaluate(model, images, labels, "pgd-linf", norm="Lmax")


@pytest.mark.parametrize("images, labels, match", [
    (lambda x: x.float(), None, "divide by 255"),
    (lambda x: x.float() / 255 * 0.999, None, "8-bit values"),
    (lambda x: x[0], None, r"\(N, C, H, W\)"),
    (lambda x: x.to(torch.int32), None, "uint8 or float"),
    (None, lambda y: y[:3], "labels must be an integer tensor of shape"),
    (None, lambda y: y.float(), "labels must be an integer tensor of shape"),
    (None, lambda y: y - 5, "negative"),
], ids=["0-255-floats", "not-8-bit", "no-batch-axis", "int32", "labels-shape", "float-labels", "negative-labels"])
def test_bad_images_and_labels_are_refused_in_one_line(images, labels, match) -> None:  # type: ignore[no-untyped-def]
    model, x, y = _data(8)
    with pytest.raises(InputError, match=match) as info:
        scfront.evaluate(model, images(x) if images else x, labels(y) if labels else y, "fgsm")
    assert "\n" not in str(info.value)


def test_a_model_that_outputs_probabilities_is_refused_before_any_attack(tmp_path: Path) -> None:
    model, images, labels = _data(8)
    with pytest.raises(ConfigError, match="pass logits, not softmax"):
        scfront.evaluate(nn.Sequential(model, nn.Softmax(dim=1)), images, labels, "fgsm", out=tmp_path / "e")
    with pytest.raises(ConfigError, match="10 outputs but the dataset has 7 classes"):
        scfront.evaluate(model, images, labels, "fgsm", out=tmp_path / "e", n_classes=7)
    assert not (tmp_path / "e").exists()


# --------------------------------------------------------------------------- a model of one's own
FACTORY = '''
import torch
from torch import nn


def make():
    """A linear classifier of 32x32 RGB images in [0, 1]: logits for 10 classes."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
'''


def test_a_model_in_a_temporary_module_via_the_cli_and_via_scfront_evaluate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_root: Path) -> None:
    module = tmp_path / "site" / "h3_tmp_linear_model.py"
    module.parent.mkdir()
    module.write_text(FACTORY)
    monkeypatch.syspath_prepend(str(module.parent))
    from h3_tmp_linear_model import make  # type: ignore[import-not-found]

    gen = torch.Generator().manual_seed(0)
    net = make()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    weights = tmp_path / "linear.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    spec = "h3_tmp_linear_model:make"
    out = tmp_path / "cli"
    code = main(["evaluate", spec, "--weights", str(weights), "--data-root", str(data_root), "--attacks",
                 "fgsm,pgd-linf:steps=2", "--n-images", "8", "--check-images", "8", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    cli = json.loads((out / "results.json").read_text())
    assert cli["model"] == spec and cli["n_images"] == 8 and list(cli["checks"]) == default_checks()

    from scfront.data import eval_subset_indices, load_cifar10

    test = load_cifar10(data_root, "test")
    index = eval_subset_indices(len(test), 8, 0)
    api = scfront.evaluate(spec, test.images[index], test.labels[index], "fgsm,pgd-linf:steps=2", weights=weights,
                           eps=None, check_images=8, n_classes=10, indices=index, dataset="cifar10")
    assert without_timings(dict(api.results)) == without_timings(cli)  # the same evaluation
    with pytest.raises(ConfigError, match="weights= applies to a model spec"):
        scfront.evaluate(net, test.images[index], test.labels[index], "fgsm", weights=weights)
