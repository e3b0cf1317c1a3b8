"""The training loop: one code path for the defense and the baselines, at every scale.

``train(config, run_dir, data_root)`` trains the network :func:`~scfront.models.build_model`
builds from ``config`` with the objective of ``config.train.method`` (clean cross-entropy, which
with ``frontend.enabled`` is the defense of docs/method.md §5; PGD-AT; FGSM-RS; TRADES), SGD with
momentum and weight decay, and the learning-rate schedule of ``config.train.schedule`` evaluated
before every batch. The run folder receives::

    config.toml          the resolved configuration (a rerun must use the same one)
    log.jsonl            one line per epoch: epoch, loss, train accuracy, monitor accuracy on a
                         fixed seeded test subset of data.monitor_images, lr, seconds
    checkpoint.json, checkpoints/   resumable state, written atomically after every epoch
    model.safetensors, model_card.json, summary.json   when training has finished

With ``train.autoencoder_epochs > 0`` (the ``defense_unsupervised`` recipe) the run has two
stages (:mod:`scfront.training.stages`): the frontend trained alone as an autoencoder, then the
classifier on the frozen frontend. Its log records carry ``"stage"``; stage-1 records hold the
training MSE as ``loss`` and the monitor images' ``reconstruction_mse`` / ``reconstruction_psnr``
(instead of accuracies), drawn into ``reconstruction.png`` when stage 1 is complete; the summary
and the model card add ``autoencoder_epochs`` and ``reconstruction``: MSE and PSNR of the
frontend on the whole test split.

With ``train.early_stop_images > 0`` (the fast adversarial training recipes) that many training
images are held out of training, each epoch's record carries ``"early_stop"`` (the check's
settings, the held-out clean and PGD accuracies, the best epoch so far and ``stop``), and a
collapse of the PGD accuracy ends training with the best epoch's weights as the model
(:mod:`scfront.training.early_stop`); the summary and the model card then add ``early_stop``.
Without it every file is what it was before the check existed.

Every random draw comes from an explicit generator derived from ``train.seed``: initial weights,
data order and augmentation, attack starts, and the model's own noise/dropout (assigned to every
submodule with a ``generator`` attribute). Their states are part of each checkpoint, so running
the same command again after a crash continues from the last completed epoch and ends with the
same weights as an uninterrupted run (same device and thread count).

Nothing is written before everything that can be checked has been: the configuration (its
ranges, when it is built), the run folder (a run of another configuration is refused), the data,
the model (its dictionary, ``frontend.top_t`` against the dictionary's atoms) and the batch size
against the training set. A new run that then fails before its first epoch is saved (including
an interrupt) removes what it created (the run folder, or its content when the folder existed
empty, and the parent folders it created), so the corrected command starts cleanly; a resumed
run keeps everything its earlier epochs wrote.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from scfront.config import (DatasetName, RunConfig, TrainMethod, differing_settings, flat_settings, load_config,
                            save_config)
from scfront.errors import CheckpointError, ConfigError, ScfrontError, TrainingError
from scfront.io import atomic_write_json, atomic_write_text
from scfront.models.build import build_model
from scfront.models.randomness import attach_generator
from scfront.models.saving import CARD_FILE, CONFIG_FILE, MODEL_FILE, find_encoder, save_model
from scfront import distributed as D
from scfront.training.adversarial import initial_perturbation, training_loss
from scfront.training.checkpoint import (RECORD_FILE, TENSOR_DIR, TrainingState, checkpoint_epoch,
                                         load_checkpoint, restore_generators, save_checkpoint)
from scfront.training.early_stop import (RECORD_KEY, RobustnessCheck, held_out_split, judge, last_check,
                                         stop_record)
from scfront.training.metrics import count_correct, psnr, squared_error
from scfront.training.schedules import learning_rate
from scfront.training.stages import PLOT_FILE, Stage, StagePlan, autoencoder_loss, plot_reconstruction

log = logging.getLogger(__name__)

LOG_FILE = "log.jsonl"
SUMMARY_FILE = "summary.json"
SHARED_GENERATORS = ("data", "attack")  # identical on every process


def derive_seed(seed: int, purpose: str, rank: int = 0) -> int:
    """A 63-bit seed for one use of the run seed (independent streams per purpose and rank)."""
    digest = hashlib.sha256(f"scfront/{seed}/{purpose}/{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _differences(a: RunConfig, b: RunConfig) -> list[str]:
    """``"section.key: old -> new"`` for every setting ``a`` and ``b`` differ in, sorted."""
    fa, fb = flat_settings(a), flat_settings(b)
    return [f"{key}: {fa.get(key)!r} -> {fb.get(key)!r}" for key in differing_settings(fa, fb)]


def _remove_stale_temporaries(run_dir: Path) -> None:
    # A process killed inside scfront.io.atomic_write leaves its ".NAME.*.tmp" file behind.
    for folder in (run_dir, run_dir / TENSOR_DIR):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


# Where and with how many threads a run executes: not part of what it trains. A finished run
# is reused from any device; a partial one resumes only on its own device (generator states
# are device-specific), with any thread count (only the float summation order changes).
EXECUTION_SETTINGS = ("train.device", "train.num_threads")


def _check_run_dir(run_dir: Path, config: RunConfig) -> bool:
    """Whether ``run_dir`` starts a new run (True: absent or empty) or holds this run (False);
    ConfigError for a folder holding anything else. Writes nothing (a killed process's
    temporary files are removed)."""
    saved_path = run_dir / CONFIG_FILE
    _remove_stale_temporaries(run_dir)
    if saved_path.is_file():
        saved = load_config(saved_path)
        if saved == config:
            return False
        # what the run trains: the saved configuration with this invocation's execution settings
        trained = saved.replace({key: attrgetter(key)(config) for key in EXECUTION_SETTINGS})
        if trained != config:
            diffs = _differences(trained, config)
            shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
            raise ConfigError(f"{run_dir} holds a run with another configuration ({shown}); "
                              "rerun with the same settings to resume, or choose a new --out")
        if (saved.train.device != config.train.device
                and _finished_summary(run_dir, saved.train.epochs) is None):
            raise ConfigError(f"{run_dir} holds an unfinished run started with --device "
                              f"{saved.train.device}; resume it on that device (its random "
                              f"generator states are device-specific), or choose a new --out")
        return False
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is an existing file, not a run folder; choose a new --out")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise ConfigError(f"{run_dir} is not empty and holds no {CONFIG_FILE}: not a scfront run "
                          "folder; choose a new or empty --out")
    return True


@dataclass(frozen=True)
class _NewRun:
    """What starting a new run created, so that a failure before its first epoch can undo it:
    ``created`` are the folders that did not exist (deepest first), ``run_dir`` the run folder."""

    run_dir: Path
    created: tuple[Path, ...]

    @classmethod
    def start(cls, run_dir: Path, config: RunConfig) -> "_NewRun":
        """Create the folder (and missing parents) and write ``config.toml``."""
        created = []
        folder = run_dir.absolute()
        while not folder.exists():
            created.append(folder)
            folder = folder.parent
        new = cls(run_dir, tuple(created))
        try:
            save_config(config, run_dir / CONFIG_FILE)
        except BaseException:
            new.undo()
            raise
        return new

    def undo(self) -> None:
        """Remove what :meth:`start` and the run wrote since (the folder was empty or absent)."""
        try:
            if self.created:
                shutil.rmtree(self.created[0], ignore_errors=True)
                for folder in self.created[1:]:
                    folder.rmdir()
            elif self.run_dir.is_dir():
                for entry in self.run_dir.iterdir():
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
        except OSError as exc:  # the original failure matters more than this one
            log.warning("could not remove the unfinished run %s: %s", self.run_dir, exc)


def _write_log(run_dir: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_text(run_dir / LOG_FILE, "".join(json.dumps(r) + "\n" for r in history))


def _monitor_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      batch_size: int, ctx: D.DistContext) -> float:
    part = D.shard(int(images.shape[0]), ctx)
    model.eval()
    try:
        correct = count_correct(model, images[part], labels[part], batch_size, ctx.device)
    finally:
        model.train()
    (total,) = D.sum_across([float(correct)], ctx)
    return total / int(images.shape[0])


def _reconstruction(frontend: nn.Module, images: torch.Tensor, batch_size: int,
                    ctx: D.DistContext) -> dict[str, float]:
    """MSE and PSNR of ``frontend`` (eval mode) on ``images``, each process a shard."""
    part = D.shard(int(images.shape[0]), ctx)
    frontend.eval()
    try:
        local = squared_error(frontend, images[part], batch_size, ctx.device)
    finally:
        frontend.train()
    (total,) = D.sum_across([local], ctx)
    mse = total / images[0].numel() / int(images.shape[0])
    return {"mse": mse, "psnr": psnr(mse)}


def train(config: RunConfig, run_dir: str | Path, data_root: str | Path | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train (or resume, or just report a finished run) and return the summary.

    Args:
        config: the resolved run configuration.
        run_dir: the run folder (created; must be empty or hold a run of the same config).
        data_root: folder holding ``cifar10/`` / ``imagenette/`` (unused for synthetic data).
        progress: show tqdm progress bars (main process only).

    Returns:
        the content of ``summary.json``.
    """
    ctx = D.setup(config.train.device)
    try:
        return _train(config, Path(run_dir), data_root, progress, ctx)
    finally:
        D.teardown(ctx)


