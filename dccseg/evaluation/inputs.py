"""Finding prediction/reference pairs on disk and bringing a prediction onto its reference's grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DccsegError
from ..fileutil import full_suffix, strip_suffix
from ..io import LABEL_SUFFIXES, read_labelmap
from ..io.labels import grid_difference
from ..preprocess import resample_like
from ..volume import Volume


def label_files(folder: Path) -> dict[str, Path]:
    """Label map files of ``folder`` by case id (file name without its extension)."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and full_suffix(path) in LABEL_SUFFIXES:
            case = strip_suffix(path)
            if case in files:
                raise DccsegError(f"{folder} holds two label maps for case '{case}' ({files[case].name}, {path.name}); keep one")
            files[case] = path
    return files


def match_pairs(pred: Path, ref: Path) -> list[tuple[str, Path, Path]]:
    """(case id, prediction, reference) for two files, or for two folders matched by case id."""
    for path in (pred, ref):
        if not path.exists():
            raise DccsegError(f"{path} does not exist; give a label map file or a folder of them")
    if pred.is_file() and ref.is_file():
        return [(strip_suffix(ref), pred, ref)]
    if not (pred.is_dir() and ref.is_dir()):
        raise DccsegError("PRED and REF must both be files or both be folders")
    predictions, references = label_files(pred), label_files(ref)
    missing = sorted(set(references) - set(predictions))
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DccsegError(f"no prediction in {pred} for reference case(s) {shown}; name predictions like their references")
    if not references:
        raise DccsegError(f"{ref} holds no label maps ({', '.join(LABEL_SUFFIXES)})")
    return [(case, predictions[case], references[case]) for case in sorted(references)]


def align_to_reference(pred: Volume, ref: Volume, source: str) -> Volume:
    """``pred`` on ``ref``'s grid: unchanged when equal, padded/cropped when only the extent differs
    (as in a cropped Slicer ``.seg.nrrd``), otherwise a DccsegError."""
    if pred.same_grid(ref):
        return pred
    same_axes = np.allclose(pred.spacing, ref.spacing, atol=1e-4) and np.allclose(pred.direction, ref.direction, atol=1e-4)
    if same_axes:
        axes = np.asarray(ref.direction).reshape(3, 3) * np.asarray(ref.spacing)
        offset = np.linalg.solve(axes, np.subtract(pred.origin, ref.origin))
        if np.allclose(offset, np.round(offset), atol=1e-3):
            return resample_like(pred, ref, is_label=True)
    raise DccsegError(
        f"{source} is not on the reference's grid ({grid_difference(ref, pred)}, reference vs prediction); "
        "predict on the reference's own image"
    )


def read_pair(pred_path: Path, ref_path: Path) -> tuple[Volume, Volume]:
    ref = read_labelmap(ref_path)
    return align_to_reference(read_labelmap(pred_path), ref, str(pred_path)), ref
