"""Trained networks out of a run folder: per-stage weights, a ready-to-use model folder, the model store.

* ``RUN_DIR/<stage>/model.safetensors`` + ``model.json``: a finished stage's best weights with
  their architecture, preprocessing and validation summary.
* ``RUN_DIR/model/``: a complete model version folder (card + coarse + refine weights, the store
  layout), usable at once as ``dccseg segment --model RUN_DIR/model``.
* ``export_model(run_dir, name, version)``: register that model as a new version in the store.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from dccseg.errors import DccsegError
from dccseg.fileutil import atomic_output, ensure_writable_dir
from dccseg.store import DEFAULT_MODEL_NAME, ModelCard, ModelEntry, ModelStore
from dccseg.store.archive import weight_file
from dccseg.store.weights import check_weight_files
from dccseg.training.runstate import write_json

PART_WEIGHTS = "model.safetensors"
PART_INFO = "model.json"
MODEL_FOLDER = "model"
RUN_MODEL_VERSION = "0.0.0"


def save_part(folder: Path, state_dict: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """A stage's final weights and description (weights first, so a description always has its weights)."""
    ensure_writable_dir(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    with atomic_output(folder / PART_WEIGHTS) as tmp:
        save_file(tensors, str(tmp))
    write_json(folder / PART_INFO, info)


def load_part(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    if not (folder / PART_INFO).is_file() or not (folder / PART_WEIGHTS).is_file():
        return None
    return load_file(str(folder / PART_WEIGHTS)), json.loads((folder / PART_INFO).read_text(encoding="utf-8"))


def build_card(name: str, version: str, coarse_info: dict[str, Any], refine_info: dict[str, Any], training: dict[str, Any], metrics: dict[str, Any], description: str = "") -> ModelCard:
    return ModelCard(
        name=name,
        version=version,
        description=description,
        preprocessing=refine_info["preprocessing"],
        architecture={"coarse": coarse_info["architecture"], "refine": refine_info["architecture"]},
        training=training,
        metrics=metrics,
    )


def write_model_folder(folder: Path, card: ModelCard, weights: dict[str, dict[str, torch.Tensor]]) -> None:
    """Write a complete model version folder, replacing an earlier one of the same run as a whole."""
    ensure_writable_dir(folder.parent)
    staging = Path(tempfile.mkdtemp(prefix=".model-", dir=folder.parent))
    try:
        for part, state in weights.items():
            save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(staging / weight_file(part)))
        card.write(staging / "model.json")
        check_weight_files(card, staging)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def set_preprocessing(folder: Path, **values: Any) -> ModelCard:
    """Set ``preprocessing`` keys (``coarse_scales``, ``fusion_trust``, ...) in the card of the model version folder ``folder``,
    checked as any card is; the weights stay as they are. The sweeps of ``tools/`` write their choice with it."""
    path = Path(folder) / "model.json"
    if not path.is_file():
        raise DccsegError(f"{folder} is no model folder (no model.json); give the folder 'dccseg train release' or 'train all' wrote, not a store reference")
    card = ModelCard.read(path)
    updated = ModelCard.from_dict({**card.to_dict(), "preprocessing": {**card.preprocessing, **values}})
    with atomic_output(path) as tmp:
        updated.write(tmp)
    return updated


def read_model_folder(run_dir: Path) -> tuple[ModelCard, dict[str, dict[str, torch.Tensor]]]:
    folder = Path(run_dir) / MODEL_FOLDER
    if not (folder / "model.json").is_file():
        raise DccsegError(f"{run_dir} holds no finished model ({MODEL_FOLDER}/model.json); finish 'dccseg train refine' or 'dccseg train all' first")
    card = ModelCard.read(folder / "model.json")
    weights = {}
    for part in ("coarse", "refine", "encoder"):
        path = folder / weight_file(part)
        if path.is_file():
            weights[part] = load_file(str(path))
    return card, weights


def export_model(run_dir: str | Path, name: str = DEFAULT_MODEL_NAME, version: str | None = None, description: str | None = None, store: ModelStore | None = None) -> ModelEntry:
    """Register the run's model as ``name@version`` (default: the next free version) in the model store."""
    store = store or ModelStore()
    card, weights = read_model_folder(Path(run_dir))
    data = card.to_dict()
    data.pop("created")  # the new version is created now
    data.update(name=name, version=version or store.next_version(name))
    if description is not None:
        data["description"] = description
    return store.register(ModelCard.from_dict(data), weights)