@dataclass
class _Run:
    """Everything one training process holds between epochs."""

    config: RunConfig
    run_dir: Path
    ctx: D.DistContext
    model: nn.Module  # the network (unwrapped)
    net: nn.Module  # what the loss is computed through (DDP wrapper or the model)
    optimizer: torch.optim.Optimizer
    generators: dict[str, torch.Generator]  # shared by all processes
    model_gen: torch.Generator  # this process's noise/dropout source
    loader: Any
    monitor: tuple[torch.Tensor, torch.Tensor] | None
    state: TrainingState
    plan: StagePlan
    stage: Stage
    check: RobustnessCheck | None = None  # the early-stopping check on held-out images

    def enter(self, stage: Stage) -> None:
        """Start ``stage``: freeze what it does not train, a fresh optimiser over the rest, and
        (several processes) a DDP wrapper of what its loss runs through."""
        self.stage = stage
        self.optimizer = _optimizer(self.model, self.config, self.plan, stage)
        self.net = _wrap(self.model.frontend if stage is Stage.AUTOENCODER else self.model, self.ctx)
        self.model.train()

    def epoch(self, epoch: int, progress: bool) -> dict[str, Any]:
        """Train one epoch (0-based global index); returns its log record."""
        if self.stage is Stage.AUTOENCODER:
            return self._autoencoder_epoch(epoch, progress)
        record = self._classifier_epoch(epoch, progress)
        return {"stage": self.stage.value, **record} if self.plan.two_stage else record

    def _bar(self, epoch: int, progress: bool) -> Any:
        if self.plan.two_stage:
            desc = (f"{self.stage.value} epoch {self.plan.stage_epoch(epoch) + 1}/"
                    f"{self.plan.autoencoder_epochs if self.stage is Stage.AUTOENCODER else self.plan.classifier_epochs}")
        else:
            desc = f"epoch {epoch + 1}/{self.config.train.epochs}"
        return tqdm(self.loader, total=len(self.loader), desc=desc, unit="batch", leave=False,
                    disable=not (progress and self.ctx.is_main))

    def _step(self, loss: torch.Tensor, share: float, epoch: int, step: int, lr: float) -> float:
        """Backward (the shard's loss weighted by its ``share`` of the global batch times the
        number of processes, since DDP averages) and optimiser step; the loss's value."""
        self.optimizer.zero_grad(set_to_none=True)
        (loss * share).backward()
        self.optimizer.step()
        value = float(loss.item())
        if not math.isfinite(value):
            raise TrainingError(f"training diverged: loss {value} at epoch {epoch + 1}, "
                                f"batch {step + 1} (lr {lr:.4g}); lower "
                                f"{'train.autoencoder_lr_max' if self.stage is Stage.AUTOENCODER else 'train.lr_max'}")
        return value

    def _autoencoder_epoch(self, epoch: int, progress: bool) -> dict[str, Any]:
        """One epoch of stage 1: the frontend reconstructs the (augmented) training batches."""
        tc, ctx = self.config.train, self.ctx
        schedule = self.plan.schedule(tc, self.stage)
        start_time = time.perf_counter()
        sums = [0.0, 0.0]  # loss · n, n (this process)
        lr = 0.0
        steps = len(self.loader)
        bar = self._bar(epoch, progress)
        for step, (xb, _labels) in enumerate(bar):
            lr = learning_rate(schedule, self.plan.stage_epoch(epoch), step, steps)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            part = D.shard(int(xb.shape[0]), ctx)
            x = xb[part]
            if tc.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            value = self._step(autoencoder_loss(self.net, x), x.shape[0] * ctx.world_size / xb.shape[0],
                               epoch, step, lr)
            sums[0] += value * x.shape[0]
            sums[1] += x.shape[0]
            bar.set_postfix(mse=f"{value:.5f}", lr=f"{lr:.4f}", refresh=False)
        bar.close()
        train_seconds = time.perf_counter() - start_time
        loss_sum, seen = D.sum_across(sums, ctx)
        monitor: dict[str, float | None] = {"mse": None, "psnr": None}
        if self.monitor is not None:
            monitor = dict(_reconstruction(self.model.frontend, self.monitor[0],
                                           self.config.evaluation.batch_size, ctx))
        return {
            "epoch": epoch + 1,
            "stage": self.stage.value,
            "loss": loss_sum / seen,
            "reconstruction_mse": monitor["mse"],
            "reconstruction_psnr": monitor["psnr"],
            "lr": lr,
            "seconds": time.perf_counter() - start_time,
            "images_per_second": seen / train_seconds,
        }

    def _classifier_epoch(self, epoch: int, progress: bool) -> dict[str, Any]:
        """One epoch of the run's objective (the whole model, or the classifier in stage 2)."""
        tc, ctx, optimizer = self.config.train, self.ctx, self.optimizer
        schedule_epoch = self.plan.stage_epoch(epoch)
        start_time = time.perf_counter()
        sums = [0.0, 0.0, 0.0]  # loss · n, correct, n (this process)
        lr = 0.0
        steps = len(self.loader)
        bar = self._bar(epoch, progress)
        for step, (xb, yb) in enumerate(bar):
            lr = learning_rate(tc, schedule_epoch, step, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            start = initial_perturbation(tc, xb, self.generators["attack"])
            part = D.shard(int(xb.shape[0]), ctx)
            x, y = xb[part], yb[part]
            if tc.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            loss, logits = training_loss(tc, self.net, self.model, x, y,
                                         None if start is None else start[part])
            # DDP averages gradients over processes: weight each shard by its share of the batch.
            value = self._step(loss, x.shape[0] * ctx.world_size / xb.shape[0], epoch, step, lr)
            sums[0] += value * x.shape[0]
            sums[1] += float((logits.argmax(1) == y).sum().item())
            sums[2] += x.shape[0]
            bar.set_postfix(loss=f"{value:.3f}", lr=f"{lr:.4f}", refresh=False)
        bar.close()
        train_seconds = time.perf_counter() - start_time
        loss_sum, correct, seen = D.sum_across(sums, ctx)
        monitor = None
        if self.monitor is not None:
            monitor = _monitor_accuracy(self.model, *self.monitor,
                                        self.config.evaluation.batch_size, ctx)
        return {
            "epoch": epoch + 1,
            "loss": loss_sum / seen,
            "train_accuracy": correct / seen,
            "monitor_accuracy": monitor,
            "lr": lr,
            "seconds": time.perf_counter() - start_time,
            "images_per_second": seen / train_seconds,
        }

    def robustness(self, record: dict[str, Any]) -> str | None:
        """Run the early-stopping check after the epoch of ``record`` (not after stage-1
        epochs), add its entry to ``record`` and keep the weights if they are the best so far;
        the reason to stop, or None."""
        if self.check is None or record.get("stage") == Stage.AUTOENCODER.value:
            return None
        start_time = time.perf_counter()
        clean, robust = self.check.measure(self.model, self.config.evaluation.batch_size, self.ctx)
        verdict = judge(last_check(self.state.history), int(record["epoch"]), clean, robust, self.config.train)
        seconds = time.perf_counter() - start_time
        record[RECORD_KEY] = {**self.check.settings(), **verdict, "seconds": seconds}
        record["seconds"] += seconds
        if verdict["best_epoch"] == record["epoch"]:
            self.state.best_model = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        return verdict["stop"]

    def checkpoint(self, record: dict[str, Any]) -> None:
        """Record a finished epoch: history, generator states of every process, files."""
        state = self.state
        state.history.append(record)
        state.epoch = int(record["epoch"])
        model_states = D.gather_objects(self.model_gen.get_state(), self.ctx)
        state.generators = {name: g.get_state() for name, g in self.generators.items()}
        state.generators.update({f"model.rank{r}": s for r, s in enumerate(model_states)})
        if self.ctx.is_main:
            save_checkpoint(self.run_dir, self.model, self.optimizer, state)
            _write_log(self.run_dir, state.history)
            if record.get("stage") == Stage.AUTOENCODER.value and state.epoch == self.plan.autoencoder_epochs:
                plot_reconstruction(state.history, self.run_dir / PLOT_FILE)  # stage 1 is complete
        D.barrier(self.ctx)

    def finish(self, initial_dictionary: Any, train_images: int,
               test_images: torch.Tensor | None = None) -> dict[str, Any]:
        """Save the model and ``summary.json`` (main process); the summary on every process.

        ``test_images``: (N, C, H, W) uint8, the whole test split, on which a two-stage run
        measures its frontend's reconstruction error (every process its shard)."""
        tc, path = self.config.train, self.run_dir / SUMMARY_FILE
        stopped = stop_record(self.state.history)
        if stopped is not None:  # the best epoch's weights are the model
            best = stopped[RECORD_KEY]["best_epoch"]
            if self.state.best_model is None:
                raise CheckpointError(f"{self.run_dir}: the run stopped early but its checkpoint holds no "
                                      f"weights of its best epoch {best}")
            self.model.load_state_dict(self.state.best_model)
        reconstruction = None
        if self.plan.two_stage:
            self.model.requires_grad_(True)  # the saved model's parameters are all trainable
            assert test_images is not None
            reconstruction = {"test_images": int(test_images.shape[0]),
                              **_reconstruction(self.model.frontend, test_images,
                                                self.config.evaluation.batch_size, self.ctx)}
        if self.ctx.is_main:
            last = self.state.history[-1] if self.state.history else {}
            if stopped is not None:  # the metrics of the epoch whose weights are saved
                last = next(r for r in self.state.history
                            if r["epoch"] == stopped[RECORD_KEY]["best_epoch"])
            metrics: dict[str, Any] = {
                "epochs": tc.epochs, "train_loss": last.get("loss"),
                "train_accuracy": last.get("train_accuracy"),
                "monitor_accuracy": last.get("monitor_accuracy"),
                "monitor_images": 0 if self.monitor is None else int(self.monitor[1].shape[0])}
            if reconstruction is not None:
                metrics.update(autoencoder_epochs=self.plan.autoencoder_epochs,
                               reconstruction=reconstruction)
            if self.check is not None:
                final = last_check(self.state.history) or {}
                metrics["early_stop"] = {
                    **self.check.settings(), "stopped": stopped is not None,
                    "reason": None if stopped is None else stopped[RECORD_KEY]["stop"],
                    "epochs_trained": self.state.epoch,
                    "model_epoch": int(last["epoch"]) if last else 0,
                    "best_epoch": final.get("best_epoch"),
                    "best_robust_accuracy": final.get("best_robust_accuracy")}
            save_model(self.model, self.run_dir, self.config, metrics,
                       dictionary=initial_dictionary, dataset={"train_images": train_images})
            atomic_write_json(path, {
                **metrics,
                "method": tc.method.value,
                "defended": self.config.frontend.enabled,
                "classifier": self.config.model.classifier,
                "world_size": self.ctx.world_size,
                "device": str(self.ctx.device),
                "seconds": sum(r["seconds"] for r in self.state.history),
                "history": self.state.history,
            })
        D.barrier(self.ctx)
        return json.loads(path.read_text(encoding="utf-8"))


def _finished_summary(run_dir: Path, epochs: int) -> dict[str, Any] | None:
    """summary.json of a run that finished ``epochs`` and saved its model and card, else None."""
    summary_path = run_dir / SUMMARY_FILE
    if not (summary_path.is_file() and (run_dir / CARD_FILE).is_file() and (run_dir / MODEL_FILE).is_file()):
        return None
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    return summary if int(summary.get("epochs", 0)) >= epochs else None


def _train(config: RunConfig, run_dir: Path, data_root: str | Path | None, progress: bool,
           ctx: D.DistContext) -> dict[str, Any]:
    from scfront.data import batches, eval_subset_indices, load_dataset

    tc = config.train
    if tc.num_threads is not None:
        torch.set_num_threads(tc.num_threads)
    # The main process checks the folder; every process raises the same error.
    problem, fresh = None, False
    if ctx.is_main:
        try:
            fresh = _check_run_dir(run_dir, config)
        except ScfrontError as exc:
            problem = str(exc)
    problem, fresh = D.broadcast_object((problem, fresh), ctx)
    if problem is not None:
        raise ConfigError(problem)
    finished = None if fresh else _finished_summary(run_dir, tc.epochs)
    if finished is not None:  # with or without its resume checkpoints (results/ keeps none)
        if ctx.is_main:
            log.info("%s is already complete (%d epochs)", run_dir, tc.epochs)
        return finished

    root = None if config.data.dataset is DatasetName.SYNTHETIC else data_root
    train_set = load_dataset(config.data, root, "train")
    check = None
    if tc.early_stop_images > 0:  # held out of training for the early-stopping check
        held, rest = held_out_split(len(train_set), tc.early_stop_images, tc.seed)
        check = RobustnessCheck.of(tc, train_set.images[held], train_set.labels[held], held)
        train_set = train_set.subset(rest)
    elif tc.method is TrainMethod.FGSM_RS and ctx.is_main:
        log.warning("FGSM-RS without the early-stopping check (train.early_stop_images = 0): nothing "
                    "guards this run against catastrophic overfitting (docs/method.md §5)")
    monitor, test_images = None, None
    two_stage = StagePlan.of(tc).two_stage
    if config.data.monitor_images > 0 or two_stage:
        test_set = load_dataset(config.data, root, "test")
        test_images = test_set.images if two_stage else None
    if config.data.monitor_images > 0:
        n = min(config.data.monitor_images, len(test_set))
        index = eval_subset_indices(len(test_set), n, config.data.subset_seed)
        monitor = (test_set.images[index], test_set.labels[index])

    init_gen = torch.Generator().manual_seed(derive_seed(tc.seed, "init"))
    model = build_model(config, generator=init_gen)
    encoder = find_encoder(model) if config.frontend.enabled else None
    # Recorded in the model card: a learnable dictionary moves away from its starting atoms.
    initial_dictionary = encoder.dictionary() if encoder is not None else None
    model = model.to(ctx.device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    generators = {name: torch.Generator(ctx.device).manual_seed(derive_seed(tc.seed, name))
                  for name in SHARED_GENERATORS}
    model_gen = torch.Generator(ctx.device).manual_seed(derive_seed(tc.seed, "model", ctx.rank))
    attach_generator(model, model_gen)
    loader = batches(train_set.images, train_set.labels, tc.batch_size, shuffle=True,
                     generator=generators["data"], augment=config.data.augment, drop_last=True,
                     device=ctx.device, padding=config.data.crop_padding)
    if len(loader) == 0:
        raise ConfigError(f"the training set ({len(train_set)} images) is smaller than one batch "
                          f"(train.batch_size = {tc.batch_size}); lower train.batch_size")

    # Everything is checked: from here on the run folder is written.
    new_run = _NewRun.start(run_dir, config) if fresh and ctx.is_main else None
    try:
        return _run_epochs(config, run_dir, ctx, model, generators, model_gen, loader,
                           monitor, initial_dictionary, len(train_set), progress, test_images, check)
    except BaseException:
        if new_run is not None and not (run_dir / RECORD_FILE).is_file():
            log.debug("removing %s: the new run failed before its first epoch was saved", run_dir)
            new_run.undo()
        raise


def _optimizer(model: nn.Module, config: RunConfig, plan: StagePlan, stage: Stage) -> torch.optim.Optimizer:
    """SGD with the run's momentum and weight decay over what ``stage`` trains (the learning
    rate is set before every batch)."""
    tc = config.train
    return torch.optim.SGD(plan.parameters(model, stage), lr=0.0, momentum=tc.momentum,
                           weight_decay=tc.weight_decay)


def _wrap(module: nn.Module, ctx: D.DistContext) -> nn.Module:
    """``module`` itself, or a DistributedDataParallel wrapper of it with several processes."""
    if not ctx.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[ctx.device] if ctx.device.type == "cuda" else None)


def _run_epochs(config: RunConfig, run_dir: Path, ctx: D.DistContext, model: nn.Module,
                generators: dict[str, torch.Generator], model_gen: torch.Generator, loader: Any,
                monitor: tuple[torch.Tensor, torch.Tensor] | None, initial_dictionary: Any,
                train_images: int, progress: bool,
                test_images: torch.Tensor | None = None,
                check: RobustnessCheck | None = None) -> dict[str, Any]:
    """Resume from the checkpoint (if any), train the remaining epochs (until the end or an
    early stop), save the model."""
    tc = config.train
    plan = StagePlan.of(tc)
    # the checkpoint holds the optimiser of the stage of its last epoch
    stage = plan.checkpoint_stage(checkpoint_epoch(run_dir) or 0)
    optimizer = _optimizer(model, config, plan, stage)
    state = load_checkpoint(run_dir, model, optimizer)
    if state is None:
        state = TrainingState(0, {}, [], ctx.world_size)
    else:
        if state.world_size != ctx.world_size:
            raise CheckpointError(f"{run_dir} was trained by {state.world_size} process(es); "
                                  f"resume it with the same number, not {ctx.world_size}")
        restore_generators(generators, state.generators)
        restore_generators({f"model.rank{ctx.rank}": model_gen}, state.generators)
        if ctx.is_main:
            log.info("resuming %s after epoch %d of %d", run_dir, state.epoch, plan.total_epochs)
            _write_log(run_dir, state.history)

    net = model if stage is not Stage.AUTOENCODER else model.frontend
    net = _wrap(net, ctx)
    model.train()
    run = _Run(config, run_dir, ctx, model, net, optimizer, generators, model_gen, loader,
               monitor, state, plan, stage, check)
    stopped = stop_record(state.history)
    if stopped is not None and ctx.is_main:
        log.info("%s stopped early after epoch %d: %s", run_dir, stopped["epoch"], stopped[RECORD_KEY]["stop"])
    for epoch in range(state.epoch, plan.total_epochs if stopped is None else state.epoch):
        if plan.stage_of(epoch) is not run.stage:
            run.enter(plan.stage_of(epoch))  # stage 2 starts with a fresh optimiser
        record = run.epoch(epoch, progress)
        stop = run.robustness(record)
        if ctx.is_main:
            _log_epoch(record, plan)
        run.checkpoint(record)
        if stop is not None:
            if ctx.is_main:
                log.warning("stopping after epoch %d of %d: %s; the model is epoch %d's", record["epoch"],
                            plan.total_epochs, stop, record[RECORD_KEY]["best_epoch"])
            break
    return run.finish(initial_dictionary, train_images, test_images)


def _log_epoch(record: dict[str, Any], plan: StagePlan) -> None:
    if record.get("stage") == Stage.AUTOENCODER.value:
        mse = record["reconstruction_mse"]
        log.info("epoch %d/%d (autoencoder): train MSE %.5f, monitor MSE %s, PSNR %s, lr %.4g, %.0f s",
                 record["epoch"], plan.total_epochs, record["loss"],
                 "-" if mse is None else f"{mse:.5f}",
                 "-" if mse is None else f"{record['reconstruction_psnr']:.2f} dB", record["lr"],
                 record["seconds"])
        return
    log.info("epoch %d/%d%s: loss %.4f, train acc %.2f %%, monitor acc %s, lr %.4g, %.0f s",
             record["epoch"], plan.total_epochs, " (classifier)" if plan.two_stage else "",
             record["loss"], 100 * record["train_accuracy"],
             "-" if record["monitor_accuracy"] is None
             else f"{100 * record['monitor_accuracy']:.2f} %", record["lr"], record["seconds"])
    check = record.get(RECORD_KEY)
    if check is not None:
        log.info("  held-out check (%d images): clean %.1f %%, PGD-%d %.1f %%; best %.1f %% at epoch %d",
                 check["images"], 100 * check["clean_accuracy"], check["steps"],
                 100 * check["robust_accuracy"], 100 * check["best_robust_accuracy"], check["best_epoch"])
