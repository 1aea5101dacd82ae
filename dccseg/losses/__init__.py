"""Losses: the DCC/SimCLR/SupCon/AGCL contrastive loss, DCC pair weights, the CE pretraining
baseline and the segmentation Dice losses. See docs/losses.md."""

from .ce import ClassifierHead, ce_pretrain_loss
from .contrastive import FORMS, contrastive_loss
from .dice import binary_dice_loss, coarse_dice_ce_loss
from .partial import partial_label_loss
from .labels import agcl_labels, label_positives, simclr_positives
from .registry import (
    LOSS_NAMES,
    CEPretrainLoss,
    ContrastivePretrainLoss,
    PretrainLoss,
    PretrainTargets,
    build_pretrain_loss,
)
from .weights import dcc_weights, legacy_dcc_weights, mean_mask_intensity, weights_from_intensity

__all__ = [
    "FORMS",
    "LOSS_NAMES",
    "CEPretrainLoss",
    "ClassifierHead",
    "ContrastivePretrainLoss",
    "PretrainLoss",
    "PretrainTargets",
    "agcl_labels",
    "binary_dice_loss",
    "build_pretrain_loss",
    "ce_pretrain_loss",
    "coarse_dice_ce_loss",
    "contrastive_loss",
    "dcc_weights",
    "label_positives",
    "legacy_dcc_weights",
    "mean_mask_intensity",
    "partial_label_loss",
    "simclr_positives",
    "weights_from_intensity",
]
