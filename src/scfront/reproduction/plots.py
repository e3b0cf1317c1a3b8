"""The reproduction's figures, as PNG files drawn with matplotlib's Agg canvas (no display).

- :func:`plot_accuracy_vs_eps`: one panel per norm, one line per model (from sweep results).
- :func:`plot_examples`: clean image, adversarial, perturbation amplified, per row.
- :func:`plot_bpda_surrogate`: the ternary activation's exact forward against the tanh surrogate
  and its derivative, computed through the real BPDA autograd function (docs/method.md §6).
- :func:`plot_loss_landscape`: cross-entropy over a 2-D grid around a test image, spanned by the
  gradient-sign direction and a random direction orthogonal to it.
- :func:`plot_ablation`: accuracy of the T sweep against T and of the other ablations as bars.
The dictionary atoms are drawn by :func:`scfront.dictionary.plot_atoms`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scfront.io import atomic_write

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: str | Path) -> Path:
    figure.tight_layout()
    return atomic_write(Path(path), lambda tmp: figure.savefig(tmp, format="png"))


def plot_accuracy_vs_eps(sweeps: Mapping[str, Mapping[str, Sequence[Mapping[str, float]]]],
                         path: str | Path) -> Path:
    """``sweeps``: {model: {norm: [{"eps", "accuracy"}]}} (see :mod:`.sweep`) -> one panel per norm."""
    norms = [n for n in ("Linf", "L2", "L1") if any(n in s for s in sweeps.values())]
    figure = _figure(4.2 * max(1, len(norms)), 3.6)
    for i, norm in enumerate(norms, 1):
        axes = figure.add_subplot(1, len(norms), i)
        for model, by_norm in sweeps.items():
            points = sorted(by_norm.get(norm, []), key=lambda p: p["eps"])
            if not points:
                continue
            eps = np.array([p["eps"] for p in points]) * (255.0 if norm == "Linf" else 1.0)
            axes.plot(eps, [100 * p["accuracy"] for p in points], marker="o", label=model)
        axes.set_xscale("symlog", linthresh=1.0 if norm == "Linf" else (0.1 if norm == "L2" else 5.0))
        axes.set_xlabel(f"{norm} ε" + (" (×255)" if norm == "Linf" else ""))
        axes.set_ylabel("accuracy (%)")
        axes.set_ylim(-2, 102)
        axes.set_title(f"PGD-{norm}")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    return _save(figure, path)


def plot_examples(clean: torch.Tensor, adversarial: torch.Tensor, labels: torch.Tensor,
                  clean_pred: torch.Tensor, adv_pred: torch.Tensor, path: str | Path,
                  classes: Sequence[str] = CIFAR10_CLASSES, title: str = "") -> Path:
    """Rows of (clean, adversarial, perturbation): images (N, 3, H, W) float in [0, 1].

    The perturbation ``δ = adv − clean`` is shown as ``0.5 + δ / (2·max|δ|)`` (amplified so that
    its largest entry reaches the range's edge; grey = unchanged).
    """
    n = int(clean.shape[0])
    figure = _figure(6.0, 2.1 * max(n, 1) + (0.3 if title else 0))
    for row in range(n):
        delta = (adversarial[row] - clean[row]).float()
        scale = float(delta.abs().max())
        amplified = 0.5 + delta / (2 * scale) if scale > 0 else torch.full_like(delta, 0.5)
        panels = ((clean[row], f"clean: {classes[int(labels[row])]} → {classes[int(clean_pred[row])]}"),
                  (adversarial[row], f"adversarial → {classes[int(adv_pred[row])]}"),
                  (amplified, f"perturbation ×{0.5 / scale:.0f}" if scale > 0 else "no perturbation"))
        for col, (image, caption) in enumerate(panels):
            axes = figure.add_subplot(n, 3, row * 3 + col + 1)
            axes.imshow(image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            axes.set_title(caption, fontsize=7)
            axes.set_axis_off()
    if title:
        figure.suptitle(title, fontsize=9)
    return _save(figure, path)


def bpda_surrogate_curves(jump: float, steepness: float, u: torch.Tensor) -> dict[str, np.ndarray]:
    """Forward output and backward derivative of the activation at ``u`` (1-D float64, ‖d‖₁ = 1),
    obtained by calling :class:`scfront.frontend.TanhSurrogateBackward` and backpropagating ones."""
    from scfront.frontend.bpda import TanhSurrogateBackward, smooth_step

    z = u.detach().clone().requires_grad_(True)
    l1 = torch.ones_like(z)
    out = TanhSurrogateBackward.apply(z, l1, jump, steepness)
    (grad,) = torch.autograd.grad(out.sum(), z)
    return {"forward": out.detach().numpy(), "surrogate": smooth_step(u, jump, steepness).numpy(),
            "derivative": grad.numpy()}


def plot_bpda_surrogate(path: str | Path, jump: float = 3.0 * 8.0 / 255.0,
                        steepness: Sequence[float] = (1.0, 4.0, 16.0, 64.0)) -> Path:
    """Left: exact ternary forward and the surrogate q(u); right: the derivative BPDA uses."""
    u = torch.linspace(-4 * jump, 4 * jump, 801, dtype=torch.float64)
    figure = _figure(10.0, 3.8)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    forward = bpda_surrogate_curves(jump, float(steepness[0]), u)["forward"]
    left.plot(u.numpy(), forward, color="black", linewidth=2, label="forward (exact ternary)")
    for s in steepness:
        curves = bpda_surrogate_curves(jump, float(s), u)
        left.plot(u.numpy(), curves["surrogate"], label=f"0.5[tanh(s(u−j))+tanh(s(u+j))], s={s:g}")
        right.plot(u.numpy(), curves["derivative"], label=f"s={s:g}")
    for axes in (left, right):
        for x in (-jump, jump):
            axes.axvline(x, color="grey", linestyle=":", linewidth=1)
        axes.set_xlabel("u = z / ‖d_k‖₁")
        axes.grid(alpha=0.3)
    left.set_title(f"activation (j = β·ε_a = {jump:.4f})")
    left.legend(fontsize=6)
    right.set_title("backward: derivative of the surrogate (autograd)")
    right.set_yscale("log")
    right.legend(fontsize=7)
    return _save(figure, path)


def loss_landscape(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                   size: int = 21, generator: torch.Generator | None = None) -> dict[str, np.ndarray]:
    """Cross-entropy at ``clip(x + a·g + b·r)`` for a, b in [−2ε, 2ε] (``size`` points each).

    Args:
        x: (1, 3, H, W) float in [0, 1]; y: (1,) int64.
        eps: Linf radius; g = ε-scaled sign of the input gradient (BPDA rules of the model),
            r = a random ±1 direction with its component along g removed, rescaled to Linf ε.
    Returns: {"a": (size,), "b": (size,), "loss": (size, size) with loss[i, j] at (a_i, b_j)}.
    """
    model.eval()
    xg = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
    g = grad.sign()
    r = torch.randint(0, 2, x.shape, generator=generator, dtype=torch.float32).mul_(2).sub_(1).to(x)
    r = r - (r * g).sum() / (g * g).sum().clamp_min(1e-12) * g  # orthogonal to g
    r = r / r.abs().max().clamp_min(1e-12)
    coords = torch.linspace(-2 * eps, 2 * eps, size)
    loss = np.zeros((size, size))
    with torch.no_grad():
        for i, a in enumerate(coords):
            batch = torch.stack([(x[0] + a * g[0] + b * r[0]).clamp(0, 1) for b in coords])
            loss[i] = F.cross_entropy(model(batch), y.expand(size), reduction="none").cpu().numpy()
    return {"a": coords.numpy(), "b": coords.numpy(), "loss": loss}


def plot_loss_landscape(landscape: Mapping[str, np.ndarray], path: str | Path, eps: float,
                        title: str = "") -> Path:
    """Surface and contour of :func:`loss_landscape`'s result (axes in units of 1/255)."""
    a, b, loss = landscape["a"] * 255, landscape["b"] * 255, landscape["loss"]
    figure = _figure(10.0, 4.2)
    surface = figure.add_subplot(1, 2, 1, projection="3d")
    grid_a, grid_b = np.meshgrid(a, b, indexing="ij")
    surface.plot_surface(grid_a, grid_b, loss, cmap="viridis")
    surface.set_xlabel("gradient sign (/255)")
    surface.set_ylabel("random orth. (/255)")
    surface.set_zlabel("cross-entropy")
    contour = figure.add_subplot(1, 2, 2)
    filled = contour.contourf(grid_a, grid_b, loss, levels=20, cmap="viridis")
    figure.colorbar(filled, ax=contour)
    box = eps * 255
    contour.plot([-box, box, box, -box, -box], [-box, -box, box, box, -box], color="white", linewidth=1)
    contour.set_xlabel("gradient sign direction (/255)")
    contour.set_ylabel("random orthogonal direction (/255)")
    contour.set_title("white square: the ε-ball's slice")
    if title:
        figure.suptitle(title, fontsize=9)
    return _save(figure, path)


def plot_ablation(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """``rows``: [{"name", "top_t" (None unless a T-sweep row), "clean", "pgd-linf"}] (fractions
    or None when not run) -> T sweep on the left, every ablation as bars on the right."""
    figure = _figure(11.0, 4.0)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    sweep = sorted((r for r in rows if r.get("top_t") is not None), key=lambda r: r["top_t"])
    for key, label in (("clean", "clean"), ("pgd-linf", "PGD-Linf 8/255")):
        points = [(r["top_t"], 100 * r[key]) for r in sweep if r.get(key) is not None]
        if points:
            left.plot(*zip(*points), marker="o", label=label)
    left.set_xscale("log")
    left.set_xlabel("T (U = 2T)")
    left.set_ylabel("accuracy (%)")
    left.set_title("top-T sweep")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    names = [r["name"] for r in rows]
    positions = np.arange(len(rows))
    for offset, (key, label) in zip((-0.2, 0.2), (("clean", "clean"), ("pgd-linf", "PGD-Linf 8/255"))):
        values = [100 * r[key] if r.get(key) is not None else 0.0 for r in rows]
        right.bar(positions + offset, values, width=0.4, label=label)
    right.set_xticks(positions)
    right.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
    right.set_ylabel("accuracy (%)")
    right.set_title("ablations (same training and attack budget)")
    right.legend(fontsize=8)
    return _save(figure, path)
