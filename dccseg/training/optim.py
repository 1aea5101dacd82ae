"""Optimiser and per-epoch learning-rate schedule from an ``OptimizerConfig``."""

from __future__ import annotations

import math
from typing import Iterable

import torch

from dccseg.training.configs import OptimizerConfig


def build_optimizer(parameters: Iterable[torch.nn.Parameter], config: OptimizerConfig) -> torch.optim.Optimizer:
    params = [p for p in parameters if p.requires_grad]
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


class EpochSchedule:
    """Multiplier of the base lr after ``epoch`` completed epochs (a picklable LambdaLR function)."""

    def __init__(self, kind: str, epochs: int) -> None:
        self.kind = kind
        self.epochs = max(epochs, 1)

    def __call__(self, epoch: int) -> float:
        progress = min(epoch / self.epochs, 1.0)
        if self.kind == "poly":
            return max((1.0 - progress) ** 0.9, 0.01)
        if self.kind == "cosine":
            return max(0.5 * (1.0 + math.cos(math.pi * progress)), 0.01)
        return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimizerConfig, epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, EpochSchedule(config.schedule, epochs))
