"""Coarse stage: train the 3D network on whole-volume crops at the coarse spacing (Dice + CE).

Every batch is warped on the device (random rotation, scaling, elastic) and gets a small random
contrast change; phase augmentation already happened per sample in HU. Validation segments each
validation case whole, as inference does, and scores Dice per organ on the coarse grid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from torch import nn

from dccseg.errors import DccsegError
from dccseg.losses import coarse_dice_ce_loss, partial_label_loss
from dccseg.inference.settings import MAX_COARSE_ROI
from dccseg.networks import CoarseConfig, build_coarse_net, pad_to_multiple
from dccseg.preprocess import IntensityConfig, normalize_ct
from dccseg.training import distributed
from dccseg.training.augment import random_intensity, random_warp
from dccseg.training.cases import CaseVolumes
from dccseg.training.coarse_data import CoarseSamples
from dccseg.training.configs import CoarseTraining
from dccseg.training.loop import Stage, StageResult, run_stage
from dccseg.training.metrics import DiceAccumulator
from dccseg.training.optim import build_optimizer, build_scheduler

if TYPE_CHECKING:  # a session reads datasets (SimpleITK); the release trainer uses these modules without one
    from dccseg.training.session import Session


def predict_coarse(net: nn.Module, ct_hu: np.ndarray, intensity: IntensityConfig, divisor: int, device: torch.device) -> np.ndarray:
    """Organ labels (uint8) of a coarse-grid CT in HU, run as ``dccseg segment`` runs it.

    The whole volume, padded to the network's size divisor, in one pass; MONAI's sliding window
    over ``MAX_COARSE_ROI`` crops where a side is larger.
    """
    return coarse_argmax(net, normalize_ct(ct_hu, intensity), divisor, device)


def coarse_argmax(net: nn.Module, image: np.ndarray, divisor: int, device: torch.device) -> np.ndarray:
    """``predict_coarse`` of an image already normalised as inference normalises it."""
    image = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    padded = pad_to_multiple(image, divisor, value=-1.0).to(device)
    roi = tuple(min(MAX_COARSE_ROI, s) for s in padded.shape[-3:])
    with torch.no_grad():
        if roi == tuple(padded.shape[-3:]):
            logits = net(padded)
        else:
            logits = sliding_window_inference(padded, roi, 1, net, overlap=0.25, mode="gaussian")
    d, h, w = image.shape[-3:]
    return logits[0, :, :d, :h, :w].argmax(0).to(torch.uint8).cpu().numpy()


def _batches(samples: CoarseSamples, session: Session, batch_size: int):
    generator = torch.Generator()

    def make(epoch: int):
        samples.set_epoch(epoch)
        if session.ctx.distributed:
            sampler = torch.utils.data.DistributedSampler(samples, shuffle=True, seed=session.config.seed)
            sampler.set_epoch(epoch)
        else:
            generator.manual_seed(session.config.seed * 1000 + epoch)
            sampler = torch.utils.data.RandomSampler(samples, generator=generator)
        return torch.utils.data.DataLoader(samples, batch_size=batch_size, sampler=sampler, num_workers=session.config.num_workers)

    return make


def fit_coarse(session: Session, stage: str, train: list[CaseVolumes], val: list[CaseVolumes], settings: CoarseTraining, epochs: int,
               initial_state: dict[str, torch.Tensor] | None = None) -> tuple[StageResult, nn.Module]:
    """Train (or resume) one coarse model, from ``initial_state`` when given; returns its result and the network holding the best weights."""
    config = session.config
    settings.check_crop()
    torch.manual_seed(config.seed)
    start = build_coarse_net(settings.network)
    if initial_state is not None:
        load_start(start, initial_state, settings.network)
    model = distributed.wrap(start, session.ctx)
    net = distributed.unwrap(model)
    optimizer = build_optimizer(model.parameters(), settings.optimizer)
    loss = coarse_dice_ce_loss()
    device = session.ctx.device

    def loss_fn(module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(batch["seed"][0]))
        image, labels = batch["image"].to(device), batch["labels"].to(device)
        image, labels = random_warp(image, labels, generator, settings.rotate_degrees, settings.scale_range, settings.elastic)
        image = random_intensity(image, generator)
        logits = module(image)
        known = batch["known"].to(device)
        return loss(logits, labels) if bool(known.all()) else partial_label_loss(logits, labels, known)

    def validate(module: nn.Module) -> dict[str, float]:
        dice = DiceAccumulator()
        for case in val:
            prediction = predict_coarse(module, case.ct.array, config.preprocessing.intensity, settings.network.size_divisor, device)
            prediction[np.isin(prediction, case.unlabelled)] = 0  # organs the dataset does not label are not scored
            dice.add_labelmaps(prediction, case.labels.array)
        return dice.result()

    spec = Stage(
        name=stage, epochs=epochs, model=model, optimizer=optimizer, scheduler=build_scheduler(optimizer, settings.optimizer, epochs),
        batches=_batches(CoarseSamples(train, config), session, settings.batch_size), loss_fn=loss_fn,
        validate=validate if val else None, validate_every=settings.validate_every, grad_clip=settings.optimizer.grad_clip, patience=settings.patience,
    )
    result = run_stage(spec, session.ctx, session.state, session.stop, session.progress, session.resume)
    best = session.state.load_checkpoint(stage, "best.pt") if result.state == "finished" else None
    if best is not None:
        net.load_state_dict(best["model"])
    return result, net.eval()


def load_start(net: nn.Module, state: dict[str, torch.Tensor], config: CoarseConfig) -> None:
    """``net`` holding a starting model's coarse weights; a clear error when that network has another shape than ``config``'s."""
    try:
        net.load_state_dict(state)
    except RuntimeError:
        raise DccsegError(f"the starting model's coarse network has other widths or levels than this run's ({config.architecture}, channels {', '.join(map(str, config.channels))}); "
                          "a network of another shape trains from scratch: leave out the starting model, or keep its network") from None


def coarse_network(config: CoarseConfig, state_dict: dict[str, torch.Tensor], device: torch.device) -> nn.Module:
    net = build_coarse_net(config)
    net.load_state_dict(state_dict)
    return net.to(device).eval()
