"""Organ statistics of a CT and its organ label map: volume, HU distribution (whole and eroded core), extent, pieces.

Units and definitions are in ``docs/statistics.md``: volumes in ml, CT numbers in HU, positions in mm in LPS
patient coordinates (x to the patient's left, y to the back, z up to the head).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import ndimage as ndi

from . import __version__
from .errors import DccsegError
from .organs import ORGANS, Organ
from .phase_guess import guess_phase
from .volume import Volume

FORMAT = "dccseg-statistics/1"
PERCENTILES = (5, 25, 75, 95)
CORE_STRUCTURE = ndi.generate_binary_structure(3, 1)
"""The eroded core drops every organ voxel with a face neighbour outside the organ (one voxel of partial volume)."""
PIECE_STRUCTURE = np.ones((3, 3, 3), dtype=bool)
"""Pieces are 26-connected, as in :mod:`dccseg.postprocess`."""
LISTED_PIECES = 10
BODY_HU = -500.0
"""Voxels above this belong to the body (or the table) when finding the left-right body midline."""


def index_to_lps(volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, origin) such that a voxel's centre in mm is ``origin + matrix @ (i, j, k)`` with (i, j, k) = (x, y, z) index."""
    matrix = np.asarray(volume.direction, dtype=np.float64).reshape(3, 3) * np.asarray(volume.spacing, dtype=np.float64)
    return matrix, np.asarray(volume.origin, dtype=np.float64)


def _points_mm(volume: Volume, zyx: np.ndarray) -> np.ndarray:
    matrix, origin = index_to_lps(volume)
    return origin + zyx[:, ::-1].astype(np.float64) @ matrix.T


def hu_summary(values: np.ndarray) -> dict[str, float]:
    """Mean, median, standard deviation (population) and percentiles of HU values."""
    values = values.astype(np.float64, copy=False)
    summary = {"mean": float(values.mean()), "median": float(np.median(values)), "std": float(values.std())}
    summary.update({f"p{p}": float(v) for p, v in zip(PERCENTILES, np.percentile(values, PERCENTILES))})
    return {name: round(value, 3) for name, value in summary.items()}


def organ_statistics(ct: Volume, labels: Volume, organ: Organ) -> dict[str, Any]:
    """Statistics of one organ; an absent organ has ``present`` False and volume 0."""
    entry: dict[str, Any] = {"label": organ.label, "name": organ.name}
    mask = labels.array == organ.label
    voxels = int(np.count_nonzero(mask))
    if voxels == 0:
        return {**entry, "present": False, "voxels": 0, "volume_ml": 0.0}
    box = ndi.find_objects(mask.astype(np.uint8))[0]
    inside, values = mask[box], ct.array[box]
    core = ndi.binary_erosion(inside, CORE_STRUCTURE)
    corner = np.array([s.start for s in box])
    points = _points_mm(labels, np.argwhere(inside) + corner)
    touches = any(s.start == 0 or s.stop == size for s, size in zip(box, mask.shape))
    pieces, count = ndi.label(inside, PIECE_STRUCTURE)
    piece_voxels = np.sort(np.bincount(pieces.ravel())[1:])[::-1][:LISTED_PIECES]
    return {
        **entry,
        "present": True,
        "voxels": voxels,
        "volume_ml": round(voxels * labels.voxel_ml, 4),
        "hu": hu_summary(values[inside]),
        "core_voxels": int(np.count_nonzero(core)),
        "hu_core": hu_summary(values[core]) if core.any() else None,
        "bbox_mm": {"min": np.round(points.min(axis=0), 2).tolist(), "max": np.round(points.max(axis=0), 2).tolist()},
        "centroid_mm": np.round(points.mean(axis=0), 2).tolist(),
        "pieces": int(count),
        "largest_pieces_ml": [round(float(v) * labels.voxel_ml, 4) for v in piece_voxels],
        "touches_scan_border": bool(touches),
    }


def body_midline_x(ct: Volume) -> float | None:
    """The left-right (LPS x, mm) centre of the voxels above BODY_HU, sampled every second voxel; None when there are none."""
    sampled = np.argwhere(ct.array[::2, ::2, ::2] > BODY_HU) * 2
    if len(sampled) == 0:
        return None
    return round(float(_points_mm(ct, sampled)[:, 0].mean()), 2)


def case_statistics(ct: Volume, labels: Volume, organs: Sequence[Organ] = ORGANS, **case: Any) -> dict[str, Any]:
    """Statistics of every organ in ``organs`` plus the case's grid, body midline and guessed contrast phase.

    ``case`` holds descriptive fields copied into the result (case id, file names, model, seconds).
    """
    if not ct.same_grid(labels, 1e-3):
        raise DccsegError("the CT and the label map are on different grids; give the label map made on this CT (or resample it onto the CT in Slicer)")
    phase, confidence, evidence = guess_phase(ct, labels)
    return {
        "format": FORMAT,
        "dccseg_version": __version__,
        **case,
        "grid": {"size_xyz": list(ct.size_xyz), "spacing_mm": [round(s, 4) for s in ct.spacing], "voxel_ml": round(ct.voxel_ml, 6)},
        "body_midline_x_mm": body_midline_x(ct),
        "phase": {"guess": phase, "confidence": round(confidence, 3), "evidence": evidence},
        "organs": {organ.key: organ_statistics(ct, labels, organ) for organ in organs},
    }
