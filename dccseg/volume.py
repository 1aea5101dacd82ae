"""The in-memory image type: a numpy array plus its full physical geometry."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # SimpleITK loads on first use: training on a GPU machine runs without it
    import SimpleITK as sitk


@dataclass(frozen=True)
class Volume:
    """A 3D image on a physical grid.

    ``array`` is indexed (z, y, x) like SimpleITK's numpy view; ``spacing`` and ``origin``
    are (x, y, z) in mm in LPS patient coordinates (the DICOM/ITK convention); ``direction``
    is the 3x3 direction cosine matrix, row-major, whose columns are the x, y, z axes.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def from_sitk(cls, image: sitk.Image) -> "Volume":
        import SimpleITK as sitk

        return cls(
            array=sitk.GetArrayFromImage(image),
            spacing=tuple(float(v) for v in image.GetSpacing()),
            origin=tuple(float(v) for v in image.GetOrigin()),
            direction=tuple(float(v) for v in image.GetDirection()),
        )

    def to_sitk(self) -> sitk.Image:
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def with_array(self, array: np.ndarray) -> "Volume":
        """The same geometry holding another array of the same shape."""
        if array.shape != self.array.shape:
            raise ValueError(f"array shape {array.shape} differs from the volume's {self.array.shape}")
        return replace(self, array=array)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def voxel_ml(self) -> float:
        """The volume of one voxel in ml (spacing product in mm^3 / 1000)."""
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def size_xyz(self) -> tuple[int, int, int]:
        z, y, x = self.array.shape
        return (x, y, z)

    def same_grid(self, other: "Volume", tolerance: float = 1e-4) -> bool:
        """True when both volumes have the same size, spacing, origin and direction (within ``tolerance``)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=tolerance)
            and np.allclose(self.origin, other.origin, atol=tolerance)
            and np.allclose(self.direction, other.direction, atol=tolerance)
        )
