"""A fast analytic abdomen: body, fat, muscle, spine, ribs and the 13 organs, in any contrast phase.

Shapes are placed in LPS patient coordinates (+x is the patient's left, +y posterior, +z superior)
around the grid centre, so organs land on the correct side whatever the direction matrix.
Positions and sizes are jittered per seed; the same seed gives identical images.
"""

from __future__ import annotations

import numpy as np

from ..organs import ORGAN_BY_KEY
from ..volume import Volume
from .geometry import IDENTITY, centred_origin, physical_grid
from .hu_table import TISSUE_INDEX, sample_scan
from .render import add_gas, render_ct, smooth_noise

FIELD_OF_VIEW_MM = (380.0, 300.0, 260.0)


class _Painter:
    """Paints tissues and organ labels in order; later shapes overwrite earlier ones."""

    def __init__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> None:
        self.x, self.y, self.z = x, y, z
        self.tissue = np.full(x.shape, TISSUE_INDEX["air"], dtype=np.uint8)
        self.label = np.zeros(x.shape, dtype=np.uint8)

    def paint(self, mask: np.ndarray, tissue: str, organ: str | None = None) -> None:
        self.tissue[mask] = TISSUE_INDEX[tissue]
        self.label[mask] = ORGAN_BY_KEY[organ].label if organ else 0

    def ellipsoid(self, centre, semi) -> np.ndarray:
        (cx, cy, cz), (a, b, c) = centre, semi
        return ((self.x - cx) / a) ** 2 + ((self.y - cy) / b) ** 2 + ((self.z - cz) / c) ** 2 <= 1.0

    def tube(self, points, radii) -> np.ndarray:
        """Union of capsules along a polyline, the radius varying linearly along each segment."""
        mask = np.zeros(self.x.shape, dtype=bool)
        for (p, q), (r0, r1) in zip(zip(points[:-1], points[1:]), zip(radii[:-1], radii[1:])):
            p, q = np.asarray(p, np.float32), np.asarray(q, np.float32)
            d = q - p
            t = ((self.x - p[0]) * d[0] + (self.y - p[1]) * d[1] + (self.z - p[2]) * d[2]) / max(float(d @ d), 1e-6)
            t = np.clip(t, 0.0, 1.0)
            dist2 = (self.x - p[0] - t * d[0]) ** 2 + (self.y - p[1] - t * d[1]) ** 2 + (self.z - p[2] - t * d[2]) ** 2
            mask |= dist2 <= (r0 + t * (r1 - r0)) ** 2
        return mask


def procedural_anatomy(
    shape: tuple[int, int, int] = (64, 64, 64),
    spacing: tuple[float, float, float] | None = None,
    seed: int = 0,
    direction: tuple[float, ...] = IDENTITY,
    origin: tuple[float, float, float] | None = None,
) -> tuple[Volume, Volume]:
    """The phantom's anatomy without HU: (tissue map indexing ``TISSUES``, organ labels 1..13)."""
    rng = np.random.default_rng([seed, 1])
    if spacing is None:
        spacing = tuple(fov / n for fov, n in zip(FIELD_OF_VIEW_MM, shape[::-1]))
    if origin is None:
        origin = centred_origin(shape, spacing, direction)
    painter = _Painter(*physical_grid(shape, spacing, origin, direction))
    _paint_abdomen(painter, rng)
    tissue = add_gas(painter.tissue, rng, rng.uniform(0.0, 0.35), sigma_vox=1.0)
    geometry = dict(spacing=tuple(float(s) for s in spacing), origin=tuple(float(o) for o in origin), direction=tuple(float(d) for d in direction))
    return Volume(tissue, **geometry), Volume(painter.label, **geometry)


def procedural_phantom(
    shape: tuple[int, int, int] = (64, 64, 64),
    spacing: tuple[float, float, float] | None = None,
    phase: str = "portal-venous",
    seed: int = 0,
    direction: tuple[float, ...] = IDENTITY,
    origin: tuple[float, float, float] | None = None,
    noise_sd: float | None = None,
) -> tuple[Volume, Volume]:
    """Render an analytic abdomen of ``shape`` (z, y, x) in ``phase``; returns (CT in HU, organ labels 1..13).

    ``spacing`` (x, y, z mm) defaults to covering a 380 x 300 x 260 mm field of view; ``origin``
    defaults to centring the grid on the body. ``noise_sd`` None draws the scanner noise at random.
    """
    tissue, labels = procedural_anatomy(shape, spacing, seed, direction, origin)
    rng = np.random.default_rng([seed, 2])
    ct = render_ct(tissue.array, sample_scan(phase, rng), tuple(tissue.spacing[::-1]), rng, noise_sd=noise_sd)
    return tissue.with_array(ct), labels


