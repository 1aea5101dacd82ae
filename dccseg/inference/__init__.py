"""Inference: segment a CT with a stored model (coarse -> refine -> fusion), one volume or many.

``segment_volume`` loads on first use, so training code can import ``dccseg.inference.settings`` where
SimpleITK (needed to restore labels onto the input grid) is not installed.
"""

from typing import Any

from .settings import InferenceSettings

__all__ = ["InferenceSettings", "segment_volume"]


def __getattr__(name: str) -> Any:
    if name == "segment_volume":
        from .pipeline import segment_volume

        return segment_volume
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
