"""Each figure function writes a valid PNG; the plotted numbers match direct computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn


from scfront.dictionary import dct_dictionary, plot_atoms
from scfront.frontend.bpda import smooth_step_derivative
from scfront.reproduction import plots
from scfront.reproduction.sweep import EPS_GRIDS, accuracy_sweep, read_sweep

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert float(image[..., :3].std()) > 0.01  # not a blank canvas
    return image


def tiny_net() -> nn.Module:
    torch.manual_seed(0)  # test code: a fixed tiny network
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).eval()


def test_bpda_curves_follow_the_exact_rule_and_its_surrogate() -> None:
    jump, s = 3 * 8 / 255, 4.0
    u = torch.linspace(-0.3, 0.3, 61, dtype=torch.float64)
    curves = plots.bpda_surrogate_curves(jump, s, u)
    expected_forward = np.where(np.abs(u.numpy()) > jump, np.sign(u.numpy()), 0.0)
    np.testing.assert_allclose(curves["forward"], expected_forward)
    # derivative of 0.5[tanh(s(u-j)) + tanh(s(u+j))] written out independently
    un = u.numpy()
    manual = 0.5 * s * (1 / np.cosh(s * (un - jump)) ** 2 + 1 / np.cosh(s * (un + jump)) ** 2)
    np.testing.assert_allclose(curves["derivative"], manual, rtol=1e-10)
    np.testing.assert_allclose(curves["derivative"], smooth_step_derivative(u, jump, s).numpy())


def test_bpda_and_atom_plots(tmp_path: Path) -> None:
    assert_png(plots.plot_bpda_surrogate(tmp_path / "bpda.png"))
    assert_png(plot_atoms(dct_dictionary(), tmp_path / "atoms.png"))


def test_loss_landscape_centre_is_the_clean_loss(tmp_path: Path) -> None:
    model = tiny_net()
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([3])
    land = plots.loss_landscape(model, x, y, eps=8 / 255, size=5, generator=torch.Generator().manual_seed(0))
    assert land["loss"].shape == (5, 5)
    with torch.no_grad():
        centre = float(F.cross_entropy(model(x), y))
    assert land["loss"][2, 2] == pytest.approx(centre, rel=1e-5)
    # a linear model: moving along the gradient sign raises the loss (inside [0, 1] clipping aside)
    assert land["loss"][4, 2] > land["loss"][0, 2]
    assert_png(plots.plot_loss_landscape(land, tmp_path / "landscape.png", 8 / 255, title="tiny"))


def test_examples_plot(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 3, 8, 8, generator=gen)
    adv = (clean + (torch.rand(2, 3, 8, 8, generator=gen) - 0.5) * 0.06).clamp(0, 1)
    labels, pred = torch.tensor([0, 1]), torch.tensor([0, 2])
    assert_png(plots.plot_examples(clean, adv, labels, labels, pred, tmp_path / "ex.png"))


def test_sweep_resumes_stops_at_zero_and_plots(tmp_path: Path) -> None:
    model = tiny_net()
    gen = torch.Generator().manual_seed(2)
    x, y = torch.rand(6, 3, 8, 8, generator=gen), torch.randint(0, 10, (6,), generator=gen)
    sweep = accuracy_sweep(model, x, y, tmp_path, steps=3, norms=("Linf",))
    points = sweep["Linf"]
    assert points[0]["eps"] == 0.0
    assert points[0]["accuracy"] == pytest.approx(float((model(x).argmax(1) == y).float().mean()))
    accuracies = [p["accuracy"] for p in points]
    # stops at the first zero (or runs the whole grid)
    assert 0.0 not in accuracies[:-1] and (accuracies[-1] == 0.0 or len(points) == len(EPS_GRIDS["Linf"]))
    assert read_sweep(tmp_path) == sweep
    again = accuracy_sweep(model, x, y, tmp_path, steps=3, norms=("Linf",))
    assert again == sweep
    assert_png(plots.plot_accuracy_vs_eps({"tiny": sweep, "other": {"Linf": points[:2]}}, tmp_path / "acc.png"))


def test_ablation_plot(tmp_path: Path) -> None:
    rows = [{"name": "T=1", "top_t": 1, "clean": 0.5, "pgd-linf": 0.2},
            {"name": "T=5", "top_t": 5, "clean": 0.6, "pgd-linf": 0.3},
            {"name": "dct", "top_t": None, "clean": 0.4, "pgd-linf": None}]
    assert_png(plots.plot_ablation(rows, tmp_path / "abl.png"))
