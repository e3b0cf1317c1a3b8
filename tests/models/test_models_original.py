"""Import of the original implementation's ResNet-32 checkpoints (reference/checkpoints)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from scfront.data import eval_subset_indices, load_cifar10
from scfront.errors import CheckpointError
from scfront.models import create_model, import_original_resnet32
from scfront.models.check_original import main as check_original
from scfront.training.metrics import accuracy


@pytest.fixture(scope="module")
def pgd_at_path(reference_dir: Path) -> Path:
    return reference_dir / "checkpoints" / "resnet32_pgd_at.pt"


@pytest.fixture(scope="module")
def original_state(pgd_at_path: Path) -> OrderedDict:
    return torch.load(pgd_at_path, map_location="cpu", weights_only=True)


def test_keys_match_the_checkpoint_exactly(pgd_at_path: Path, original_state: OrderedDict) -> None:
    model = import_original_resnet32(pgd_at_path)
    assert not model.training
    assert list(model.state_dict()) == list(original_state)
    for key, value in original_state.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_predicts_real_images(pgd_at_path: Path, data_root: Path) -> None:
    test = load_cifar10(data_root, "test")
    index = eval_subset_indices(len(test), 200, seed=0)
    model = import_original_resnet32(pgd_at_path)
    # 79.41 % on all 10,000 images; 200 images leave a few points of sampling noise.
    assert accuracy(model, test.images[index], test.labels[index]) > 0.70
    with torch.no_grad():
        probs = model(test.images[index[:8]].float() / 255).softmax(1)
    assert torch.allclose(probs.sum(1), torch.ones(8))


def test_check_original_script(pgd_at_path: Path, data_root: Path, capsys) -> None:
    assert check_original([str(pgd_at_path), "--data-root", str(data_root), "--n-images", "100"]) == 0
    assert "clean accuracy" in capsys.readouterr().out


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        import_original_resnet32(tmp_path / "nothing.pt")


def test_corrupt_and_truncated_files(tmp_path: Path, pgd_at_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(CheckpointError, match="not a readable PyTorch state_dict"):
        import_original_resnet32(garbage)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(pgd_at_path.read_bytes()[:50_000])
    with pytest.raises(CheckpointError, match="not a readable"):
        import_original_resnet32(truncated)


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(CheckpointError, match="expected a state_dict"):
        import_original_resnet32(path)
    nested = tmp_path / "nested.pt"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "epoch": 3}, nested)
    with pytest.raises(CheckpointError, match="not a state_dict of tensors"):
        import_original_resnet32(nested)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "object.pt"
    torch.save({"conv1.weight": torch.zeros(1), "payload": Path("x")}, path)
    with pytest.raises(CheckpointError, match="not a readable"):
        import_original_resnet32(path)


def test_wrong_keys_and_shapes_are_listed(tmp_path: Path, original_state: OrderedDict) -> None:
    renamed = OrderedDict((k.replace("block3", "layer3"), v) for k, v in original_state.items())
    path = tmp_path / "renamed.pt"
    torch.save(renamed, path)
    with pytest.raises(CheckpointError, match=r"missing keys block3\.0\..*and \d+ more; unexpected keys layer3"):
        import_original_resnet32(path)
    wide = create_model("resnet32_wide").state_dict()
    path = tmp_path / "wide.pt"
    torch.save(wide, path)
    with pytest.raises(CheckpointError, match=r"shape mismatches conv1.weight \(160, 3, 3, 3\) != \(16, 3, 3, 3\)"):
        import_original_resnet32(path)
