"""The coarse loss when some organs are not annotated: unannotated organs count as unknown, not as background.

A dataset that labels only some organs (say liver and spleen) must not teach the network that kidneys are
background. The marginal loss (Shi et al., "Marginal loss and exclusion loss for partially supervised
multi-organ segmentation", 2021) merges the probabilities of the unannotated organs into the background's:
cross-entropy uses ``log(p_background + sum p_unannotated)`` where the label says background, and the soft
Dice runs over annotated organs only. With every organ annotated it equals ``coarse_dice_ce_loss``.
"""

from __future__ import annotations

import torch

SMOOTH = 1e-5


def partial_label_loss(logits: torch.Tensor, labels: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Dice + CE of logits (B, C, *spatial) against labels (B, 1, *spatial); ``known`` (B, C) bool says which classes each sample annotates."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        log_p = torch.log_softmax(logits.float(), dim=1)
        known = known.to(logits.device, torch.bool).clone()
        known[:, 0] = False
        merged = ~known  # the background and the unannotated organs
        background = torch.logsumexp(log_p.masked_fill(~merged[(...,) + (None,) * (logits.dim() - 2)], float("-inf")), dim=1)
        target = labels[:, 0].long()
        picked = log_p.gather(1, target[:, None])[:, 0]
        cross_entropy = -torch.where(target == 0, background, picked).mean()

        p = log_p.exp().flatten(2)
        onehot = torch.nn.functional.one_hot(target.flatten(1), logits.shape[1]).transpose(1, 2).float()
        intersection = (p * onehot).sum(-1)
        dice = 1.0 - (2.0 * intersection + SMOOTH) / (p.sum(-1) + onehot.sum(-1) + SMOOTH)
        dice_loss = (dice * known).sum() / known.sum().clamp(min=1)  # annotated organs only
        return dice_loss + cross_entropy
