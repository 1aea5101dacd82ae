"""The release trainer's two stages: case pools on the device and a loop that stops on the clock.

Workers deliver whole cases; each pool keeps the latest ``capacity`` of them on the training device and cuts
batches out there: 3D crops (centred on a random organ's voxel with probability ``foreground``) for the coarse
network, 2D organ patches (``refine_data.gather_patches``) for the refine network. ``run_timed`` trains until
its time is up, with the learning-rate schedule of the stage's optimiser preset run over the time (not
epochs), validates a few times on fixed validation cases, and returns the best weights it saw.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from dccseg.progress import Progress
from dccseg.training.coarse import coarse_argmax
from dccseg.training.configs import OptimizerConfig
from dccseg.training.distributed import DeviceContext
from dccseg.training.loop import mean_dice
from dccseg.training.metrics import DiceAccumulator
from dccseg.training.optim import EpochSchedule, build_optimizer
from dccseg.training.refine_data import RefineCase, gather_patches
from dccseg.training.release_data import ReleaseCase

SCHEDULE_STEPS = 1000
PROGRESS_EVERY_S = 2.0


class CoarsePool:
    """The latest coarse cases on the device, as (image, labels, organ points)."""

    def __init__(self, capacity: int, device: torch.device) -> None:
        self.capacity, self.device = capacity, device
        self.cases: list[tuple[torch.Tensor, torch.Tensor, np.ndarray]] = []
        self.added = 0

    def __len__(self) -> int:
        return len(self.cases)

    def add(self, case: ReleaseCase) -> None:
        entry = (torch.from_numpy(case.image).to(self.device, torch.float32), torch.from_numpy(case.labels).to(self.device), case.points)
        if len(self.cases) < self.capacity:
            self.cases.append(entry)
        else:
            self.cases[self.added % self.capacity] = entry
        self.added += 1

    def batch(self, size: int, crop: tuple[int, int, int], foreground: float, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, D, H, W) float images and long labels, one random crop of a random pooled case each."""
        images, labels = [], []
        for slot in rng.integers(len(self.cases), size=size):
            image, label, points = self.cases[int(slot)]
            a, b = crop_volume(image, label, points, crop, foreground, rng)
            images.append(a)
            labels.append(b)
        return torch.stack(images)[:, None], torch.stack(labels)[:, None].long()


