"""A model's networks built from its card, and its safetensors weights checked against them.

Weights must match the card's architecture exactly (same tensor names and shapes); anything else
means the files were damaged or written by an incompatible dccseg. Used when a model is stored
(:mod:`dccseg.store.store`) and when it is loaded (:mod:`dccseg.store.loading`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from ..errors import DccsegError
from ..networks import CoarseConfig, RefineConfig, build_coarse_net, build_refine_net
from .archive import weight_file
from .card import ModelCard


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


def check_tensors(card: ModelCard, part: str, expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> None:
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
        check_tensors(card, part, expected, found)
