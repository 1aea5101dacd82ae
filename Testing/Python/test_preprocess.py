"""Preprocessing: intensity normalisation, resampling round trips, exact canonical orientation."""

import itertools

import numpy as np
import pytest
import SimpleITK as sitk

from dccseg import preprocess
from dccseg.preprocess import IntensityConfig, attention_labels, intensity_bounds, normalize_ct, resample, resample_like, to_canonical
from dccseg.volume import Volume


def _signed_permutations():
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = np.zeros((3, 3))
            for column, (row, sign) in enumerate(zip(perm, signs)):
                matrix[row, column] = sign
            yield matrix


def _volume(direction: np.ndarray, shape=(5, 6, 7), seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    return Volume(rng.integers(-1000, 1000, size=shape).astype(np.int16), (0.7, 0.9, 2.5), (10.0, -20.0, 30.0), tuple(direction.reshape(-1)))


def _index_to_point(volume: Volume, index_xyz) -> np.ndarray:
    d = np.asarray(volume.direction).reshape(3, 3)
    return np.asarray(volume.origin) + d @ (np.asarray(index_xyz) * np.asarray(volume.spacing))


@pytest.mark.parametrize("direction", list(_signed_permutations()), ids=lambda m: "".join(f"{v:+.0f}" for v in m.reshape(-1)))
def test_canonical_round_trip_is_exact_for_all_48_orientations(direction):
    volume = _volume(direction)
    canonical, transform = to_canonical(volume)
    assert np.allclose(np.asarray(canonical.direction).reshape(3, 3), np.eye(3))
    # the same voxel sits at the same physical point on both grids
    z, y, x = 1, 2, 3
    value = volume.array[z, y, x]
    point = _index_to_point(volume, (x, y, z))
    cidx = np.linalg.solve(np.asarray(canonical.direction).reshape(3, 3), point - np.asarray(canonical.origin)) / np.asarray(canonical.spacing)
    ci = np.rint(cidx).astype(int)
    assert np.allclose(cidx, ci, atol=1e-9)
    assert canonical.array[ci[2], ci[1], ci[0]] == value
    restored = transform.restore(canonical)
    assert restored.array.dtype == volume.array.dtype
    assert np.array_equal(restored.array, volume.array)
    assert restored.spacing == volume.spacing and restored.origin == volume.origin and restored.direction == volume.direction


def test_oblique_direction_keeps_its_residual_rotation():
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    flip_swap = np.array([[0, -1, 0], [1, 0, 0], [0, 0, -1]], dtype=float)
    volume = _volume(rotation @ flip_swap)
    canonical, transform = to_canonical(volume)
    assert np.allclose(np.asarray(canonical.direction).reshape(3, 3), rotation)
    assert np.array_equal(transform.restore(canonical).array, volume.array)


def test_sitk_agrees_with_canonical_geometry():
    direction = np.array([[0, 0, -1], [-1, 0, 0], [0, 1, 0]], dtype=float)
    volume = _volume(direction)
    canonical, _ = to_canonical(volume)
    oriented = sitk.DICOMOrient(volume.to_sitk(), "LPS")
    assert np.array_equal(sitk.GetArrayFromImage(oriented), canonical.array)
    assert np.allclose(oriented.GetOrigin(), canonical.origin)


def test_resample_like_returns_to_the_original_grid():
    direction = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], dtype=float)
    volume = Volume(np.random.default_rng(1).normal(size=(9, 10, 11)).astype(np.float32), (0.8, 0.8, 1.5), (1.0, 2.0, 3.0), tuple(direction.reshape(-1)))
    coarse = resample(volume, (2.0, 2.0, 3.0), is_label=False)
    assert coarse.size_xyz == (4, 4, 5)  # 11*0.8/2=4.4, 10*0.8/2=4, 9*1.5/3=4.5 rounded half up
    assert coarse.origin == volume.origin and coarse.direction == volume.direction
    back = resample_like(coarse, volume, is_label=False)
    assert back.same_grid(volume, tolerance=0) and back.array.dtype == np.float32


