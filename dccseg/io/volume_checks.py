"""Checks of a read volume's values and geometry: NaN/Inf voxels and implausible voxel spacing."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import DccsegError
from ..volume import Volume

SPACING_RANGE_MM = (0.01, 100.0)
"""CT voxels are 0.2-1 mm in plane and 0.5-10 mm apart; outside this range (generous, for coarse test phantoms) the header's units or values are wrong."""


def check_spacing(volume: Volume, source: str) -> None:
    """Raise when a voxel spacing is zero, negative, not finite or far outside CT's range."""
    spacing = np.asarray(volume.spacing, dtype=np.float64)
    low, high = SPACING_RANGE_MM
    if not np.all(np.isfinite(spacing)) or np.any(spacing < low) or np.any(spacing > high):
        shown = "x".join(f"{v:.4g}" for v in spacing)
        raise DccsegError(
            f"{source} has a voxel spacing of {shown} mm, outside CT's {low:g}-{high:g} mm; its header is wrong "
            "(units or values): re-export it from the original DICOM"
        )


def replace_non_finite(volume: Volume, source: str, log: Callable[[str], None]) -> Volume:
    """NaN/Inf voxels (padding left by other tools' resampling) set to the lowest finite value, i.e. outside the scan; reported."""
    array = volume.array
    if array.dtype.kind != "f":
        return volume
    bad = 0
    lowest = np.inf
    for plane in array:
        finite = np.isfinite(plane)
        bad += int(finite.size - np.count_nonzero(finite))
        if finite.any():
            lowest = min(lowest, float(plane[finite].min()))
    if not bad:
        return volume
    if not np.isfinite(lowest):
        raise DccsegError(f"{source} holds no finite values (all NaN or infinite); re-export the CT")
    for plane in array:
        plane[~np.isfinite(plane)] = lowest
    log(f"{source}: {bad} NaN/infinite voxels ({100 * bad / array.size:.1f}%) treated as outside the scan (set to {lowest:.0f} HU)")
    return volume
