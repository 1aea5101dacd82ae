"""NIfTI files whose direction cosines ITK refuses as not orthonormal, read through nibabel and repaired.

Real downloads of the TotalSegmentator data set hold such files (axes a few tenths of a degree off square).
The repair replaces the axes by the nearest orthonormal ones (polar decomposition) and keeps the voxel
spacing and the origin; the voxel data are unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import DccsegError

MAX_REPAIR_DEGREES = 5.0
"""Larger deviations from square axes are not a rounding problem: such a file is refused."""

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def nearest_orthonormal(axes: np.ndarray) -> np.ndarray:
    """The rotation (or reflection) nearest to ``axes`` (3x3, columns are the axes) in the Frobenius norm."""
    u, _, vt = np.linalg.svd(axes)
    return u @ vt


def read_nifti_with_repaired_axes(path: Path) -> sitk.Image:
    """Read ``path`` with nibabel and return it as a SimpleITK image with orthonormal axes (LPS, like ITK)."""
    import nibabel

    try:
        image = nibabel.load(str(path))
        data = np.asarray(image.dataobj)
    except Exception as exc:  # nibabel raises many types for damaged files
        raise DccsegError(f"cannot read {path} as a NIfTI image ({exc}); re-export it or check the path") from None
    if data.ndim != 3:
        raise DccsegError(f"{path} is a {data.ndim}D NIfTI image; give a 3D volume")
    affine = _RAS_TO_LPS @ image.affine[:3, :4]
    spacing = np.linalg.norm(affine[:, :3], axis=0)
    axes = affine[:, :3] / spacing
    repaired = nearest_orthonormal(axes)
    degrees = np.degrees(np.arccos(np.clip(np.sum(axes * repaired, axis=0), -1.0, 1.0))).max()
    if degrees > MAX_REPAIR_DEGREES:
        raise DccsegError(f"{path}: its voxel axes are {degrees:.1f} degrees off square (sheared); resample it to a regular grid first")
    out = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    out.SetSpacing(tuple(float(s) for s in spacing))
    out.SetOrigin(tuple(float(v) for v in affine[:, 3]))
    out.SetDirection(tuple(float(v) for v in repaired.ravel()))
    return out