def test_label_upsampling_by_an_integer_factor_round_trips():
    labels = Volume(np.random.default_rng(2).integers(0, 14, size=(4, 5, 6)).astype(np.uint8), (3.0, 3.0, 3.0), (0.0, 0.0, 0.0), tuple(np.eye(3).reshape(-1)))
    fine = resample(labels, (1.0, 1.5, 3.0), is_label=True)
    assert fine.size_xyz == (18, 10, 4) and fine.array.dtype == np.uint8
    assert set(np.unique(fine.array)) <= set(np.unique(labels.array))
    assert np.array_equal(resample_like(fine, labels, is_label=True).array, labels.array)


@pytest.mark.parametrize("flip", [1.0, -1.0])
def test_attention_labels_reach_the_last_slices_of_a_finer_grid(flip):
    """37 slices of 3 mm on the 5 mm coarse grid: 22 centres, the last 2.5 mm short of the scan's last slice."""
    direction = tuple(np.diag([1.0, flip, flip]).ravel())
    scan = Volume(np.zeros((37, 6, 6), dtype=np.uint8), (1.0, 1.0, 3.0), (0.0, 0.0, 0.0), direction)
    scan.array[:, 1:5, 1:5] = 8
    coarse = resample(scan, (1.0, 1.0, 5.0), is_label=True)
    assert coarse.shape[0] == 22 and not resample_like(coarse, scan, is_label=True).array[-1].any()
    attention = attention_labels(coarse, scan)
    assert attention.same_grid(scan) and np.array_equal(attention.array, scan.array)


def test_linear_resampling_of_a_ramp_is_exact_inside():
    ramp = np.broadcast_to(np.arange(8, dtype=np.float32) * 10.0, (3, 4, 8)).copy()
    volume = Volume(ramp, (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).reshape(-1)))
    fine = resample(volume, (1.0, 2.0, 2.0), is_label=False)
    assert np.allclose(fine.array[0, 0, :15], np.arange(15) * 5.0)


def test_normalize_fixed_maps_window_to_minus_one_one():
    hu = np.array([-1000, -175, 37.5, 250, 3000], dtype=np.float32)
    out = normalize_ct(hu, IntensityConfig(mode="fixed"))
    assert out.dtype == np.float32
    assert np.allclose(out, [-1, -1, 0, 1, 1], atol=1e-6)


def test_normalize_percentile_uses_windowed_percentiles():
    hu = np.linspace(-100, 100, 10001).astype(np.float32)  # inside the window: percentiles at -98 and 98
    assert np.allclose(intensity_bounds(hu), (-98.0, 98.0), atol=1e-3)
    out = normalize_ct(hu)
    assert out.min() == -1.0 and out.max() == 1.0
    assert np.isclose(out[5000], 0.0, atol=1e-6)
    assert np.isclose(out[np.argmin(np.abs(hu - 49.0))], 0.5, atol=1e-3)


def test_normalize_percentile_with_given_bounds_and_constant_volume():
    hu = np.full((4, 4), 40.0, dtype=np.float32)
    assert intensity_bounds(hu) == (-175.0, 250.0)  # degenerate percentiles fall back to the window
    assert np.allclose(normalize_ct(hu, bounds=(0.0, 80.0)), 0.0)


def test_intensity_config_dict_round_trip():
    config = IntensityConfig(window=(-100.0, 200.0), percentiles=(0.5, 99.5), mode="fixed")
    assert IntensityConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError):
        IntensityConfig(mode="zscore")


@pytest.mark.parametrize("direction", [(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0), (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0), (0, 0, 1.0, 1.0, 0, 0, 0, 1.0, 0)])
def test_slab_resampling_equals_one_resampling(monkeypatch, direction):
    rng = np.random.default_rng(3)
    image = Volume(rng.integers(-1000, 1000, (40, 30, 20)).astype(np.int16), (0.8, 0.9, 1.1), (5.0, -3.0, 7.0), direction)
    labels = image.with_array(rng.integers(0, 14, image.shape).astype(np.uint8))
    canonical, _ = to_canonical(image, copy=False)
    whole = [resample(canonical, (2.3, 1.7, 3.1), is_label=False), resample(labels, (0.5, 1.3, 2.2), is_label=True)]
    monkeypatch.setattr(preprocess, "SLAB_VOXELS", 2000)
    slabs = [resample(canonical, (2.3, 1.7, 3.1), is_label=False), resample(labels, (0.5, 1.3, 2.2), is_label=True)]
    for one, many in zip(whole, slabs):
        assert many.same_grid(one) and many.array.dtype == one.array.dtype
        np.testing.assert_allclose(many.array, one.array, rtol=0, atol=1e-3)
