"""Per-organ overlap and surface metrics for one predicted label map against its reference.

Rules for absent organs (method.md §1.9 asks for Dice; HD95 is the usual companion):
* absent from both prediction and reference: Dice and HD95 are undefined (``None``) and the
  organ is left out of every mean;
* in the reference only (missed): Dice 0, HD95 ``None`` (infinite), counted as missed;
* in the prediction only (false positive): Dice 0, HD95 ``None``, counted as a false positive.
Means over organs and cases use the organs present in the reference (so a false positive on
an organ the reference does not label, e.g. a partial scan, does not lower the means; it is
reported separately). HD95 means leave out missed organs (their distance is infinite).

HD95 follows MONAI's ``compute_hausdorff_distance(percentile=95)``: surfaces are the mask
voxels with a 6-neighbour outside the mask, distances are Euclidean in mm using the voxel
spacing, and the result is the larger of the two directed 95th percentiles. Nearest surface
points come from a k-d tree over the surface voxels (exact, and much cheaper than distance
transforms of whole organ boxes).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..errors import DccsegError
from ..organs import ORGANS, Organ
from ..volume import Volume


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """2|P∩R| / (|P| + |R|) for boolean masks; NaN when both are empty."""
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(ref))
    if total == 0:
        return math.nan
    return 2.0 * int(np.count_nonzero(pred & ref)) / total


def surface(mask: np.ndarray) -> np.ndarray:
    """Mask voxels that touch the outside through a face (the array border counts as outside)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(pred: np.ndarray, ref: np.ndarray, spacing_zyx: Sequence[float], percentile: float = 95.0) -> float:
    """Symmetric percentile Hausdorff distance in mm; NaN when both are empty, inf when one is."""
    if not pred.any() and not ref.any():
        return math.nan
    if not pred.any() or not ref.any():
        return math.inf
    box = _union_box(pred, ref)
    scale = np.asarray(spacing_zyx, dtype=np.float64)
    pred_points = np.argwhere(surface(pred[box])) * scale
    ref_points = np.argwhere(surface(ref[box])) * scale
    to_ref = cKDTree(ref_points).query(pred_points)[0]
    to_pred = cKDTree(pred_points).query(ref_points)[0]
    return float(max(np.percentile(to_ref, percentile), np.percentile(to_pred, percentile)))


def _union_box(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...]:
    """The tight bounding box of both masks.

    Cropping to it changes nothing: every surface voxel lies inside, and a voxel on the box's
    border has its outward neighbour outside both masks, so it is surface either way.
    """
    box = []
    for axis in range(a.ndim):
        others = tuple(i for i in range(a.ndim) if i != axis)
        hit = np.flatnonzero(a.any(axis=others) | b.any(axis=others))
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def _finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)


def _merge_boxes(a: tuple[slice, ...] | None, b: tuple[slice, ...] | None) -> tuple[slice, ...]:
    if a is None or b is None:
        return a or b  # type: ignore[return-value]
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def organ_metrics(pred: np.ndarray, ref: np.ndarray, label: int, box: tuple[slice, ...] | None, spacing_zyx: Sequence[float]) -> dict[str, Any]:
    """Dice/HD95 of one organ, computed inside ``box`` (the union of its extents in both maps)."""
    if box is None:
        return {"label": label, "dice": None, "hd95": None, "in_reference": False, "in_prediction": False}
    p, r = pred[box] == label, ref[box] == label
    in_pred, in_ref = bool(p.any()), bool(r.any())
    return {
        "label": label,
        "dice": _finite_or_none(dice(p, r)),
        "hd95": _finite_or_none(hd95(p, r, spacing_zyx)),
        "in_reference": in_ref,
        "in_prediction": in_pred,
    }


def case_means(organs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Mean Dice/HD95 over the organs present in the reference, and the missed/false-positive organs."""
    present = [m for m in organs.values() if m["in_reference"]]
    dices = [m["dice"] for m in present]
    distances = [m["hd95"] for m in present if m["hd95"] is not None]
    return {
        "dice_mean": float(np.mean(dices)) if dices else None,
        "hd95_mean": float(np.mean(distances)) if distances else None,
        "n_organs": len(present),
        "missed": [k for k, m in organs.items() if m["in_reference"] and not m["in_prediction"]],
        "false_positives": [k for k, m in organs.items() if m["in_prediction"] and not m["in_reference"]],
    }


def evaluate_pair(pred: Volume, ref: Volume, organs: Sequence[Organ] | None = None, case: str = "", phase: str = "unknown") -> dict[str, Any]:
    """Per-organ Dice and HD95 (mm) of ``pred`` against ``ref`` (same grid), with the case means.

    Returns a JSON-ready dict: {"case", "phase", "organs": {key: {"label", "dice", "hd95",
    "in_reference", "in_prediction"}}, "dice_mean", "hd95_mean", "n_organs", "missed", "false_positives"}.
    """
    if not pred.same_grid(ref):
        raise DccsegError(f"prediction and reference of case '{case or '?'}' are on different grids; segment the reference's own image")
    organs = list(organs) if organs is not None else list(ORGANS)
    spacing_zyx = tuple(reversed(ref.spacing))
    labels = max([o.label for o in organs], default=0)
    pred_boxes = ndimage.find_objects(np.asarray(pred.array), max_label=labels)
    ref_boxes = ndimage.find_objects(np.asarray(ref.array), max_label=labels)
    per_organ = {}
    for organ in organs:
        box = _merge_boxes(pred_boxes[organ.label - 1], ref_boxes[organ.label - 1])
        per_organ[organ.key] = organ_metrics(pred.array, ref.array, organ.label, box, spacing_zyx)
    return {"case": case, "phase": phase, "organs": per_organ, **case_means(per_organ)}
