"""Labels from the refine grid back onto the input grid: exact on the same grid, smoother on a finer one."""

import numpy as np

from dccseg.inference.restore import restore_labels
from dccseg.preprocess import resample, resample_like
from dccseg.volume import Volume

OBLIQUE = tuple(np.array([[0.96, -0.28, 0.0], [0.28, 0.96, 0.0], [0.0, 0.0, 1.0]]).ravel())


def _spheres(spacing: float, size: int) -> Volume:
    """Two touching balls (labels 6 and 1) on a cube of ``size`` voxels at ``spacing`` mm."""
    axis = (np.arange(size) + 0.5) * spacing - size * spacing / 2
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    labels = np.zeros((size, size, size), dtype=np.uint8)
    labels[(x + 6) ** 2 + y**2 + z**2 < 36] = 6
    labels[(x - 5) ** 2 + y**2 + z**2 < 20] = 1
    origin = (-size * spacing / 2 + spacing / 2,) * 3
    return Volume(labels, (spacing,) * 3, origin, OBLIQUE)


def _dice(a: np.ndarray, b: np.ndarray, label: int) -> float:
    return 2 * np.sum((a == label) & (b == label)) / (np.sum(a == label) + np.sum(b == label))


def test_same_grid_is_identity():
    labels = _spheres(1.0, 24)
    assert np.array_equal(restore_labels(labels, labels).array, labels.array)


def test_finer_grid_beats_nearest_neighbour():
    truth = _spheres(0.5, 64)
    coarse = resample(truth, (2.0, 2.0, 2.0), is_label=True)
    smooth = restore_labels(coarse, truth)
    nearest = resample_like(coarse, truth, is_label=True)
    assert smooth.same_grid(truth)
    for label in (1, 6):
        assert _dice(smooth.array, truth.array, label) > _dice(nearest.array, truth.array, label) + 0.01
        assert _dice(smooth.array, truth.array, label) > 0.85


def test_empty_labels_stay_empty():
    labels = _spheres(1.0, 16).with_array(np.zeros((16, 16, 16), dtype=np.uint8))
    assert not restore_labels(labels, _spheres(0.5, 32)).array.any()


def test_organ_at_the_scan_edge_keeps_the_last_slices():
    """A 20-slice 2 mm slab on a 3 mm grid: that grid's last centre lies 2 mm short of the slab's last slice."""
    slab = Volume(np.zeros((20, 8, 8), dtype=np.uint8), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
    slab.array[:, 2:6, 2:6] = 6
    on_grid = resample(slab, (1.0, 1.0, 3.0), is_label=True)
    assert on_grid.shape[0] == 13  # centres at 0..36 mm; the slab's last slice lies at 38 mm
    restored = restore_labels(on_grid, slab)
    assert np.array_equal(restored.array, slab.array)
    assert not restore_labels(on_grid.with_array(np.pad(on_grid.array[1:], ((0, 1), (0, 0), (0, 0)))), slab).array[-1].any()
