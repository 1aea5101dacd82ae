"""Fields of view that real scans have: cut z ranges, liver-centred scans, thin slabs, small or off-centre in-plane views.

``choose_z_range`` picks the slices of a template to render; ``crop_in_plane`` cuts the rendered scan to a
display field of view (a smaller box, off-centre) and may blank the corners outside the reconstruction circle,
as scanners do. Every choice is drawn from the caller's generator, so a seed gives the same view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AIR_HU = -1024.0


@dataclass(frozen=True)
class FieldOfViewSettings:
    """Probabilities of each z mode (the rest: the whole abdomen) and the in-plane crop ranges (mm)."""

    cut_inside_organs: float = 0.2
    liver_centred: float = 0.15
    slab: float = 0.15
    slab_mm: tuple[float, float] = (30.0, 120.0)
    crop_in_plane: float = 0.3
    crop_mm: tuple[float, float] = (180.0, 400.0)
    off_centre_mm: float = 60.0
    circle: float = 0.25


def choose_z_range(n_slices: int, organ_z: tuple[int, int], liver_z: tuple[int, int] | None, slice_mm: float,
                   rng: np.random.Generator, settings: FieldOfViewSettings = FieldOfViewSettings()) -> slice:
    """Slices to render: the abdomen (organs' z range, less up to a tenth at each end), or a cut, liver-centred or slab view."""
    low, high = organ_z
    extent = max(high - low, 2)
    mode = rng.uniform()
    if mode < settings.cut_inside_organs:
        z0 = low + int(rng.uniform(0.0, 0.4) * extent) if rng.uniform() < 0.6 else int(rng.integers(0, low + 1))
        z1 = high - int(rng.uniform(0.0, 0.4) * extent) if rng.uniform() < 0.6 else int(rng.integers(high, n_slices + 1))
    elif mode < settings.cut_inside_organs + settings.liver_centred and liver_z is not None:
        z0 = liver_z[0] - int(rng.uniform(0.0, 30.0) / slice_mm)
        z1 = liver_z[1] + int(rng.uniform(0.0, 50.0) / slice_mm)
    elif mode < settings.cut_inside_organs + settings.liver_centred + settings.slab:
        thickness = max(int(rng.uniform(*settings.slab_mm) / slice_mm), 3)
        centre = int(rng.integers(low, high))
        z0 = centre - thickness // 2
        z1 = z0 + thickness
    else:
        cut = int(0.1 * extent)
        z0 = int(rng.integers(0, low + cut + 1))
        z1 = int(rng.integers(max(high - cut, z0 + 2), n_slices + 1))
    z0 = int(np.clip(z0, 0, n_slices - 2))
    return slice(z0, int(np.clip(z1, z0 + 2, n_slices)))


def crop_in_plane(image: np.ndarray, labels: np.ndarray, spacing_zyx: np.ndarray, rng: np.random.Generator,
                  settings: FieldOfViewSettings = FieldOfViewSettings()) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Cut (image, labels) to a display field of view; returns them and the (y, x) index of the new first voxel.

    Labels outside the reconstruction circle are cleared with the image: what the scan does not show is not an organ.
    """
    start = (0, 0)
    if rng.uniform() < settings.crop_in_plane:
        side_mm = rng.uniform(*settings.crop_mm)
        sides = [min(n, max(8, int(side_mm / s))) for n, s in zip(image.shape[1:], spacing_zyx[1:])]
        centre = [n / 2 + rng.uniform(-1, 1) * settings.off_centre_mm / s for n, s in zip(image.shape[1:], spacing_zyx[1:])]
        start = tuple(int(np.clip(c - k / 2, 0, n - k)) for c, k, n in zip(centre, sides, image.shape[1:]))
        box = (slice(None), slice(start[0], start[0] + sides[0]), slice(start[1], start[1] + sides[1]))
        image, labels = image[box], labels[box]
    if rng.uniform() < settings.circle:
        ny, nx = image.shape[1:]
        y, x = np.ogrid[:ny, :nx]
        radius = min(ny, nx) / 2.0
        outside = ((y - (ny - 1) / 2) ** 2 + (x - (nx - 1) / 2) ** 2) > radius**2
        image = np.where(outside[None], np.float32(AIR_HU), image)
        labels = np.where(outside[None], np.uint8(0), labels)
    return np.ascontiguousarray(image), np.ascontiguousarray(labels), start
