"""Refine stage: train the 2D network on organ patches with the binary Dice loss (method.md §1.7).

One network serves every organ; the organ comes in through the attention channel (its coarse
mask). Training patches come from the out-of-fold (or degraded) priors of the training cases,
validation patches from test-quality priors of the validation cases; the validation Dice of an
organ pools the overlaps of all its patches. ``encoder_state`` (a pretrained encoder, issue 4)
initialises ``net.encoder`` before fine-tuning end to end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import numpy as np
import torch
from torch import nn

from dccseg.losses import binary_dice_loss
from dccseg.networks import build_refine_net, load_encoder_state, load_refine_state
from dccseg.training import distributed
from dccseg.training.loop import Stage, StageResult, run_stage
from dccseg.training.metrics import DiceAccumulator
from dccseg.training.optim import build_optimizer, build_scheduler
from dccseg.training.refine_data import RefineCase, gather_patches, patch_rows

if TYPE_CHECKING:  # a session reads datasets (SimpleITK); the release trainer uses these modules without one
    from dccseg.training.session import Session

STAGE = "refine"
VALIDATION_SEED = 12345


def fit_refine(session: Session, train: list[RefineCase], val: list[RefineCase], encoder_state: Mapping[str, torch.Tensor] | None = None,
               initial_state: Mapping[str, torch.Tensor] | None = None) -> tuple[StageResult, nn.Module]:
    """Train (or resume) the refine network, from ``initial_state`` (a whole model's) when given; returns its result and the network with the best weights."""
    config, settings = session.config, session.config.refine
    ctx, device = session.ctx, session.ctx.device
    size, in_channels = settings.network.patch_size, settings.network.in_channels
    torch.manual_seed(config.seed)
    net = build_refine_net(settings.network)
    if encoder_state is not None:
        load_encoder_state(net, encoder_state)
    if initial_state is not None:
        load_refine_state(net, initial_state)
    model = distributed.wrap(net, ctx)
    net = distributed.unwrap(model)
    optimizer = build_optimizer(model.parameters(), settings.optimizer)

    def batches(epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([config.seed, epoch, 2])
        rows = patch_rows(train, settings.patches_per_organ, config.phase.probability, rng)
        rows = rows[rng.permutation(len(rows))]
        rows = rows[: len(rows) - len(rows) % ctx.world_size][ctx.rank :: ctx.world_size]  # equal shares: DDP needs equal step counts
        return [rows[i : i + settings.batch_size] for i in range(0, len(rows), settings.batch_size)]

    def loss_fn(module: nn.Module, rows: np.ndarray) -> torch.Tensor:
        inputs, targets, _ = gather_patches(train, rows, size, in_channels, device)
        return binary_dice_loss(module(inputs), targets)

    val_rows = patch_rows(val, settings.val_patches_per_organ, 0.0, np.random.default_rng(VALIDATION_SEED))

    def validate(module: nn.Module) -> dict[str, float]:
        dice = DiceAccumulator()
        for first in range(0, len(val_rows), settings.batch_size * 4):
            inputs, targets, organs = gather_patches(val, val_rows[first : first + settings.batch_size * 4], size, in_channels, device)
            with ctx.autocast():
                prediction = module(inputs).argmax(1)
            dice.add_patches(prediction, targets, organs)
        return dice.result()

    spec = Stage(
        name=STAGE, epochs=settings.epochs, model=model, optimizer=optimizer,
        scheduler=build_scheduler(optimizer, settings.optimizer, settings.epochs), batches=batches, loss_fn=loss_fn,
        validate=validate if len(val_rows) else None, validate_every=settings.validate_every, grad_clip=settings.optimizer.grad_clip, patience=settings.patience,
    )
    result = run_stage(spec, ctx, session.state, session.stop, session.progress, session.resume)
    best = session.state.load_checkpoint(STAGE, "best.pt") if result.state == "finished" else None
    if best is not None:
        net.load_state_dict(best["model"])
    return result, net.eval()
