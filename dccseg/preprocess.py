"""CT preprocessing (method.md §1.1): intensity normalisation, resampling, canonical orientation.

Every geometric step has an exact inverse so that a result computed on a working grid lands
back on the input's own grid: ``resample_like`` maps onto any reference grid, and
``Canonicalisation.restore`` undoes ``to_canonical`` bit for bit.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .volume import Volume

INTENSITY_MODES = ("percentile", "fixed")
SLAB_VOXELS = 1 << 26
"""Inputs with more voxels than this (64 Mi, 128 MiB of int16) are resampled in slabs, copying only a crop at a time."""
PERCENTILE_SAMPLES = 1 << 22
"""Volumes with more voxels than this get their percentiles from a regular subsample (exact below it)."""


@dataclass(frozen=True)
class IntensityConfig:
    """How HU become network input: window, then per-volume percentile or fixed min-max, then [-1, 1]."""

    window: tuple[float, float] = (-175.0, 250.0)
    percentiles: tuple[float, float] = (1.0, 99.0)
    mode: str = "percentile"

    def __post_init__(self) -> None:
        if self.mode not in INTENSITY_MODES:
            raise ValueError(f"intensity mode must be one of {INTENSITY_MODES}, not {self.mode!r}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["window"] = list(self.window)
        data["percentiles"] = list(self.percentiles)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IntensityConfig":
        return cls(
            window=tuple(float(v) for v in data.get("window", cls.window)),  # type: ignore[arg-type]
            percentiles=tuple(float(v) for v in data.get("percentiles", cls.percentiles)),  # type: ignore[arg-type]
            mode=str(data.get("mode", cls.mode)),
        )


def intensity_bounds(array_hu: np.ndarray, config: IntensityConfig = IntensityConfig()) -> tuple[float, float]:
    """The (low, high) HU that map to -1 and 1: the window, or the windowed volume's percentiles.

    Large volumes use a regular deterministic subsample of at most ``PERCENTILE_SAMPLES`` voxels.
    """
    low, high = config.window
    if config.mode == "fixed":
        return float(low), float(high)
    flat = array_hu.reshape(-1)
    step = max(1, flat.size // PERCENTILE_SAMPLES)
    sample = np.clip(flat[::step].astype(np.float32), low, high)
    p_low, p_high = np.percentile(sample, config.percentiles)
    if p_high - p_low < 1e-3:
        return float(low), float(high)
    return float(p_low), float(p_high)


def normalize_ct(
    array_hu: np.ndarray,
    config: IntensityConfig = IntensityConfig(),
    bounds: tuple[float, float] | None = None,
) -> np.ndarray:
    """Window, scale to [0, 1] by ``bounds`` (default: ``intensity_bounds``), then map to [-1, 1] (float32).

    Pass the ``bounds`` of the whole volume to normalise crops or resampled copies consistently.
    """
    low, high = bounds if bounds is not None else intensity_bounds(array_hu, config)
    out = np.clip(array_hu.astype(np.float32, copy=True), config.window[0], config.window[1])
    scale = np.float32(2.0 / (high - low))
    out -= np.float32(low)
    out *= scale
    out -= np.float32(1.0)
    np.clip(out, -1.0, 1.0, out=out)
    return out


def resample(volume: Volume, spacing: tuple[float, float, float], is_label: bool) -> Volume:
    """Resample to ``spacing`` (x, y, z mm) keeping origin and direction and about the same extent.

    The size along each axis is ``n * old / new`` rounded half up (at least 1). Images use linear
    interpolation, labels nearest neighbour.
    """
    new_spacing = tuple(float(s) for s in spacing)
    size = tuple(max(1, int(np.floor(n * old / new + 0.5))) for n, old, new in zip(volume.size_xyz, volume.spacing, new_spacing))
    return _resample_to_grid(volume, size, new_spacing, volume.origin, volume.direction, is_label)


def resample_like(volume: Volume, reference: Volume, is_label: bool) -> Volume:
    """Resample onto ``reference``'s exact grid (size, spacing, origin, direction)."""
    return _resample_to_grid(volume, reference.size_xyz, reference.spacing, reference.origin, reference.direction, is_label)


