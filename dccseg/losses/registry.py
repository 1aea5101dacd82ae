"""Pretraining losses by name (dcc, simclr, supcon, agcl, ce) behind one call signature.

Every loss is an ``nn.Module`` called as ``loss(outputs, targets) -> (value, stats)``:
``outputs`` are the (2n, D) L2-normalised projections for the contrastive losses and the (2n, F)
pooled encoder features (or feature maps) for ``ce`` (see ``PretrainLoss.input``); ``stats`` holds
detached scalar tensors worth logging. The ``ce`` loss owns a classifier head, so give
``loss.parameters()`` to the optimiser too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..organs import NUM_ORGANS, PHASES
from .ce import ClassifierHead, ce_pretrain_loss
from .contrastive import contrastive_loss
from .labels import agcl_labels, label_positives, simclr_positives
from .weights import legacy_dcc_weights, mean_mask_intensity, weights_from_intensity

LOSS_NAMES = ("dcc", "simclr", "supcon", "agcl", "ce")
PRESETS = ("paper", "code")


@dataclass
class PretrainTargets:
    """What a pretraining batch knows besides the network output.

    organ, phase: (n,) 0-based organ and phase indices per patch.
    image, mask: (2n, C, H, W) or (2n, H, W) views (image in [-1, 1], binary mask), needed by dcc.
    """

    organ: torch.Tensor
    phase: torch.Tensor
    image: torch.Tensor | None = None
    mask: torch.Tensor | None = None


class PretrainLoss(nn.Module):
    """Base class: ``input`` says which network output the loss takes."""

    name: str = ""
    input: str = "projection"

    def forward(self, outputs: torch.Tensor, targets: PretrainTargets) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError


class ContrastivePretrainLoss(PretrainLoss):
    """SimCLR, SupCon, AGCL or DCC-CL: the shared ``contrastive_loss`` with its positives and weights."""

    def __init__(
        self,
        name: str,
        temperature: float,
        base_temperature: float | None,
        form: str,
        legacy_weights: bool,
        num_organs: int,
        min_mask_px: int,
        v_scale: float,
    ) -> None:
        super().__init__()
        self.name = name
        self.temperature = temperature
        self.base_temperature = base_temperature
        self.form = form
        self.legacy_weights = legacy_weights
        self.num_organs = num_organs
        self.min_mask_px = min_mask_px
        self.v_scale = v_scale

    def forward(self, outputs: torch.Tensor, targets: PretrainTargets) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        positives = self._positives(outputs.shape[0] // 2, targets, outputs.device)
        stats: dict[str, torch.Tensor] = {}
        weights = None
        if self.name == "dcc":
            if targets.image is None or targets.mask is None:
                raise ValueError("the dcc loss needs the views' image and mask in PretrainTargets")
            d, valid = mean_mask_intensity(targets.image, targets.mask, self.min_mask_px)
            if self.legacy_weights:
                weights = legacy_dcc_weights(targets.image, targets.mask, self.v_scale)
            else:
                weights = weights_from_intensity(d, valid, self.v_scale)
            stats["empty_view_rate"] = 1.0 - valid.float().mean()
            stats["weight_min"] = weights.min()
        value = contrastive_loss(
            outputs,
            positives,
            weights,
            self.temperature,
            self.base_temperature,
            self.form,
            allow_negative_weights=self.legacy_weights,
        )
        return value, stats

    def _positives(self, n: int, targets: PretrainTargets, device: torch.device) -> torch.Tensor:
        if self.name in ("dcc", "simclr"):
            return simclr_positives(n, device)
        if self.name == "supcon":
            return label_positives(targets.organ.to(device))
        return label_positives(agcl_labels(targets.organ, targets.phase, self.num_organs).to(device))


class CEPretrainLoss(PretrainLoss):
    """Softmax cross-entropy over the organ x phase classes from a linear head on pooled features."""

    name = "ce"
    input = "features"

    def __init__(self, num_organs: int, num_phases: int, feature_dim: int) -> None:
        super().__init__()
        self.num_organs = num_organs
        self.head = ClassifierHead(num_organs * num_phases, feature_dim)

    def forward(self, outputs: torch.Tensor, targets: PretrainTargets) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        labels = agcl_labels(targets.organ, targets.phase, self.num_organs).to(outputs.device)
        if outputs.shape[0] != labels.shape[0]:
            if outputs.shape[0] % labels.shape[0]:
                raise ValueError(f"{outputs.shape[0]} feature rows do not tile {labels.shape[0]} patch labels")
            labels = labels.repeat(outputs.shape[0] // labels.shape[0])
        logits = self.head(outputs)
        accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
        return ce_pretrain_loss(logits, labels), {"accuracy": accuracy}


def build_pretrain_loss(
    name: str,
    *,
    preset: str = "paper",
    temperature: float = 0.07,
    base_temperature: float | None = None,
    num_organs: int = NUM_ORGANS,
    num_phases: int = len(PHASES),
    min_mask_px: int = 16,
    v_scale: float = 1.0,
    feature_dim: int = 2048,
) -> PretrainLoss:
    """The pretraining loss called ``name`` (one of LOSS_NAMES).

    ``preset="code"`` switches dcc to the released code's loss form with its legacy, unclamped
    weights (negative weights then allowed); ``"paper"`` (default) is Eq. 4 with clamped weights.
    For simclr/supcon/agcl (all weights 1) the two forms give the same loss.
    """
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown pretraining loss {name!r}; use one of {', '.join(LOSS_NAMES)}")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    if name == "ce":
        return CEPretrainLoss(num_organs, num_phases, feature_dim)
    code = preset == "code" and name == "dcc"
    return ContrastivePretrainLoss(
        name,
        temperature,
        base_temperature,
        "code" if code else "paper",
        code,
        num_organs,
        min_mask_px,
        v_scale,
    )
