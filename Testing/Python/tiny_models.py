"""A tiny untrained coarse + refine model in a model store, for inference tests (seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dccseg.networks import CoarseConfig, RefineConfig, build_coarse_net, build_refine_net
from dccseg.preprocess import IntensityConfig
from dccseg.store import ModelCard, ModelStore


def tiny_card(name: str = "tiny-seg", coarse_spacing: float = 8.0, **fields: Any) -> ModelCard:
    """A card for the tiny networks: coarse grid ``coarse_spacing`` mm, 16 px refine patches at 6 mm."""
    preprocessing = {
        "intensity": IntensityConfig().to_dict(),
        "coarse_spacing": [coarse_spacing] * 3,
        "refine_spacing": [6.0, 6.0],
        "refine_slice_thickness": 10.0,
        "patch_size": 16,
        "patches_per_slice": 2,
        "fast_patches_per_slice": 1,
    }
    refine = RefineConfig.from_dict({**RefineConfig.tiny().to_dict(), "patch_size": 16})
    architecture = {"coarse": CoarseConfig.tiny().to_dict(), "refine": refine.to_dict()}
    return ModelCard(name=name, version="0.0.1", preprocessing=preprocessing, architecture=architecture,
                     training={"data": {"cases": 0}, "data_hash": "none"}, **fields)


def register_tiny_model(root: Path, card: ModelCard | None = None) -> Path:
    """Store untrained networks for ``card`` (default ``tiny_card()``) under ``root``; the coarse net is biased to find organs."""
    torch.manual_seed(0)
    card = card or tiny_card()
    coarse = build_coarse_net(CoarseConfig.from_dict(card.architecture["coarse"]))
    with torch.no_grad():  # bias the untrained coarse net towards foreground so organs are present
        last = [m for m in coarse.modules() if isinstance(m, torch.nn.Conv3d | torch.nn.ConvTranspose3d)][-1]
        last.bias[0] -= 2.0
    refine = build_refine_net(RefineConfig.from_dict(card.architecture["refine"]))
    ModelStore(root).register(card, {"coarse": coarse.state_dict(), "refine": refine.state_dict()})
    return root
