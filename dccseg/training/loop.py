"""The epoch loop shared by every training stage: train, validate, log, checkpoint, stop, resume.

At the end of every epoch (in this order): validation on rank 0 (every ``validate_every`` epochs
and at the last one), ``best.pt`` when the validation Dice improved, ``last.pt`` (model, optimizer,
scheduler, grad scaler, RNG, epoch, best, the epoch's metrics record), one line of
``metrics.jsonl``, then ``status.json``. A stop request (SIGTERM/SIGINT) is honoured between
batches: the unfinished epoch is dropped, so a stop or a kill loses at most the current epoch.
Data randomness is drawn from generators seeded by (seed, epoch, item), so a resumed run sees
the same batches as an uninterrupted one would have.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sized

import torch
from torch import nn

from dccseg.progress import Progress
from dccseg.training import distributed as dist_utils
from dccseg.training.distributed import DeviceContext
from dccseg.training.runstate import RunState, StopFlag

LossFn = Callable[[nn.Module, Any], torch.Tensor]
ValidateFn = Callable[[nn.Module], dict[str, float]]


class StageStopped(Exception):
    """A stage ended early on a stop request; commands of several stages end there, as ``stopped``."""


@dataclass
class StageResult:
    state: str  # "finished" or "stopped"
    epoch: int
    best_epoch: int | None = None
    best_value: float | None = None


@dataclass
class Stage:
    """What one training stage needs; ``model`` is already wrapped for the device (see ``distributed.wrap``)."""

    name: str
    epochs: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    batches: Callable[[int], Sized]  # the epoch's batches (a DataLoader or a list)
    loss_fn: LossFn
    validate: ValidateFn | None = None
    validate_every: int = 1
    grad_clip: float | None = None
    patience: int | None = None  # early stop after this many validations without a better Dice
    extra: dict[str, Any] = field(default_factory=dict)
    epoch_stats: Callable[[int], dict[str, Any]] | None = None  # extra fields of the epoch's metrics record


def mean_dice(values: dict[str, float]) -> float | None:
    finite = [v for v in values.values() if v is not None and math.isfinite(v)]
    return float(sum(finite) / len(finite)) if finite else None


def _rng_state(ctx: DeviceContext) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if ctx.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(ctx.device)
    return state


def _restore_rng(state: dict[str, Any], ctx: DeviceContext) -> None:
    torch.set_rng_state(state["torch"])
    if ctx.device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], ctx.device)


def run_stage(stage: Stage, ctx: DeviceContext, state: RunState, stop: StopFlag, progress: Progress, resume: bool) -> StageResult:
    """Train ``stage`` from its last checkpoint (when ``resume``) to its last epoch, or until stopped."""
    scaler = ctx.grad_scaler()
    inner = dist_utils.unwrap(stage.model)
    start_epoch, best_epoch, best_value, stale = 0, None, None, 0
    checkpoint = state.load_checkpoint(stage.name) if resume else None
    if checkpoint is not None:
        inner.load_state_dict(checkpoint["model"])
        stage.optimizer.load_state_dict(checkpoint["optimizer"])
        stage.scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        _restore_rng(checkpoint["rng"], ctx)
        start_epoch = int(checkpoint["epoch"])
        best_epoch, best_value = checkpoint.get("best_epoch"), checkpoint.get("best_value")
        state.reconcile_metrics(stage.name, start_epoch, checkpoint.get("record"))
        if best_value is not None:
            state.update_best(stage.name, best_epoch, best_value)
        progress.log(f"{stage.name}: resuming after epoch {start_epoch}/{stage.epochs}")
    state.progress(stage.name, start_epoch, stage.epochs, f"{stage.name} epoch {start_epoch}/{stage.epochs}", force=True)

    for epoch in range(start_epoch + 1, stage.epochs + 1):
        started = time.perf_counter()
        train_loss = _train_epoch(stage, epoch, ctx, state, stop, progress, scaler)
        if train_loss is None:
            return StageResult("stopped", epoch - 1, best_epoch, best_value)
        record: dict[str, Any] = {
            "stage": stage.name, "epoch": epoch, "train_loss": train_loss, "val_dice_mean": None, "val_dice": {},
            "lr": float(stage.optimizer.param_groups[0]["lr"]),
        }
        if stage.epoch_stats is not None:
            record.update(stage.epoch_stats(epoch))
        stage.scheduler.step()
        if stage.validate is not None and (epoch % stage.validate_every == 0 or epoch == stage.epochs):
            if ctx.is_writer:
                with dist_utils.evaluation(stage.model) as model:
                    dice = stage.validate(model)
                record["val_dice"] = {k: round(float(v), 5) for k, v in dice.items()}
                record["val_dice_mean"] = mean_dice(dice)
            dist_utils.barrier(ctx)
        record["seconds"] = round(time.perf_counter() - started, 3)
        if state.update_best(stage.name, epoch, record["val_dice_mean"]):
            best_epoch, best_value, stale = epoch, record["val_dice_mean"], 0
            state.save_checkpoint(stage.name, "best.pt", {"model": inner.state_dict(), "epoch": epoch, "value": best_value})
        elif record["val_dice_mean"] is not None:
            stale += 1
        state.save_checkpoint(stage.name, "last.pt", {
            "model": inner.state_dict(), "optimizer": stage.optimizer.state_dict(), "scheduler": stage.scheduler.state_dict(),
            "scaler": scaler.state_dict(), "rng": _rng_state(ctx), "epoch": epoch, "best_epoch": best_epoch,
            "best_value": best_value, "record": record, **stage.extra,
        })
        state.append_metrics(record)
        dice_text = "" if record["val_dice_mean"] is None else f", val Dice {record['val_dice_mean']:.3f}"
        message = f"{stage.name} epoch {epoch}/{stage.epochs}: loss {train_loss:.4f}{dice_text}"
        fraction = state.progress(stage.name, epoch, stage.epochs, message, force=True)
        progress.update(stage.name, fraction, message)
        if dist_utils.any_rank(stop.requested, ctx):
            return StageResult("stopped" if epoch < stage.epochs else "finished", epoch, best_epoch, best_value)
        if stage.patience and stale >= stage.patience and epoch < stage.epochs:
            progress.log(f"{stage.name}: no better validation Dice in {stale} validations; stopping early after epoch {epoch} (best: epoch {best_epoch})")
            state.progress(stage.name, stage.epochs, stage.epochs, f"{stage.name} stopped early after epoch {epoch}", force=True)
            break
    dist_utils.barrier(ctx)  # rank 0 has written best.pt before any rank reads it
    return StageResult("finished", stage.epochs, best_epoch, best_value)


def _train_epoch(stage: Stage, epoch: int, ctx: DeviceContext, state: RunState, stop: StopFlag, progress: Progress, scaler: torch.amp.GradScaler) -> float | None:
    """One pass over the epoch's batches; the mean loss, or None when a stop was requested."""
    stage.model.train()
    batches = stage.batches(epoch)
    count = max(len(batches), 1)
    total, used = 0.0, 0
    for index, batch in enumerate(batches):
        if dist_utils.any_rank(stop.requested, ctx):
            return None
        stage.optimizer.zero_grad(set_to_none=True)
        with ctx.autocast():
            loss = stage.loss_fn(stage.model, batch)
        if not torch.isfinite(loss):
            progress.log(f"{stage.name} epoch {epoch}: non-finite loss in batch {index + 1}, batch skipped")
            continue
        scaler.scale(loss).backward()
        if stage.grad_clip:
            scaler.unscale_(stage.optimizer)
            nn.utils.clip_grad_norm_(stage.model.parameters(), stage.grad_clip)
        scaler.step(stage.optimizer)
        scaler.update()
        total += float(loss.detach())
        used += 1
        within = epoch - 1 + (index + 1) / count
        message = f"{stage.name} epoch {epoch}/{stage.epochs}, batch {index + 1}/{count}"
        fraction = state.progress(stage.name, within, stage.epochs, message)
        progress.update(stage.name, fraction, message)
    if dist_utils.any_rank(stop.requested, ctx):
        return None
    return dist_utils.mean_over_ranks(total / max(used, 1), ctx)
