"""Build a model's networks from its card and load its safetensors weights (never a pickle).

The weights must match the card's architecture exactly (same tensor names and shapes);
anything else means the files were damaged or written by an incompatible dccseg, and the
user is told to re-import the model rather than shown a PyTorch traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from ..errors import DccsegError
from ..networks import CoarseConfig, RefineConfig, build_coarse_net, build_refine_net
from .archive import weight_file
from .card import ModelCard
from .store import ModelEntry, ModelStore


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


def build_networks(card: ModelCard) -> dict[str, nn.Module]:
    """The untrained coarse and refine networks described by the card's architecture."""
    try:
        return {
            "coarse": build_coarse_net(CoarseConfig.from_dict(card.architecture["coarse"])),
            "refine": build_refine_net(RefineConfig.from_dict(card.architecture["refine"])),
        }
    except DccsegError as exc:
        raise DccsegError(f"model {card.ref}: {exc}") from None


def damaged(card: ModelCard, detail: str) -> DccsegError:
    return DccsegError(f"model {card.ref} is damaged or from an incompatible dccseg version ({detail}); re-import it")


def _check_tensors(card: ModelCard, part: str, expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        names = (missing or unexpected)[:3]
        kind = "lacks" if missing else "has unexpected"
        raise damaged(card, f"{weight_file(part)} {kind} tensors {names}")
    wrong = [k for k in expected if expected[k] != found[k]]
    if wrong:
        raise damaged(card, f"{weight_file(part)}: tensor {wrong[0]} has shape {found[wrong[0]]}, the card's network needs {expected[wrong[0]]}")


def check_weight_files(card: ModelCard, folder: Path) -> None:
    """Check names and shapes of the coarse/refine weights against the card without loading them."""
    with torch.device("meta"):
        nets = build_networks(card)
    for part, net in nets.items():
        expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        try:
            with safe_open(str(folder / weight_file(part)), framework="pt") as reader:
                found = {k: tuple(reader.get_slice(k).get_shape()) for k in reader.keys()}
        except (OSError, SafetensorError) as exc:
            raise damaged(card, f"{weight_file(part)} is unreadable: {exc}") from None
        _check_tensors(card, part, expected, found)


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
        _check_tensors(card, part, {k: tuple(v.shape) for k, v in net.state_dict().items()}, {k: tuple(v.shape) for k, v in tensors.items()})
        net.load_state_dict(tensors, strict=True)
        net.to(target).eval()
    return LoadedModel(card=card, coarse=nets["coarse"], refine=nets["refine"], device=target, entry=entry)