def _paint_abdomen(p: _Painter, rng: np.random.Generator) -> None:
    sx, sy = rng.uniform(0.88, 1.12, 2)
    dz = rng.uniform(-15.0, 15.0)

    def at(x: float, y: float, z: float, jitter: float = 6.0) -> tuple[float, float, float]:
        jx, jy, jz = rng.uniform(-jitter, jitter, 3)
        return (x * sx + jx, y * sy + jy, z + dz + jz)

    def size(a: float, b: float, c: float) -> tuple[float, float, float]:
        k = rng.uniform(0.88, 1.12)
        return (a * k * sx, b * k * sy, c * k)

    a, b = 150.0 * sx, 110.0 * sy
    fat = rng.uniform(8.0, 35.0)
    wall = rng.uniform(7.0, 14.0)
    x, y, z = p.x, p.y, p.z

    def body_ellipse(shrink: float) -> np.ndarray:
        return (x / (a - shrink)) ** 2 + (y / (b - shrink)) ** 2 <= 1.0

    p.paint(body_ellipse(0.0), "fat")
    p.paint(body_ellipse(fat), "muscle")
    cavity = body_ellipse(fat + wall)
    p.paint(cavity, "fat")
    bowel = smooth_noise(x.shape, 1.2, rng)
    anterior = cavity & (y < 20 * sy)
    p.paint(anterior & (bowel > 0.0), "bowel_wall")
    p.paint(anterior & (bowel > 0.45), "bowel_contents")
    for side in (-1, 1):
        p.paint(p.ellipsoid((side * 38 * sx, 88 * sy, 0), (28 * sx, 20 * sy, 1e4)), "muscle")
        p.paint(p.ellipsoid((side * 42 * sx, 52 * sy, -130 + dz), (20 * sx, 18 * sy, 110)), "muscle")
        p.paint(p.ellipsoid((side * 85 * sx, 40 * sy, 150 + dz), (70 * sx, 75 * sy, 75)), "lung")
    rib_band = np.cos(2 * np.pi * (z - dz) / 28.0) > 0.55
    ring = body_ellipse(fat + 0.4 * wall) & ~body_ellipse(fat + wall)
    p.paint(ring & rib_band & (z > -30 + dz) & (y < 55 * sy), "bone_cortical")

    p.paint(p.ellipsoid(at(-65, 5, 45), size(80, 72, 70)) | p.ellipsoid(at(0, -35, 65), size(55, 33, 35)), "liver", "liver")
    p.paint(p.ellipsoid(at(-50, -45, -5), size(16, 16, 30)), "gallbladder", "gallbladder")
    p.paint(p.ellipsoid(at(92, 45, 55), size(28, 45, 48)), "spleen", "spleen")
    for key, side, height in (("kidney_right", -1, -15), ("kidney_left", 1, 0)):
        centre, semi = at(side * 66, 55, height), size(27, 24, 52)
        p.paint(p.ellipsoid(centre, semi), "kidney_cortex", key)
        inner = tuple(s - rng.uniform(6.0, 9.0) for s in semi)
        p.paint(p.ellipsoid(centre, inner), "kidney_medulla", key)
    p.paint(p.ellipsoid(at(-40, 42, 62, 3), size(7, 14, 17)), "adrenal", "adrenal_gland_right")
    p.paint(p.ellipsoid(at(40, 40, 50, 3), size(7, 14, 17)), "adrenal", "adrenal_gland_left")
    p.paint(p.tube([at(5, 26, 135, 2), at(15, 15, 92, 2), at(30, -8, 76, 2)], [8, 8, 8]), "esophagus", "esophagus")
    stomach_c, stomach_s = at(45, -25, 60), size(45, 35, 52)
    p.paint(p.ellipsoid(stomach_c, stomach_s), "stomach_wall", "stomach")
    p.paint(p.ellipsoid(stomach_c, tuple(s - rng.uniform(4.0, 7.0) for s in stomach_s)), "stomach_contents", "stomach")
    confluence = at(0, 5, 5, 4)
    p.paint(p.tube([at(-15, -8, -5, 4), at(20, 4, 10, 4), at(70, 22, 30, 4)], [15, 11, 10]), "pancreas", "pancreas")
    vein = p.tube([confluence, at(-35, 0, 30, 3), at(-55, 5, 42, 3)], [7, 7, 6]) | p.tube([confluence, at(40, 18, 15, 3), at(82, 35, 32, 3)], [5, 5, 5])
    p.paint(vein, "portal_vein", "portal_and_splenic_vein")
    p.paint(p.tube([at(-25, 25, -140, 3), at(-25, 25, 78, 3)], [11, 12]), "ivc", "inferior_vena_cava")
    p.paint(p.tube([at(8, 25, -140, 2), at(10, 25, 140, 2)], [10, 11]), "aorta", "aorta")
    spine_y = 62 * sy
    vertebra = ((x / 19) ** 2 + ((y - spine_y) / 17) ** 2 <= 1.0) | ((x / 24) ** 2 + ((y - spine_y - 30) / 10) ** 2 <= 1.0)
    p.paint(vertebra, "bone_cortical")
    p.paint(vertebra & ((x / 15) ** 2 + ((y - spine_y) / 13) ** 2 <= 1.0), "bone_cancellous")
    p.paint(vertebra & (np.cos(2 * np.pi * (z - dz) / 34.0) > 0.85), "soft_tissue")
    p.paint((x / 8) ** 2 + ((y - spine_y - 22) / 7) ** 2 <= 1.0, "soft_tissue")