def crop_volume(image: torch.Tensor, labels: torch.Tensor, points: np.ndarray, crop: tuple[int, int, int], foreground: float,
                rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One crop as ``coarse_data.random_crop`` cuts it (air and background beyond the volume), on the device."""
    shape = tuple(max(s, c) for s, c in zip(image.shape, crop))
    if shape != tuple(image.shape):
        image, labels = _padded(image, shape, -1.0), _padded(labels, shape, 0)
    if len(points) and rng.random() < foreground:
        organ = rng.choice(np.unique(points[:, 0]))
        rows = points[points[:, 0] == organ]
        centre = rows[rng.integers(len(rows)), 1:]
    else:
        centre = [rng.integers(s) for s in shape]
    start = [int(np.clip(c - k // 2, 0, s - k)) for c, k, s in zip(centre, crop, shape)]
    box = tuple(slice(a, a + k) for a, k in zip(start, crop))
    return image[box], labels[box]


def _padded(tensor: torch.Tensor, shape: tuple[int, ...], value: float) -> torch.Tensor:
    out = tensor.new_full(shape, value)
    out[tuple(slice(0, s) for s in tensor.shape)] = tensor
    return out


class RefinePool:
    """The latest refine cases on the device (``RefineCase``) and their patch centres."""

    def __init__(self, capacity: int, device: torch.device) -> None:
        self.capacity, self.device = capacity, device
        self.cases: list[RefineCase] = []
        self.centres: list[np.ndarray] = []
        self.added = 0

    def __len__(self) -> int:
        return len(self.cases)

    def add(self, case: ReleaseCase) -> None:
        if case.prior is None or not len(case.points):  # no organ in view: no patch to train on
            return
        organs = [int(v) for v in np.unique(case.points[:, 0])]
        entry = RefineCase(case.id, [torch.from_numpy(case.image).to(self.device, torch.float32)], torch.from_numpy(case.labels).to(self.device),
                           torch.from_numpy(case.prior).to(self.device), organs)
        if len(self.cases) < self.capacity:
            self.cases.append(entry)
            self.centres.append(case.points)
        else:
            self.cases[self.added % self.capacity] = entry
            self.centres[self.added % self.capacity] = case.points
        self.added += 1

    def rows(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """(size, 6) patch rows (case, variant 0, organ, z, y, x): a random pooled case, then a random centre of it."""
        slots = rng.integers(len(self.cases), size=size)
        picked = [self.centres[s][rng.integers(len(self.centres[s]))] for s in slots]
        return np.column_stack([slots, np.zeros(size, np.int64), np.asarray(picked, np.int64).reshape(size, 4)])

    def all_rows(self) -> np.ndarray:
        """Every centre of every pooled case (validation)."""
        return np.concatenate([np.column_stack([np.full(len(c), i), np.zeros(len(c), np.int64), c]) for i, c in enumerate(self.centres)])


def coarse_validation(cases: list[ReleaseCase], divisor: int, ctx: DeviceContext) -> Callable[[nn.Module], dict[str, float]]:
    """Per-organ Dice of whole validation volumes segmented as inference segments them."""
    def validate(net: nn.Module) -> dict[str, float]:
        dice = DiceAccumulator()
        with ctx.autocast():
            for case in cases:
                dice.add_labelmaps(coarse_argmax(net, case.image, divisor, ctx.device), case.labels)
        return dice.result()
    return validate


def refine_validation(pool: RefinePool, patch_size: int, in_channels: int, batch_size: int,
                      ctx: DeviceContext) -> Callable[[nn.Module], dict[str, float]]:
    """Per-organ patch Dice (overlaps pooled per organ) over every centre of the validation cases."""
    rows = pool.all_rows() if len(pool) else np.zeros((0, 6), np.int64)

    def validate(net: nn.Module) -> dict[str, float]:
        dice = DiceAccumulator()
        for first in range(0, len(rows), batch_size):
            inputs, targets, organs = gather_patches(pool.cases, rows[first : first + batch_size], patch_size, in_channels, ctx.device)
            with torch.no_grad(), ctx.autocast():
                dice.add_patches(net(inputs).argmax(1), targets, organs)
        return dice.result()
    return validate


@dataclass
class TimedResult:
    state: dict[str, torch.Tensor]
    best: dict[str, Any] | None
    steps: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def run_timed(name: str, net: nn.Module, settings: OptimizerConfig, seconds: float, loss_fn: Callable[[nn.Module], torch.Tensor],
              validate: Callable[[nn.Module], dict[str, float]], validations: int, ctx: DeviceContext, progress: Progress,
              feed: Callable[[], None]) -> TimedResult:
    """Train ``net`` for ``seconds`` of wall time (final validation included); the weights of the best validation win."""
    seconds = max(seconds, 1.0)
    optimizer = build_optimizer(net.parameters(), settings)
    schedule = EpochSchedule(settings.schedule, SCHEDULE_STEPS)
    scaler = ctx.grad_scaler()
    start = time.monotonic()
    end = start + seconds
    result = TimedResult(state={}, best=None)
    validation_cost, next_validation, last_report = 0.0, start + seconds / max(validations, 1), 0.0
    losses: list[float] = []

    def check() -> None:
        began = time.monotonic()
        net.eval()
        dice = validate(net)
        net.train()
        nonlocal validation_cost
        validation_cost = time.monotonic() - began
        value = mean_dice(dice)
        record = {"step": result.steps, "seconds": round(began - start, 1), "train_loss": float(np.mean(losses)) if losses else None,
                  "val_dice_mean": value, "val_dice": {k: round(v, 4) for k, v in dice.items()}}
        result.history.append(record)
        losses.clear()
        if result.best is None or (value is not None and value > (result.best["value"] or -1.0)):
            result.best = {"metric": "val_dice_mean", "value": value, "step": result.steps}
            result.state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
        progress.log(f"{name}: step {result.steps}, {began - start:.0f} s, val Dice {value if value is None else round(value, 3)}")

    net.train()
    while time.monotonic() + validation_cost < end or result.steps == 0:
        now = time.monotonic()
        fraction = min((now - start) / seconds, 1.0)
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * schedule(int(fraction * SCHEDULE_STEPS))
        feed()
        optimizer.zero_grad(set_to_none=True)
        with ctx.autocast():
            loss = loss_fn(net)
        if torch.isfinite(loss):
            scaler.scale(loss).backward()
            if settings.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(net.parameters(), settings.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            losses.append(float(loss.detach()))
        result.steps += 1
        if now - last_report >= PROGRESS_EVERY_S:
            last_report = now
            progress.update(name, fraction, f"{name}: step {result.steps}, loss {losses[-1] if losses else math.nan:.3f}")
        if now >= next_validation and now + validation_cost < end:
            check()
            next_validation += seconds / max(validations, 1)
    check()
    result.seconds = time.monotonic() - start
    progress.update(name, 1.0, f"{name}: {result.steps} steps in {result.seconds:.0f} s, best val Dice {result.best and result.best['value']}")
    return result
