"""Labels from the refine grid onto the (usually finer) input grid, with smooth organ borders.

Nearest-neighbour resampling would copy the refine grid's 1.5 mm x 3 mm staircase onto a
0.8 mm scan. Instead each organ's binary mask is linearly interpolated inside its bounding box,
and a voxel goes to the organ whose interpolated mask is highest, when that is at least 0.5.
Several label maps on different grids (refined organs on the refine grid, organs whose refinement
the model skips on the coarse grid) compete voxel by voxel in the same way.
A coarser grid's last voxel centre can lie short of the input's last slices (``dccseg.preprocess.resample``
keeps the origin and rounds the size); an organ that reaches the edge of its grid is extended one voxel
past it, so those slices keep its label instead of falling outside the map.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk

from ..volume import Volume


def restore_labels(labels: Volume | Sequence[Volume], target: Volume) -> Volume:
    """``labels`` (uint8, ids > 0; one map or several on their own grids) resampled onto ``target``'s grid (its array is not used)."""
    out = np.zeros(target.shape, dtype=np.uint8)
    target_image = _geometry(target)
    organs = [organ for source in ([labels] if isinstance(labels, Volume) else labels) for organ in _organ_regions(source, target_image, out.shape)]
    if not organs:
        return target.with_array(out)
    start = np.min([[lo for lo, _ in box] for _, _, box in organs], axis=0)
    stop = np.max([[hi for _, hi in box] for _, _, box in organs], axis=0)
    best = np.full(tuple(stop - start), 0.5, dtype=np.float32)  # only where organs can land: a fraction of a whole-body scan
    for label, region, box in organs:
        values = sitk.GetArrayFromImage(sitk.Resample(region, _sub_grid(target_image, box), sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32))
        local = tuple(slice(lo - first, hi - first) for (lo, hi), first in zip(box, start))
        wins = values >= best[local]
        best[local][wins] = values[wins]
        out[tuple(slice(lo, hi) for lo, hi in box)][wins] = label
    return target.with_array(out)


def _organ_regions(labels: Volume, target_image: sitk.Image, shape: tuple[int, ...]) -> list[tuple[int, sitk.Image, list[tuple[int, int]]]]:
    """Per organ of ``labels``: its id, its mask (float) cropped to its bounding box, and the box of the target it covers."""
    regions = []
    for label in np.unique(labels.array):
        if label == 0:
            continue
        mask = labels.array == label
        region = _crop(labels, mask.astype(np.float32), _bounding_box(mask, margin=2, shape=mask.shape))
        target_box = _target_box(region, target_image, shape)
        if target_box is not None:
            regions.append((int(label), region, target_box))
    return regions


def _geometry(volume: Volume) -> sitk.Image:
    image = sitk.Image([int(n) for n in volume.size_xyz], sitk.sitkUInt8)
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(volume.direction)
    return image


def _bounding_box(mask: np.ndarray, margin: int, shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """(start, stop) per array axis (z, y, x) around the mask, widened by ``margin`` voxels."""
    box = []
    for axis in range(3):
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append((max(int(present[0]) - margin, 0), min(int(present[-1]) + 1 + margin, shape[axis])))
    return box


def _crop(volume: Volume, array: np.ndarray, box: list[tuple[int, int]]) -> sitk.Image:
    """``array`` cut to ``box`` as an image placed where that box lies in ``volume``; a side at the array's edge repeats one voxel past it."""
    window = tuple(slice(lo, hi) for lo, hi in box)
    pad = [(int(lo == 0), int(hi == n)) for (lo, hi), n in zip(box, array.shape)]
    image = sitk.GetImageFromArray(np.pad(array[window], pad, mode="edge"))
    image.SetSpacing(volume.spacing)
    image.SetDirection(volume.direction)
    start_xyz = [float(box[axis][0] - pad[axis][0]) for axis in (2, 1, 0)]
    image.SetOrigin(_geometry(volume).TransformContinuousIndexToPhysicalPoint(start_xyz))
    return image


def _target_box(region: sitk.Image, target: sitk.Image, shape: tuple[int, int, int]) -> list[tuple[int, int]] | None:
    """The (z, y, x) index box of ``target`` that covers ``region``'s corners, or None if outside."""
    size = region.GetSize()
    corners = [
        target.TransformPhysicalPointToContinuousIndex(region.TransformContinuousIndexToPhysicalPoint([c * (s - 1) for c, s in zip(corner, size)]))
        for corner in np.ndindex(2, 2, 2)
    ]
    low = np.floor(np.min(corners, axis=0)).astype(int) - 1
    high = np.ceil(np.max(corners, axis=0)).astype(int) + 2
    box_xyz = [(max(lo, 0), min(hi, n)) for lo, hi, n in zip(low, high, (shape[2], shape[1], shape[0]))]
    if any(lo >= hi for lo, hi in box_xyz):
        return None
    return box_xyz[::-1]


def _sub_grid(target: sitk.Image, box: list[tuple[int, int]]) -> sitk.Image:
    (z0, z1), (y0, y1), (x0, x1) = box
    image = sitk.Image([int(x1 - x0), int(y1 - y0), int(z1 - z0)], sitk.sitkUInt8)
    image.SetSpacing(target.GetSpacing())
    image.SetDirection(target.GetDirection())
    image.SetOrigin(target.TransformIndexToPhysicalPoint([int(x0), int(y0), int(z0)]))
    return image
