"""The versioned model store, model cards, and loading a stored model for inference.

The loading names are imported on first use: they need the networks (and so MONAI), which
would add seconds to light commands such as ``dccseg models list``.
"""

from .card import DEFAULT_MODEL_NAME, ModelCard, bump_version, organ_table, parse_version
from .datahash import dataset_hash
from .store import STORE_ENV, ModelEntry, ModelStore, next_version, user_store_root

_LOADING = ("LoadedModel", "build_networks", "load_model", "resolve_device")


def __getattr__(name: str):
    if name in _LOADING:
        from . import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
