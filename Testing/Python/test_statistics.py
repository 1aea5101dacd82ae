"""Organ statistics agree with an independent numpy computation on the label map (to 0.1 %)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from builders import make_ct, oblique_direction
from dccseg.errors import DccsegError
from dccseg.io import read_image, read_labelmap
from dccseg.organs import ORGAN_BY_KEY, ORGANS
from dccseg.statistics import case_statistics

DATA = Path(__file__).resolve().parents[2] / "dccseg" / "data" / "totalseg_example"
README_VOXELS = {"spleen": 9677, "kidney_right": 6993, "kidney_left": 5144, "gallbladder": 1300, "liver": 41602, "stomach": 4977, "aorta": 1786,
                 "inferior_vena_cava": 2131, "portal_and_splenic_vein": 1037, "pancreas": 818, "adrenal_gland_right": 174, "adrenal_gland_left": 223}


@pytest.fixture(scope="module")
def real_case():
    ct = read_image(DATA / "example_ct.nii.gz")
    labels = read_labelmap(DATA / "example_ct_organs.nii.gz", reference=ct)
    return ct, labels, case_statistics(ct, labels, case="example_ct")


def face_eroded(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` whose six face neighbours are all in ``mask`` (outside the array counts as outside)."""
    padded = np.pad(mask, 1)
    core = padded.copy()
    for axis in range(3):
        for step in (1, -1):
            core &= np.roll(padded, step, axis=axis)
    return core[1:-1, 1:-1, 1:-1]


def test_volume_and_hu_match_numpy_on_the_real_ct(real_case):
    ct, labels, stats = real_case
    ml_per_voxel = np.prod(ct.spacing) / 1000.0
    assert stats["organs"]["esophagus"] == {"label": 5, "name": "esophagus", "present": False, "voxels": 0, "volume_ml": 0.0}
    for key, count in README_VOXELS.items():
        entry = stats["organs"][key]
        mask = labels.array == ORGAN_BY_KEY[key].label
        values = ct.array[mask].astype(np.float64)
        assert entry["voxels"] == count == mask.sum()
        assert entry["volume_ml"] == pytest.approx(count * ml_per_voxel, rel=1e-3)
        expected = {"mean": values.mean(), "median": np.median(values), "std": values.std(), "p5": np.percentile(values, 5), "p95": np.percentile(values, 95)}
        for name, value in expected.items():
            assert entry["hu"][name] == pytest.approx(value, rel=1e-3, abs=0.01), (key, name)
        core = face_eroded(mask)
        assert entry["core_voxels"] == core.sum()
        assert entry["hu_core"]["mean"] == pytest.approx(ct.array[core].astype(np.float64).mean(), rel=1e-3, abs=0.01), key


def test_the_spleen_is_about_260_ml_and_the_phase_is_non_contrast(real_case):
    _, _, stats = real_case
    assert stats["organs"]["spleen"]["volume_ml"] == pytest.approx(261.3, abs=0.1)
    assert stats["phase"]["guess"] == "non-contrast" and stats["phase"]["evidence"]["mean_hu"]["liver"] > 30
    assert stats["case"] == "example_ct" and stats["grid"]["voxel_ml"] == pytest.approx(0.027, rel=1e-3)


def test_extent_centroid_and_pieces_in_patient_coordinates_on_an_oblique_grid():
    ct = make_ct(shape=(9, 14, 12), spacing=(0.8, 1.3, 2.5), direction=oblique_direction())
    array = np.zeros(ct.shape, dtype=np.uint8)
    array[1:4, 2:6, 3:9] = ORGAN_BY_KEY["liver"].label
    array[6:8, 9:12, 3:5] = ORGAN_BY_KEY["liver"].label
    labels = ct.with_array(array)
    entry = case_statistics(ct, labels, [ORGAN_BY_KEY["liver"]])["organs"]["liver"]
    zyx = np.argwhere(array == ORGAN_BY_KEY["liver"].label)
    matrix = np.asarray(ct.direction).reshape(3, 3) @ np.diag(ct.spacing)
    points = np.array([np.asarray(ct.origin) + matrix @ (x, y, z) for z, y, x in zyx])
    assert entry["bbox_mm"]["min"] == pytest.approx(points.min(axis=0), abs=0.01)
    assert entry["bbox_mm"]["max"] == pytest.approx(points.max(axis=0), abs=0.01)
    assert entry["centroid_mm"] == pytest.approx(points.mean(axis=0), abs=0.01)
    assert entry["pieces"] == 2 and entry["largest_pieces_ml"] == pytest.approx([72 * 0.0026, 12 * 0.0026], rel=1e-3)
    assert entry["touches_scan_border"] is False


def test_label_map_on_another_grid_is_a_clear_error():
    ct = make_ct()
    shifted = make_ct(origin=(0.0, 0.0, 0.0)).with_array(np.zeros(ct.shape, dtype=np.uint8))
    with pytest.raises(DccsegError, match="different grids"):
        case_statistics(ct, shifted, ORGANS)
