"""Reading organ label maps: NIfTI/NRRD/MHA label volumes or Slicer segmentations, optionally on an image's grid."""

from __future__ import annotations

import os
from pathlib import Path

import nrrd
import numpy as np

from ..errors import DccsegError
from ..fileutil import full_suffix
from ..volume import Volume
from .images import read_sitk, volume_from_sitk
from .labels import as_labelmap, grid_difference
from .segmentation import read_segmentation


def _is_slicer_segmentation(path: Path) -> bool:
    """True for NRRD files with Slicer segment metadata (``Segment0_...``), whatever their extension."""
    if full_suffix(path) not in (".seg.nrrd", ".nrrd"):
        return False
    try:
        header = nrrd.read_header(str(path))
    except (nrrd.NRRDError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise DccsegError(f"cannot read {path} as NRRD: the file is damaged or not a NRRD file; re-export it from 3D Slicer") from exc
    return any(key.startswith("Segment0_") for key in header)


def read_labelmap(path: str | os.PathLike, reference: Volume | None = None) -> Volume:
    """Read a label map (NIfTI/NRRD/MHA, or a Slicer ``.seg.nrrd`` mapped to our organ ids).

    With ``reference`` (the image), the label must lie on the same grid; a label whose voxels are the image's
    stored in another axis order or direction (e.g. LAS against LPS) is reordered onto it, losslessly.
    """
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
