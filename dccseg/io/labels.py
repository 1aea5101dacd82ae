"""Checking and writing organ label maps (integer volumes, 0 = background); reading is in :mod:`dccseg.io.label_reading`."""

from __future__ import annotations

import os

import numpy as np

from ..errors import DccsegError
from ..organs import NUM_ORGANS, ORGANS
from ..volume import Volume
from .images import write_sitk

LABEL_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".seg.nrrd", ".mha", ".mhd")


def as_labelmap(volume: Volume, source: str) -> Volume:
    """``volume`` as a uint8 (or int16 when ids exceed 255) label map; it must hold non-negative integers."""
    array = volume.array
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise DccsegError(f"{source} holds non-integer values, so it is an image or probability map, not a label map; pass an integer label map")
    if array.dtype.kind not in "fiub":
        raise DccsegError(f"{source} has pixel type {array.dtype}, not integer labels; pass an integer label map")
    if array.size and array.min() < 0:
        raise DccsegError(f"{source} holds negative label values (min {array.min()}); labels must be 0 (background) or organ ids 1-{NUM_ORGANS}")
    high = int(array.max()) if array.size else 0
    if high > np.iinfo(np.int16).max:
        raise DccsegError(f"{source} holds label values up to {high}; labels must be 0 (background) or organ ids 1-{NUM_ORGANS}")
    return volume.with_array(array.astype(np.uint8 if high <= 255 else np.int16))


def grid_difference(a: Volume, b: Volume) -> str:
    """Describe the first geometric attribute in which two volumes differ."""
    if a.shape != b.shape:
        return f"size {'x'.join(map(str, a.size_xyz))} vs {'x'.join(map(str, b.size_xyz))}"
    for name in ("spacing", "origin", "direction"):
        va, vb = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        if not np.allclose(va, vb, atol=1e-4):
            return f"{name} {np.round(va, 4).tolist()} vs {np.round(vb, 4).tolist()}"
    return "none"


def check_label_ids(labels: Volume, source: str) -> None:
    """Raise unless every label id is 0 (background) or one of our organ ids."""
    present = np.unique(labels.array)
    unknown = [int(v) for v in present if not 0 <= v <= NUM_ORGANS]
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        table = ", ".join(f"{o.label} {o.key}" for o in ORGANS)
        raise DccsegError(
            f"{source} has unknown label ids {shown}; use 0 for background and {table} (remap with 'dccseg dataset import ... --label-map')"
        )


def write_labelmap(labels: Volume, path: str | os.PathLike) -> None:
    """Write a label map as compressed uint8 (.nii.gz/.nii/.nrrd/.mha)."""
    array = labels.array
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError("label values must lie in 0..255 to be written as uint8")
    write_sitk(labels.with_array(array.astype(np.uint8)).to_sitk(), path)
