"""Reading, checking and writing organ label maps (integer volumes, 0 = background)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import nrrd

from ..errors import DccsegError
from ..fileutil import full_suffix
from ..organs import NUM_ORGANS, ORGANS
from ..volume import Volume
from .images import read_sitk, volume_from_sitk, write_sitk

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


def _is_slicer_segmentation(path: Path) -> bool:
    """True for NRRD files with Slicer segment metadata (``Segment0_...``), whatever their extension."""
    if full_suffix(path) not in (".seg.nrrd", ".nrrd"):
        return False
    try:
        header = nrrd.read_header(str(path))
    except (nrrd.NRRDError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise DccsegError(f"cannot read {path} as NRRD: the file is damaged or not a NRRD file; re-export it from 3D Slicer") from exc
    return any(key.startswith("Segment0_") for key in header)


def grid_difference(a: Volume, b: Volume) -> str:
    """Describe the first geometric attribute in which two volumes differ."""
    if a.shape != b.shape:
        return f"size {'x'.join(map(str, a.size_xyz))} vs {'x'.join(map(str, b.size_xyz))}"
    for name in ("spacing", "origin", "direction"):
        va, vb = np.asarray(getattr(a, name)), np.asarray(getattr(b, name))
        if not np.allclose(va, vb, atol=1e-4):
            return f"{name} {np.round(va, 4).tolist()} vs {np.round(vb, 4).tolist()}"
    return "none"


def read_labelmap(path: str | os.PathLike, reference: Volume | None = None) -> Volume:
    """Read a label map (NIfTI/NRRD/MHA, or a Slicer ``.seg.nrrd`` mapped to our organ ids).

    With ``reference`` (the image), the label must lie on the same grid; a label whose voxels are the image's
    stored in another axis order or direction (e.g. LAS against LPS) is reordered onto it, losslessly.
    """
    from .segmentation import read_segmentation

    path = Path(path)
    if path.is_file() and _is_slicer_segmentation(path):
        labels = read_segmentation(path)
    else:
        labels = as_labelmap(volume_from_sitk(read_sitk(path), str(path)), str(path))
    if reference is not None and not labels.same_grid(reference):
        reordered = _reordered_onto(labels, reference)
        if reordered is not None:
            return reordered
        raise DccsegError(
            f"image and label grids differ: {grid_difference(reference, labels)} (image vs label) for {path.name}; "
            "resample the label onto the image in Slicer (Resample Scalar/Vector/DWI Volume) or re-export it"
        )
    return labels


def _reordered_onto(labels: Volume, reference: Volume) -> Volume | None:
    """``labels`` on ``reference``'s grid when both hold the same voxel centres in another order, else None."""
    from ..preprocess import to_canonical

    canonical_labels, _ = to_canonical(labels)
    canonical_reference, transform = to_canonical(reference.with_array(np.zeros(reference.shape, np.uint8)))
    if not canonical_labels.same_grid(canonical_reference):
        return None
    return transform.restore(canonical_labels)


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
