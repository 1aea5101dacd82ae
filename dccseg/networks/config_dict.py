"""JSON round trip for the network config dataclasses (they go into the model card)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from dccseg.errors import DccsegError

T = TypeVar("T")


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON-serialisable dict (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build `cls` from a dict written by `config_to_dict`; unknown keys are an error, lists become tuples."""
    if not isinstance(data, dict):
        raise DccsegError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}; check the model card.")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise DccsegError(
            f"Unknown {cls.__name__} keys {unknown}; the model card was written by another dccseg version "
            f"(known keys: {sorted(fields)})."
        )
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
