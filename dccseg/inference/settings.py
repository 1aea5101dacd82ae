"""Inference settings read from a model card's ``preprocessing`` block, and the working grids they imply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..preprocess import IntensityConfig

MAX_COARSE_ROI = 160
"""Coarse volumes with a side above this run through MONAI's sliding window with this ROI edge."""


@dataclass(frozen=True)
class InferenceSettings:
    """What ``segment_volume`` needs from the card; spacings are (x, y, z) / (x, y) in mm."""

    intensity: IntensityConfig
    coarse_spacing: tuple[float, float, float]
    refine_spacing: tuple[float, float]
    refine_slice_thickness: float | None
    patch_size: int
    patches_per_slice: int

    @classmethod
    def from_card(cls, preprocessing: dict[str, Any], fast: bool = False) -> "InferenceSettings":
        thickness = preprocessing.get("refine_slice_thickness")
        return cls(
            intensity=IntensityConfig.from_dict(preprocessing["intensity"]),
            coarse_spacing=tuple(float(v) for v in preprocessing["coarse_spacing"]),  # type: ignore[arg-type]
            refine_spacing=tuple(float(v) for v in preprocessing["refine_spacing"]),  # type: ignore[arg-type]
            refine_slice_thickness=None if thickness is None else float(thickness),
            patch_size=int(preprocessing["patch_size"]),
            patches_per_slice=int(preprocessing["fast_patches_per_slice" if fast else "patches_per_slice"]),
        )

    def refine_grid_spacing(self, native_slice_spacing: float) -> tuple[float, float, float]:
        """In-plane ``refine_spacing``; slices at ``refine_slice_thickness`` but never thinner than the native ones."""
        thickness = native_slice_spacing if self.refine_slice_thickness is None else max(self.refine_slice_thickness, native_slice_spacing)
        return (self.refine_spacing[0], self.refine_spacing[1], float(thickness))
