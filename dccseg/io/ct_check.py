"""Does a volume look like CT in Hounsfield units? A robust, fast check on a voxel sample."""

from __future__ import annotations

import numpy as np

from ..errors import DccsegError
from ..volume import Volume

MAX_SAMPLES = 1_000_000
AIR_PERCENTILE_MAX_HU = -500.0  # the 1st percentile of a CT in HU lies in air (about -1000 HU)
HIGH_PERCENTILE_MAX_HU = 4000.0  # the 99th percentile stays below dense bone/metal levels
UNRESCALED_OFFSET = 1024.0  # most scanners store HU + 1024 when the rescale intercept is dropped
FAT_HU, SOFT_TISSUE_HU = (-200.0, -30.0), (-30.0, 150.0)
BODY_FILLS_VIEW = (0.02, 0.3)  # least shares of fat and of soft tissue in a CT whose field of view the body fills


def _sample(array: np.ndarray) -> np.ndarray:
    flat = array.ravel()
    step = max(1, flat.size // MAX_SAMPLES)
    return flat[::step].astype(np.float64)


def _looks_unrescaled(values: np.ndarray) -> bool:
    """Air near 0 and a large share of soft tissue near 1024: CT stored without its rescale intercept."""
    if values.min() < 0 or values.max() > 4095 + 1:
        return False
    soft_tissue = np.mean((values > UNRESCALED_OFFSET - 150) & (values < UNRESCALED_OFFSET + 150))
    return bool(np.percentile(values, 1) < 100 and soft_tissue > 0.1)


def _body_fills_view(values: np.ndarray) -> bool:
    """Fat near -100 HU and soft tissue near 50 HU: CT of a body that fills the field of view (a tight display field, a large patient)."""
    fat = np.mean((values > FAT_HU[0]) & (values < FAT_HU[1]))
    soft_tissue = np.mean((values >= SOFT_TISSUE_HU[0]) & (values < SOFT_TISSUE_HU[1]))
    return bool(fat >= BODY_FILLS_VIEW[0] and soft_tissue >= BODY_FILLS_VIEW[1])


def check_ct(volume: Volume, source: str) -> None:
    """Raise a DccsegError unless ``volume`` looks like CT in HU.

    CT in HU has air around -1000 HU, so its 1st percentile lies below -500 HU, or, where the body fills the
    field of view, fat near -100 HU beside soft tissue; its 99th percentile lies below 4000 HU. MR, PET and
    normalised images have neither; CT stored as raw 0..4095 values (air near 0) gets a specific hint.
    """
    values = _sample(volume.array)
    if not np.all(np.isfinite(values)):
        raise DccsegError(f"{source} contains NaN or infinite values; re-export the CT from the scanner data or Slicer")
    low, high = np.percentile(values, [1, 99])
    if low >= AIR_PERCENTILE_MAX_HU and not _body_fills_view(values):
        if _looks_unrescaled(values):
            raise DccsegError(
                f"{source} looks like CT stored without rescaling (air near 0, soft tissue near 1024); "
                "convert it to Hounsfield units (apply the DICOM rescale slope/intercept, usually HU = value - 1024) or load the original DICOM series"
            )
        raise DccsegError(
            f"{source} does not look like CT in Hounsfield units (1st percentile {low:.0f}, no air near -1000 HU); "
            "DCC Segment needs CT in HU: MR, PET or intensity-normalised images are not supported"
        )
    if high > HIGH_PERCENTILE_MAX_HU:
        raise DccsegError(
            f"{source} has intensities up to {high:.0f} in most of its bright voxels, beyond CT's Hounsfield range (-1100..4000); "
            "load the CT in HU, not a scaled or differently calibrated image"
        )
