"""Segmentation losses: the refine network's binary soft Dice (method.md §1.7) and the coarse
3D network's multi-class Dice + cross-entropy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from monai.losses import DiceCELoss

REDUCTIONS = ("batch", "sample")


def binary_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-7, reduction: str = "batch"
) -> torch.Tensor:
    """Negative soft Dice of the foreground: -(2 sum pg + eps) / (sum p^2 + sum g^2 + eps).

    Args:
        logits: (B, 2, *spatial) background/foreground logits; p = softmax(logits)[:, 1].
        target: (B, *spatial) or (B, 1, *spatial) binary {0, 1} foreground.
        eps: smoothing; an empty prediction of an empty target scores Dice 1.
        reduction: "batch" sums over the batch and the pixels before the ratio (the V-Net form the
            authors train with); "sample" takes one Dice per sample and averages them.

    Returns:
        A scalar in [-1, 0]: -1 for a perfect prediction, about 0 for a fully wrong one.
    """
    if logits.dim() < 3 or logits.shape[1] != 2:
        raise ValueError(f"logits must be (B, 2, *spatial) background/foreground logits, got {tuple(logits.shape)}")
    if target.dim() == logits.dim():
        if target.shape[1] != 1:
            raise ValueError(f"target must have one channel, got {tuple(target.shape)}")
        target = target[:, 0]
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"target {tuple(target.shape)} does not match logits {tuple(logits.shape)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    with torch.autocast(device_type=logits.device.type, enabled=False):
        p = torch.softmax(logits.float(), dim=1)[:, 1].flatten(1)
        g = target.float().flatten(1)
        dims = (0, 1) if reduction == "batch" else (1,)
        intersection = (p * g).sum(dim=dims)
        energy = (p * p).sum(dim=dims) + (g * g).sum(dim=dims)
        dice = (2.0 * intersection + eps) / (energy + eps)
        return -dice.mean()


def coarse_dice_ce_loss(lambda_dice: float = 1.0, lambda_ce: float = 1.0) -> DiceCELoss:
    """Dice + cross-entropy for the multi-class coarse network: logits (B, C, *spatial) against an
    integer label map (B, 1, *spatial); softmax, one-hot target, Dice over foreground classes only.
    MONAI is imported here, not at module import (it takes seconds)."""
    from monai.losses import DiceCELoss

    return DiceCELoss(
        include_background=False,
        to_onehot_y=True,
        softmax=True,
        lambda_dice=lambda_dice,
        lambda_ce=lambda_ce,
    )
