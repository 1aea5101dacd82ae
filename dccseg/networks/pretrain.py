"""Contrastive pretraining network: encoder + projection head (method.md §1.6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dccseg.networks.resnet import ResNetEncoder


class ProjectionHead(nn.Module):
    """Global average pool -> Linear(C, hidden) -> ReLU -> Linear(hidden, out_dim) -> L2 normalise (no BN)."""

    def __init__(self, in_channels: int, hidden: int | None = None, out_dim: int = 256) -> None:
        super().__init__()
        hidden = hidden or in_channels
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = features.mean(dim=(-2, -1)) if features.ndim == 4 else features
        return F.normalize(self.mlp(pooled), dim=1)


class PretrainNet(nn.Module):
    """`forward(x)` gives unit-norm embeddings; `pooled_features(x)` the pooled encoder output (CE baseline)."""

    def __init__(self, encoder: ResNetEncoder, head: ProjectionHead | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head if head is not None else ProjectionHead(encoder.out_channels[1])

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)["high"].mean(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled_features(x))
