"""Load a stored model for inference: its networks from the card, its safetensors weights (never a pickle).

The weights must match the card's architecture exactly (:mod:`dccseg.store.weights`); anything else
means the files were damaged or written by an incompatible dccseg, and the user is told to re-import
the model rather than shown a PyTorch traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..errors import DccsegError
from .card import ModelCard
from .store import ModelEntry, ModelStore
from .weights import build_networks, check_tensors, damaged


@dataclass
class LoadedModel:
    """A model ready for inference: its card and both networks in eval mode on ``device``."""

    card: ModelCard
    coarse: nn.Module
    refine: nn.Module
    device: torch.device
    entry: ModelEntry | None = None


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto``/None -> CUDA when available, else CPU; asking for CUDA without one is a DccsegError."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise DccsegError(f"unknown device '{device}'; use auto, cuda or cpu") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DccsegError("CUDA was requested but no usable GPU was found; use --device cpu")
    return resolved


def load_model(ref: str | None = None, device: str | torch.device | None = "auto", store: ModelStore | None = None) -> LoadedModel:
    """Resolve ``ref`` in the store (None = newest default model), build its networks, load the weights."""
    entry = (store or ModelStore()).resolve(ref)
    card = entry.card
    target = resolve_device(device)
    nets = build_networks(card)
    for part, net in nets.items():
        path = entry.weight_path(part)
        if not path.is_file():
            raise damaged(card, f"{path.name} is missing")
        try:
            tensors = load_file(str(path), device="cpu")
        except (OSError, SafetensorError) as exc:
            raise damaged(card, f"{path.name} is unreadable: {exc}") from None
        check_tensors(card, part, {k: tuple(v.shape) for k, v in net.state_dict().items()}, {k: tuple(v.shape) for k, v in tensors.items()})
        net.load_state_dict(tensors, strict=True)
        net.to(target).eval()
    return LoadedModel(card=card, coarse=nets["coarse"], refine=nets["refine"], device=target, entry=entry)
