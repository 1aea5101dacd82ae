"""The versioned model store, model cards, and loading a stored model for inference."""

from .card import DEFAULT_MODEL_NAME, ModelCard, bump_version, organ_table, parse_version
from .datahash import dataset_hash
from .loading import LoadedModel, build_networks, load_model, resolve_device
from .store import STORE_ENV, ModelEntry, ModelStore, next_version, user_store_root

__all__ = [
    "DEFAULT_MODEL_NAME",
    "STORE_ENV",
    "LoadedModel",
    "ModelCard",
    "ModelEntry",
    "ModelStore",
    "build_networks",
    "bump_version",
    "dataset_hash",
    "load_model",
    "next_version",
    "organ_table",
    "parse_version",
    "resolve_device",
    "user_store_root",
]
