"""Physical (LPS) coordinates of voxel grids, and default centred grids."""

from __future__ import annotations

import numpy as np

IDENTITY: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def centred_origin(shape_zyx: tuple[int, int, int], spacing: tuple[float, float, float], direction: tuple[float, ...]) -> tuple[float, float, float]:
    """The origin that puts the grid's centre at physical (0, 0, 0)."""
    size_xyz = np.array(shape_zyx[::-1], dtype=np.float64)
    half_extent = (size_xyz - 1) * np.asarray(spacing) / 2.0
    return tuple(float(v) for v in -(np.asarray(direction).reshape(3, 3) @ half_extent))


def physical_grid(
    shape_zyx: tuple[int, int, int], spacing: tuple[float, float, float], origin: tuple[float, float, float], direction: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPS coordinates (x, y, z) in mm of every voxel, each as a (z, y, x) float32 array."""
    matrix = np.asarray(direction, dtype=np.float64).reshape(3, 3) * np.asarray(spacing)[None, :]
    k, j, i = (np.arange(n, dtype=np.float32) for n in shape_zyx)
    coords = []
    for row in range(3):
        a, b, c = (np.float32(v) for v in matrix[row])
        coords.append(np.float32(origin[row]) + a * i[None, None, :] + b * j[None, :, None] + c * k[:, None, None])
    return tuple(np.broadcast_to(c, shape_zyx) for c in coords)  # type: ignore[return-value]
