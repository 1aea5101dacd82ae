"""Trained parts a stage starts from: a coarse model (run folder or model store) and a pretrained encoder.

Weights are read from safetensors only; nothing a user hands over is ever unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from dccseg.errors import DccsegError
from dccseg.networks import CoarseConfig
from dccseg.store import ModelEntry, ModelStore
from dccseg.training.export import load_part

ENCODER_FILE = "encoder.safetensors"


@dataclass
class CoarseModel:
    """A trained coarse network: architecture, weights, and the preprocessing it was trained with."""

    config: CoarseConfig
    state_dict: dict[str, torch.Tensor]
    info: dict[str, Any]

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.info["preprocessing"]


def resolve_coarse(ref: str | Path) -> CoarseModel:
    """A coarse training run folder (``coarse/model.json``), a model version folder, or a store reference."""
    path = Path(ref).expanduser()
    part = load_part(path / "coarse") if path.is_dir() else None
    if part is not None:
        state, info = part
        return CoarseModel(CoarseConfig.from_dict(info["architecture"]), state, info)
    if path.is_dir() and (path / "coarse").is_dir():
        raise DccsegError(f"{path} holds an unfinished coarse training; finish it (dccseg train coarse ... --resume) before training refine")
    return model_coarse(ModelStore().resolve(str(ref)))


def model_coarse(entry: ModelEntry) -> CoarseModel:
    """The coarse network of a model in the store."""
    info = {"part": "coarse", "architecture": entry.card.architecture["coarse"], "preprocessing": entry.card.preprocessing, "source": entry.ref}
    return CoarseModel(CoarseConfig.from_dict(info["architecture"]), load_file(str(entry.weight_path("coarse"))), info)


def resolve_encoder(ref: str | Path) -> dict[str, torch.Tensor]:
    """Encoder weights from a ``.safetensors`` file, or the ``encoder.safetensors`` of a pretraining run/model folder."""
    path = Path(ref).expanduser()
    candidates = [path] if path.is_file() else [path / ENCODER_FILE, path / "pretrain" / ENCODER_FILE, path / "model" / ENCODER_FILE]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise DccsegError(f"no encoder checkpoint at {path}; give an {ENCODER_FILE} file or the folder of a 'dccseg train pretrain' run")
    if found.suffix != ".safetensors":
        raise DccsegError(f"{found} is not a .safetensors file; encoder checkpoints are read from safetensors only (never unpickled)")
    try:
        return load_file(str(found))
    except (SafetensorError, OSError) as exc:
        raise DccsegError(f"cannot read encoder checkpoint {found} ({exc}); re-run the pretraining or give another file") from None
