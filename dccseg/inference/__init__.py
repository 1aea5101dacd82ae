"""Inference: segment a CT with a stored model (coarse -> refine -> fusion), one volume or many."""

from .pipeline import segment_volume
from .settings import InferenceSettings

__all__ = ["InferenceSettings", "segment_volume"]