def attention_labels(prior: Volume, grid: Volume) -> Volume:
    """Coarse-grid labels ``prior`` on ``grid`` by nearest neighbour, for the refine stage's attention channel.

    ``resample`` rounds a grid's size, so the coarse grid's last voxel can end short of a finer grid's last slices;
    there the labels of ``prior``'s edge voxels carry on (up to one coarse voxel past it) instead of falling outside.
    """
    padded = np.pad(prior.array, 1, mode="edge")
    return resample_like(Volume(padded, prior.spacing, _voxel_point(prior, (-1, -1, -1)), prior.direction), grid, is_label=True)


def _voxel_point(volume: Volume, index_xyz) -> tuple[float, float, float]:
    """The physical point (x, y, z mm) of voxel index ``index_xyz`` of ``volume`` (it may lie outside the array)."""
    point = np.asarray(volume.origin) + np.asarray(volume.direction, dtype=np.float64).reshape(3, 3) @ (np.asarray(volume.spacing) * np.asarray(index_xyz, dtype=np.float64))
    return tuple(float(v) for v in point)


def _resample_to_grid(volume: Volume, size, spacing, origin, direction, is_label: bool) -> Volume:
    same = tuple(size) == volume.size_xyz and np.allclose(spacing, volume.spacing, atol=0, rtol=1e-9) and np.allclose(origin, volume.origin, atol=1e-9) and np.allclose(direction, volume.direction, atol=1e-12)
    if same:
        return Volume(volume.array, tuple(spacing), tuple(origin), tuple(direction))
    default = 0.0 if is_label else float(volume.array.min())
    if volume.array.size <= SLAB_VOXELS:
        return Volume.from_sitk(_resample_image(volume, size, spacing, origin, direction, is_label, default))
    return _resample_in_slabs(volume, size, spacing, origin, direction, is_label, default)


def _resample_image(volume: Volume, size, spacing, origin, direction, is_label: bool, default: float):
    import SimpleITK as sitk  # loaded on first use: training on a GPU machine runs without it

    image = volume.to_sitk()
    if not is_label and image.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        image = sitk.Cast(image, sitk.sitkFloat32)
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([int(v) for v in size])
    resampler.SetOutputSpacing([float(v) for v in spacing])
    resampler.SetOutputOrigin([float(v) for v in origin])
    resampler.SetOutputDirection([float(v) for v in direction])
    resampler.SetInterpolator(sitk.sitkNearestNeighbor if is_label else sitk.sitkLinear)
    resampler.SetDefaultPixelValue(default)
    resampler.SetOutputPixelType(image.GetPixelID())
    return resampler.Execute(image)


def _index_box(volume: Volume, points: np.ndarray, margin: int = 2) -> tuple[slice, slice, slice] | None:
    """The (z, y, x) slices of ``volume`` around the continuous indices of physical ``points``, widened by ``margin``."""
    axes = np.asarray(volume.direction).reshape(3, 3) * np.asarray(volume.spacing)
    index = np.linalg.solve(axes, (points - np.asarray(volume.origin)).T).T
    low = np.maximum(np.floor(index.min(axis=0)).astype(int) - margin, 0)
    high = np.minimum(np.ceil(index.max(axis=0)).astype(int) + margin + 1, volume.size_xyz)
    if np.any(low >= high):
        return None
    return tuple(slice(int(lo), int(hi)) for lo, hi in zip(low[::-1], high[::-1]))  # type: ignore[return-value]


