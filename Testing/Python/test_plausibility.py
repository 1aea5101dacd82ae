"""Plausibility flags stay silent on the bundled real CT's reference labels and fire on constructed errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from dccseg.io import read_image, read_labelmap
from dccseg.organs import ORGAN_BY_KEY
from dccseg.plausibility import check_case
from dccseg.statistics import case_statistics, index_to_lps

DATA = Path(__file__).resolve().parents[2] / "dccseg" / "data" / "totalseg_example"


@pytest.fixture(scope="module")
def real():
    ct = read_image(DATA / "example_ct.nii.gz")
    return ct, read_labelmap(DATA / "example_ct_organs.nii.gz", reference=ct)


def flags_for(ct, array) -> set[tuple[str, str]]:
    return {(f["organ"], f["check"]) for f in check_case(case_statistics(ct, ct.with_array(array)))}


def organ(key: str) -> int:
    return ORGAN_BY_KEY[key].label


def test_silent_on_the_real_reference_labels(real):
    ct, labels = real
    assert check_case(case_statistics(ct, labels)) == []


@pytest.mark.parametrize("key, companion", [("kidney_left", "kidney_right"), ("liver", "gallbladder"), ("adrenal_gland_right", "adrenal_gland_left")])
def test_a_removed_organ_is_flagged_missing(real, key, companion):
    ct, labels = real
    array = labels.array.copy()
    array[array == organ(key)] = 0
    flags = check_case(case_statistics(ct, ct.with_array(array)))
    assert [(f["organ"], f["check"]) for f in flags] == [(key, "missing")]
    assert ORGAN_BY_KEY[companion].name in flags[0]["message"]


def mirrored(ct, mask: np.ndarray, midline_x: float) -> np.ndarray:
    """``mask`` reflected through the sagittal plane x = midline_x (LPS), on the same grid."""
    matrix, origin = index_to_lps(ct)
    points = origin + np.argwhere(mask)[:, ::-1] @ matrix.T
    points[:, 0] = 2 * midline_x - points[:, 0]
    xyz = np.rint((points - origin) @ np.linalg.inv(matrix).T).astype(int)
    inside = np.all((xyz >= 0) & (xyz < np.array(ct.size_xyz)), axis=1)
    out = np.zeros_like(mask)
    out[xyz[inside, 2], xyz[inside, 1], xyz[inside, 0]] = True
    return out


@pytest.mark.parametrize("key", ["liver", "spleen", "kidney_right"])
def test_an_organ_mirrored_to_the_other_side_is_flagged(real, key):
    ct, labels = real
    midline = case_statistics(ct, labels)["body_midline_x_mm"]
    array = labels.array.copy()
    mask = array == organ(key)
    array[mask] = 0
    array[mirrored(ct, mask, midline)] = organ(key)
    assert (key, "side") in flags_for(ct, array)


@pytest.mark.parametrize("key", ["kidney_right", "liver", "spleen"])
def test_an_organ_scaled_five_times_in_volume_is_flagged(real, key):
    ct, labels = real
    mask = labels.array == organ(key)
    centre = np.argwhere(mask).mean(axis=0)
    factor = 5 ** (1 / 3)
    grown = ndi.affine_transform(mask.astype(np.uint8), np.eye(3) / factor, offset=centre - centre / factor, order=0).astype(bool)
    assert grown.sum() > 3 * mask.sum()  # about 5x, less where it leaves the scan
    array = labels.array.copy()
    array[grown] = organ(key)
    assert (key, "volume") in flags_for(ct, array)


@pytest.mark.parametrize("key", ["liver", "kidney_left", "spleen"])
def test_an_organ_cut_in_pieces_is_flagged(real, key):
    ct, labels = real
    array = labels.array.copy()
    slices = np.flatnonzero((array == organ(key)).any(axis=(1, 2)))
    for cut in (slices[len(slices) // 3], slices[2 * len(slices) // 3]):
        band = array[cut - 1 : cut + 1]
        band[band == organ(key)] = 0
    assert (key, "pieces") in flags_for(ct, array)


def test_an_adrenal_below_its_kidney_and_a_liver_in_bone_hu_are_flagged(real):
    ct, labels = real
    array = labels.array.copy()
    adrenal = array == organ("adrenal_gland_left")
    array[adrenal] = 0
    kidney_slices = np.flatnonzero((array == organ("kidney_left")).any(axis=(1, 2)))
    drop = int(np.flatnonzero(adrenal.any(axis=(1, 2))).mean() - kidney_slices.min()) + 2
    down = np.roll(adrenal, -drop if ct.direction[8] > 0 else drop, axis=0)
    array[down & (array == 0)] = organ("adrenal_gland_left")
    assert ("adrenal_gland_left", "position") in flags_for(ct, array)
    bright = ct.with_array(np.where(labels.array == organ("liver"), 900.0, ct.array).astype(np.float32))
    assert ("liver", "hu") in {(f["organ"], f["check"]) for f in check_case(case_statistics(bright, labels))}
