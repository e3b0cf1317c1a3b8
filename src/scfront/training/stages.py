"""The stages of a training run: one (everything together) or two (the unsupervised defense).

With ``train.autoencoder_epochs = A > 0`` a run of the defense has two stages in one run folder
(docs/method.md §5, "unsupervised frontend"):

1. **autoencoder**, epochs ``0 … A-1``: the frontend alone, trained to reconstruct the training
   images, labels unused. The loss is the pixel mean squared error ``mean((decoder(encoder(x)) -
   x)²)`` over the batch, as in the original code (``nn.MSELoss`` on the autoencoder's output
   against its input). MSE is also what the frontend is for: the classifier sees the
   reconstruction, and PSNR, the usual measure of it, is a function of the MSE. The encoder is
   fixed (its atoms are a buffer: a learnable dictionary is refused by the configuration), so
   only the decoder learns; the classifier's parameters are frozen and unused. SGD with the
   run's momentum and weight decay, one-cycle learning rate peaking at
   ``train.autoencoder_lr_max`` over the A epochs. The original sized that cycle by the
   classifier's epochs (70) while running 50 autoencoder epochs, so its rate never came back
   down; here the cycle spans stage 1 exactly.
2. **classifier**, epochs ``A … A+E-1`` (E = ``train.epochs``): the frontend frozen, the
   classifier trained on its reconstructions with the run's objective (cross-entropy for the
   defense), optimiser and schedule, with a fresh optimiser state.

Without stage 1 the run has the one stage ``joint``: frontend (if any) and classifier together,
exactly what training did before stages existed. The global epoch index runs over both stages;
the checkpoint after epoch ``k`` holds the optimiser of the stage that epoch belonged to, so a
run resumes inside either stage and between them (:func:`StagePlan.checkpoint_stage`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scfront.config import Schedule, TrainConfig
from scfront.io import atomic_write

__all__ = ["PLOT_FILE", "Stage", "StagePlan", "autoencoder_loss", "plot_reconstruction"]

PLOT_FILE = "reconstruction.png"


class Stage(str, enum.Enum):
    JOINT = "joint"  # one-stage training (every recipe but the unsupervised defense)
    AUTOENCODER = "autoencoder"  # stage 1: the frontend reconstructs its input
    CLASSIFIER = "classifier"  # stage 2: the classifier on the frozen frontend


@dataclass(frozen=True)
class StagePlan:
    """Which stage each global epoch belongs to, and each stage's schedule and parameters.

    Attributes:
        autoencoder_epochs: A >= 0 (0: one stage). classifier_epochs: E >= 1.
    """

    autoencoder_epochs: int
    classifier_epochs: int

    @classmethod
    def of(cls, config: TrainConfig) -> "StagePlan":
        return cls(config.autoencoder_epochs, config.epochs)

    @property
    def two_stage(self) -> bool:
        return self.autoencoder_epochs > 0

    @property
    def total_epochs(self) -> int:
        return self.autoencoder_epochs + self.classifier_epochs

    def stage_of(self, epoch: int) -> Stage:
        """The stage of global epoch ``epoch`` (0-based, in [0, total_epochs))."""
        if not 0 <= epoch < self.total_epochs:
            raise ValueError(f"epoch {epoch} outside the run's {self.total_epochs} epochs")
        if not self.two_stage:
            return Stage.JOINT
        return Stage.AUTOENCODER if epoch < self.autoencoder_epochs else Stage.CLASSIFIER

    def stage_epoch(self, epoch: int) -> int:
        """The 0-based index of global epoch ``epoch`` inside its stage."""
        return epoch - self.autoencoder_epochs if self.stage_of(epoch) is Stage.CLASSIFIER else epoch

    def checkpoint_stage(self, completed: int) -> Stage:
        """The stage whose optimiser a checkpoint after ``completed`` epochs holds (the stage of
        the last completed epoch; the first stage when nothing is completed)."""
        return self.stage_of(max(completed - 1, 0))

    def schedule(self, config: TrainConfig, stage: Stage) -> TrainConfig:
        """The settings :func:`~scfront.training.schedules.learning_rate` reads in ``stage``:
        stage 1 is a one-cycle of ``autoencoder_epochs`` epochs peaking at
        ``autoencoder_lr_max``; the other stages use ``config`` itself."""
        if stage is not Stage.AUTOENCODER:
            return config
        return dataclasses.replace(config, epochs=self.autoencoder_epochs,
                                   lr_max=config.autoencoder_lr_max, schedule=Schedule.ONECYCLE)

    def parameters(self, model: nn.Module, stage: Stage) -> list[nn.Parameter]:
        """Freeze what ``stage`` does not train and return what it trains, in module order.

        ``joint``: every parameter, untouched (the optimiser of one-stage training).
        ``autoencoder``: the frontend's (the decoder's), classifier frozen. ``classifier``: the
        classifier's, frontend frozen. A two-stage model has ``frontend`` and ``classifier``
        submodules (:class:`~scfront.models.defended.DefendedModel`).
        """
        if stage is Stage.JOINT:
            return list(model.parameters())
        frontend, classifier = model.frontend, model.classifier
        train, frozen = (frontend, classifier) if stage is Stage.AUTOENCODER else (classifier, frontend)
        frozen.requires_grad_(False)
        train.requires_grad_(True)
        return [p for p in train.parameters() if p.requires_grad]


def autoencoder_loss(frontend: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Stage 1's loss on a batch x (B, C, H, W) in [0, 1]: ``mean((frontend(x) - x)²)``, a scalar."""
    return F.mse_loss(frontend(x), x)


def plot_reconstruction(history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Stage 1's curves as a PNG: training loss (MSE on augmented training batches) and the
    monitor images' reconstruction MSE against the epoch, the monitor PSNR on a second axis.

    ``history``: log records; those with ``"stage": "autoencoder"`` are drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = [r for r in history if r.get("stage") == Stage.AUTOENCODER.value]
    figure = Figure(figsize=(6.0, 3.8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    epochs = [int(r["epoch"]) for r in records]
    axes.plot(epochs, [r["loss"] for r in records], marker="o", label="train MSE (augmented)")
    monitored = [(int(r["epoch"]), r["reconstruction_mse"], r["reconstruction_psnr"]) for r in records
                 if r.get("reconstruction_mse") is not None]
    if monitored:
        axes.plot([m[0] for m in monitored], [m[1] for m in monitored], marker="s",
                  label="monitor MSE (test images)")
        right = axes.twinx()
        right.plot([m[0] for m in monitored], [m[2] if math.isfinite(m[2]) else float("nan") for m in monitored],
                   color="tab:green", linestyle="--", marker="^", label="monitor PSNR")
        right.set_ylabel("PSNR (dB)")
        right.legend(loc="center right")
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_yscale("log")
    axes.set_xlabel("epoch (stage 1)")
    axes.set_ylabel("reconstruction MSE")
    axes.set_title("frontend trained as an autoencoder")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right")
    figure.tight_layout()
    return atomic_write(Path(path), lambda tmp: figure.savefig(tmp, format="png"))
