"""The model card's ``preprocessing`` block (its one reader and writer), and the inference settings and working grids it implies."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..preprocess import IntensityConfig

MAX_COARSE_ROI = 160
"""Coarse volumes with a side above this run through MONAI's sliding window with this ROI edge."""
MIN_COARSE_SCALE, MAX_COARSE_SCALE = 0.5, 2.0
"""The range of ``coarse_scales``: grids from half to twice the coarse spacing."""


@dataclass(frozen=True)
class Preprocessing:
    """What the model card's ``preprocessing`` holds (training presets set it); spacings are (x, y, z) / (x, y) in mm."""

    intensity: IntensityConfig = IntensityConfig()
    coarse_spacing: tuple[float, float, float] = (3.5, 3.5, 3.5)
    refine_spacing: tuple[float, float] = (1.5, 1.5)
    refine_slice_thickness: float | None = None
    patch_size: int = 128
    patches_per_slice: int = 5
    fast_patches_per_slice: int = 1
    fusion_trust: float | None = None
    """None: plain majority vote; t in (0, 0.5]: the refined patches overrule the coarse mask only where their mean probability is beyond t of 0 or 1 (``dccseg.fusion.fuse``)."""
    coarse_scales: tuple[float, ...] = (1.0,)
    """The coarse network also runs on grids of ``coarse_spacing`` times each scale; their probabilities are averaged on the coarse grid."""
    size_reference_ml: dict[str, float] | None = None
    """Mean organ volumes (ml) of the training data, by which ``--body-scale auto`` measures a body (``dccseg.inference.body_size``)."""

    def __post_init__(self) -> None:
        if self.fusion_trust is not None and not 0.0 < self.fusion_trust <= 0.5:
            raise ValueError(f"fusion_trust must lie in (0, 0.5], not {self.fusion_trust}")
        if not valid_coarse_scales(self.coarse_scales):
            raise ValueError(f"coarse_scales must be distinct numbers in [{MIN_COARSE_SCALE}, {MAX_COARSE_SCALE}] including 1, not {self.coarse_scales}")

    def to_card(self) -> dict[str, Any]:
        """The card block; ``fusion_trust`` and ``coarse_scales`` only when set, so older cards stay as they were."""
        trust = {} if self.fusion_trust is None else {"fusion_trust": self.fusion_trust}
        scales = {} if self.coarse_scales == (1.0,) else {"coarse_scales": list(self.coarse_scales)}
        sizes = {} if self.size_reference_ml is None else {"size_reference_ml": dict(self.size_reference_ml)}
        return {
            "intensity": self.intensity.to_dict(),
            "coarse_spacing": list(self.coarse_spacing),
            "refine_spacing": list(self.refine_spacing),
            "refine_slice_thickness": self.refine_slice_thickness,
            "patch_size": self.patch_size,
            "patches_per_slice": self.patches_per_slice,
            "fast_patches_per_slice": self.fast_patches_per_slice,
            **trust,
            **scales,
            **sizes,
        }

    @classmethod
    def from_card(cls, data: dict[str, Any]) -> "Preprocessing":
        thickness, trust = data.get("refine_slice_thickness"), data.get("fusion_trust")
        return cls(
            intensity=IntensityConfig.from_dict(data["intensity"]),
            coarse_spacing=tuple(float(v) for v in data["coarse_spacing"]),  # type: ignore[arg-type]
            refine_spacing=tuple(float(v) for v in data["refine_spacing"]),  # type: ignore[arg-type]
            refine_slice_thickness=None if thickness is None else float(thickness),
            patch_size=int(data["patch_size"]),
            patches_per_slice=int(data["patches_per_slice"]),
            fast_patches_per_slice=int(data["fast_patches_per_slice"]),
            fusion_trust=None if trust is None else float(trust),
            coarse_scales=tuple(float(v) for v in data.get("coarse_scales", (1.0,))),
            size_reference_ml=None if data.get("size_reference_ml") is None else {k: float(v) for k, v in data["size_reference_ml"].items()},
        )


def valid_coarse_scales(scales: Any) -> bool:
    """Distinct numbers in [MIN_COARSE_SCALE, MAX_COARSE_SCALE], one of them 1 (the coarse grid the probabilities meet on)."""
    numbers = isinstance(scales, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in scales)
    return numbers and len(set(scales)) == len(scales) and 1.0 in scales and all(MIN_COARSE_SCALE <= v <= MAX_COARSE_SCALE for v in scales)


@dataclass(frozen=True)
class InferenceSettings:
    """What ``segment_volume`` needs from the card; spacings are (x, y, z) / (x, y) in mm."""

    intensity: IntensityConfig
    coarse_spacing: tuple[float, float, float]
    refine_spacing: tuple[float, float]
    refine_slice_thickness: float | None
    patch_size: int
    patches_per_slice: int
    fusion_trust: float | None = None
    coarse_scales: tuple[float, ...] = (1.0,)
    size_reference_ml: dict[str, float] | None = None

    @classmethod
    def from_card(cls, preprocessing: dict[str, Any], fast: bool = False) -> "InferenceSettings":
        block = Preprocessing.from_card(preprocessing)
        return cls(
            intensity=block.intensity,
            coarse_spacing=block.coarse_spacing,
            refine_spacing=block.refine_spacing,
            refine_slice_thickness=block.refine_slice_thickness,
            patch_size=block.patch_size,
            patches_per_slice=block.fast_patches_per_slice if fast else block.patches_per_slice,
            fusion_trust=block.fusion_trust,
            coarse_scales=block.coarse_scales,
            size_reference_ml=block.size_reference_ml,
        )

    def scaled(self, factor: float) -> "InferenceSettings":
        """These settings for a body ``factor`` times the training bodies' size: coarse and in-plane refine spacings times ``factor``."""
        return replace(self, coarse_spacing=tuple(s * factor for s in self.coarse_spacing), refine_spacing=tuple(s * factor for s in self.refine_spacing),  # type: ignore[arg-type]
                       size_reference_ml=None)

    def refine_grid_spacing(self, native_slice_spacing: float) -> tuple[float, float, float]:
        """In-plane ``refine_spacing``; slices at ``refine_slice_thickness`` but never thinner than the native ones."""
        thickness = native_slice_spacing if self.refine_slice_thickness is None else max(self.refine_slice_thickness, native_slice_spacing)
        return (self.refine_spacing[0], self.refine_spacing[1], float(thickness))
