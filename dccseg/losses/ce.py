"""The CE pretraining baseline (method.md §2): a linear organ x phase classifier on pooled
encoder features, trained with standard softmax cross-entropy."""

from __future__ import annotations

import torch
from torch import nn


class ClassifierHead(nn.Module):
    """Linear(in_features -> num_classes) on globally average-pooled encoder features."""

    def __init__(self, num_classes: int, in_features: int = 2048) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes) from features (B, F) or feature maps (B, F, *spatial)."""
        pooled = features.flatten(2).mean(dim=2) if features.dim() > 2 else features
        return self.linear(pooled)


def ce_pretrain_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (B, K) logits against (B,) class indices, computed in float32."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (B, K) and labels (B,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return nn.functional.cross_entropy(logits.float(), labels.long())
