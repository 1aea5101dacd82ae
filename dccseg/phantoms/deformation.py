"""Random spatial transforms for label maps: affine, smooth elastic field and per-organ local scaling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from .render import upsample

CONTROL_STRIDE = 4


@dataclass(frozen=True)
class AnatomySettings:
    """How far a template's anatomy is deformed: whole-body scale, per-organ size and position, elastic field (mm), and the
    probability that an organ takes its shape from another body (``synthesis.swap_organs``, when the caller gives donors)."""

    scale_range: float = 0.15
    organ_scale_range: float = 0.15
    organ_shift_mm: float = 0.0
    elastic_mm: float = 6.0
    organ_swap: float = 0.0


ANATOMY_PRESETS = {
    "typical": AnatomySettings(),
    "wide": AnatomySettings(scale_range=0.25, organ_scale_range=0.3, organ_shift_mm=15.0, elastic_mm=10.0),
    "mixed": AnatomySettings(organ_swap=0.5),
}
"""``typical``: the template's body within +-15%; ``wide``: bodies 25% smaller or larger, organs +-30% in size and moved
up to 15 mm (at most half their radius) against their neighbours, a stronger elastic field: patients differ more
than deformations of five bodies do; ``mixed``: typical, and each solid or hollow organ shaped, with probability 0.5, as
another training body's (organ shapes in combinations no one body has)."""


def _rotation(angles_rad: np.ndarray) -> np.ndarray:
    """Rotation about the z, y and x axes (in that order) as a 3x3 matrix acting on (z, y, x) vectors."""
    rz, ry, rx = angles_rad
    cz, sz, cy, sy, cx, sx = np.cos(rz), np.sin(rz), np.cos(ry), np.sin(ry), np.cos(rx), np.sin(rx)
    about_z = np.array([[1, 0, 0], [0, cz, -sz], [0, sz, cz]])  # turns the axial (y, x) plane
    about_y = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    about_x = np.array([[cx, -sx, 0], [sx, cx, 0], [0, 0, 1]])
    return about_z @ about_y @ about_x


def random_sampling_coordinates(
    source_shape: tuple[int, int, int],
    source_spacing_zyx: np.ndarray,
    out_shape: tuple[int, int, int],
    out_spacing_zyx: np.ndarray,
    rng: np.random.Generator,
    organ_blobs: list[tuple[np.ndarray, float]] = (),
    anatomy: AnatomySettings = AnatomySettings(),
    rotation_deg: tuple[float, float, float] = (8.0, 3.0, 3.0),
) -> np.ndarray:
    """Source voxel coordinates (3, z, y, x) for every output voxel of a random smooth transform.

    The output grid shares the source's centre and axes. ``organ_blobs`` lists (centre in mm from the
    source centre (z, y, x), radius mm) of organs to grow or shrink locally and, with ``anatomy.organ_shift_mm``, to move.
    """
    coarse_shape = tuple(int(np.ceil((n - 1) / CONTROL_STRIDE)) + 1 for n in out_shape)
    axes = [np.linspace(-(n - 1) / 2, (n - 1) / 2, m) * s for n, m, s in zip(out_shape, coarse_shape, out_spacing_zyx)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"))  # (3, cz, cy, cx) mm from the centre
    scale_range = anatomy.scale_range
    scale = rng.uniform(1 - scale_range, 1 + scale_range, 3)
    scale[1:] *= rng.uniform(1 - scale_range / 2, 1 + scale_range / 2)  # body habitus: wider or narrower axial plane
    matrix = _rotation(np.deg2rad(rng.uniform(-1, 1, 3) * np.asarray(rotation_deg))) / scale[:, None]
    moved = np.einsum("ij,j...->i...", matrix, points)
    moved += rng.uniform(-1, 1, 3)[:, None, None, None] * np.array([6.0, 6.0, 6.0])[:, None, None, None]
    for centre, radius in organ_blobs:
        factor = rng.uniform(-anatomy.organ_scale_range, anatomy.organ_scale_range)
        offset = moved - np.asarray(centre)[:, None, None, None]
        weight = np.exp(-(offset**2).sum(0) / (2 * radius**2))
        moved -= factor * weight * offset
        if anatomy.organ_shift_mm > 0:  # no draw otherwise: typical anatomies stay what their seeds gave before
            shift = rng.uniform(-1, 1, 3) * min(anatomy.organ_shift_mm, radius / 2)
            moved -= weight * shift[:, None, None, None]
    elastic_mm = anatomy.elastic_mm
    if elastic_mm > 0:
        sigma = max(1.0, 30.0 / (CONTROL_STRIDE * float(np.mean(out_spacing_zyx))))
        for axis in range(3):
            field = ndi.gaussian_filter(rng.standard_normal(coarse_shape), sigma, mode="nearest")
            moved[axis] += elastic_mm * field / max(float(field.std()), 1e-6)
    source_centre = (np.asarray(source_shape) - 1) / 2.0
    coarse_index = moved / np.asarray(source_spacing_zyx)[:, None, None, None] + source_centre[:, None, None, None]
    return upsample(coarse_index.astype(np.float32), out_shape)


def warp_labels(labels: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    """Nearest-neighbour resampling of a label map at ``coordinates`` (outside: 0)."""
    return ndi.map_coordinates(labels, coordinates, order=0, mode="constant", cval=0)
