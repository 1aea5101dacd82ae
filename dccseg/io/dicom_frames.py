"""The frames of a multi-frame DICOM file (Enhanced CT, Legacy Converted Enhanced CT) as slice headers.

Such a file holds a whole series: each frame's position, orientation, pixel spacing and rescale sit in its
per-frame functional groups or in the groups shared by all frames, where a header of single-frame slices has them
at the top. Read with pydicom (no pixel data), each frame becomes one slice header, so the series checks see
frames exactly as they see slices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

GROUPS = {
    "position": ("PlanePositionSequence", "ImagePositionPatient"),
    "orientation": ("PlaneOrientationSequence", "ImageOrientationPatient"),
    "pixel_spacing": ("PixelMeasuresSequence", "PixelSpacing"),
    "rescale_slope": ("PixelValueTransformationSequence", "RescaleSlope"),
    "rescale_intercept": ("PixelValueTransformationSequence", "RescaleIntercept"),
    "image_type": ("CTImageFrameTypeSequence", "FrameType"),
}
"""Tag name -> (functional group sequence, attribute inside it)."""


def _text(value: Any) -> str:
    """A DICOM value as GDCM prints it: multiple values joined by backslashes."""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)


def _group_value(item: pydicom.Dataset | None, sequence: str, attribute: str) -> str | None:
    if item is None or sequence not in item or not item[sequence].value:
        return None
    inner = item[sequence].value[0]
    return _text(inner[attribute].value) if attribute in inner else None


def frame_tags(path: Path, tags: dict[str, str]) -> list[dict[str, str]] | None:
    """One tag dictionary per frame of the multi-frame file ``path`` (``tags``: the file's own), or None if it cannot be read."""
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError):
        return None
    return dataset_frame_tags(dataset, tags)


def dataset_frame_tags(dataset: pydicom.Dataset, tags: dict[str, str] | None = None) -> list[dict[str, str]]:
    """One copy of ``tags`` per frame of ``dataset``, with the frame's own GROUPS values (per-frame first, then shared)."""
    count = int(dataset.get("NumberOfFrames", 1) or 1)
    shared_sequence = dataset.get("SharedFunctionalGroupsSequence")
    shared = shared_sequence[0] if shared_sequence else None
    per_frame = list(dataset.get("PerFrameFunctionalGroupsSequence", []))
    frames = []
    for index in range(count):
        own = per_frame[index] if index < len(per_frame) else None
        frame = dict(tags or {})
        for name, (sequence, attribute) in GROUPS.items():
            value = _group_value(own, sequence, attribute) or _group_value(shared, sequence, attribute)
            if value is not None:
                frame[name] = value
            elif name != "image_type":
                frame.pop(name, None)
        frames.append(frame)
    return frames