def _resample_in_slabs(volume: Volume, size, spacing, origin, direction, is_label: bool, default: float) -> Volume:
    """The same result as one resampling, computed slab by slab of output slices so that only a crop of the input is copied."""
    size, spacing = [int(v) for v in size], np.asarray(spacing, dtype=np.float64)
    axes = np.asarray(direction, dtype=np.float64).reshape(3, 3) * spacing
    dtype = volume.array.dtype if is_label else np.float32
    out = np.full(size[::-1], default, dtype=dtype)
    per_slab = max(1, int(np.ceil(size[2] * SLAB_VOXELS / volume.array.size)))
    for first in range(0, size[2], per_slab):
        last = min(first + per_slab, size[2])
        corners = np.array([[i, j, k] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (first, last - 1)], dtype=np.float64)
        box = _index_box(volume, np.asarray(origin) + corners @ axes.T)
        if box is None:
            continue
        crop = Volume(volume.array[box], volume.spacing, _voxel_point(volume, [b.start for b in box[::-1]]), volume.direction)
        slab_origin = np.asarray(origin) + axes[:, 2] * first
        part = Volume.from_sitk(_resample_image(crop, (size[0], size[1], last - first), spacing, slab_origin, direction, is_label, default))
        out[first:last] = part.array
    return Volume(out, tuple(float(v) for v in spacing), tuple(float(v) for v in origin), tuple(float(v) for v in direction))


@dataclass(frozen=True)
class Canonicalisation:
    """The axis permutation and flips that made a volume canonical, and the geometry to restore.

    ``axes[i]`` is the input image axis (0=x, 1=y, 2=z) that became canonical axis ``i``;
    ``flips[i]`` says whether it runs in the opposite direction.
    """

    axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @property
    def numpy_axes(self) -> tuple[int, int, int]:
        """``np.transpose`` order taking the input (z, y, x) array to the canonical one."""
        return tuple(2 - self.axes[2 - j] for j in range(3))  # type: ignore[return-value]

    def apply(self, array: np.ndarray) -> np.ndarray:
        """Reorder an array on the input grid into canonical order (a view, no copy)."""
        out = np.transpose(array, self.numpy_axes)
        flip_axes = tuple(2 - i for i in range(3) if self.flips[i])
        return np.flip(out, flip_axes) if flip_axes else out

    def restore_array(self, array: np.ndarray) -> np.ndarray:
        """Undo ``apply``: a canonical-order array back in the input's (z, y, x) order (contiguous)."""
        flip_axes = tuple(2 - i for i in range(3) if self.flips[i])
        out = np.flip(array, flip_axes) if flip_axes else array
        return np.ascontiguousarray(np.transpose(out, np.argsort(self.numpy_axes)))

    def restore(self, volume: Volume) -> Volume:
        """Put a volume on the canonical grid back onto the original grid, exactly."""
        expected = tuple(self.shape[a] for a in self.numpy_axes)
        if volume.shape != expected:
            raise ValueError(f"volume shape {volume.shape} is not the canonical shape {expected}")
        return Volume(self.restore_array(volume.array), self.spacing, self.origin, self.direction)


def to_canonical(volume: Volume, copy: bool = True) -> tuple[Volume, Canonicalisation]:
    """Permute and flip array axes so that the direction is closest to identity (LPS, axial z, y, x).

    Only the voxel order changes (no interpolation); an oblique direction keeps its residual rotation.
    With ``copy=False`` the canonical array is a strided view of the input (no memory; fine for resampling).
    """
    direction = np.asarray(volume.direction, dtype=np.float64).reshape(3, 3)
    axes = max(itertools.permutations(range(3)), key=lambda p: sum(abs(direction[i, p[i]]) for i in range(3)))
    flips = tuple(bool(direction[i, axes[i]] < 0) for i in range(3))
    size = volume.size_xyz
    new_direction = np.empty((3, 3))
    origin = np.asarray(volume.origin, dtype=np.float64)
    for i, (axis, flip) in enumerate(zip(axes, flips)):
        column = direction[:, axis]
        new_direction[:, i] = -column if flip else column
        if flip:
            origin = origin + column * volume.spacing[axis] * (size[axis] - 1)
    transform = Canonicalisation(tuple(axes), flips, volume.shape, volume.spacing, volume.origin, volume.direction)  # type: ignore[arg-type]
    canonical = Volume(
        array=np.ascontiguousarray(transform.apply(volume.array)) if copy else transform.apply(volume.array),
        spacing=tuple(volume.spacing[a] for a in axes),  # type: ignore[arg-type]
        origin=tuple(float(v) for v in origin),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in new_direction.reshape(-1)),
    )
    return canonical, transform
