"""Procedural phantom: documented HU per phase, aorta ordering, sides in patient coordinates, determinism, speed."""

import time

import numpy as np
import pytest
import scipy.ndimage as ndi

from dccseg.organs import ORGAN_BY_KEY, ORGANS
from dccseg.phantoms import CONTRAST_PHASES, procedural_anatomy, procedural_phantom
from dccseg.phantoms.hu_table import ORGAN_TISSUE, TISSUE_INDEX, hu_range
from dccseg.volume import Volume

SHAPE = (48, 96, 112)


def _organ_core_mean(ct: Volume, labels: Volume, tissue: Volume, key: str) -> float:
    """Mean HU over the organ's voxels of its defining tissue, one voxel in from the border (no partial volume)."""
    mask = (labels.array == ORGAN_BY_KEY[key].label) & (tissue.array == TISSUE_INDEX[ORGAN_TISSUE[key]])
    core = ndi.binary_erosion(mask) if ndi.binary_erosion(mask).sum() >= 5 else mask
    return float(ct.array[core].mean())


@pytest.mark.parametrize("phase", CONTRAST_PHASES)
def test_every_organ_mean_lies_in_the_documented_range(phase):
    tissue, labels = procedural_anatomy(SHAPE, seed=4)
    ct, labels_again = procedural_phantom(SHAPE, phase=phase, seed=4, noise_sd=5.0)
    assert np.array_equal(labels.array, labels_again.array)
    for organ in ORGANS:
        low, high = hu_range(ORGAN_TISSUE[organ.key], phase)
        mean = _organ_core_mean(ct, labels, tissue, organ.key)
        assert low - 5 <= mean <= high + 5, f"{organ.key} {mean:.0f} HU outside {low}-{high} in {phase}"


def test_aorta_is_brightest_in_arterial_then_portal_venous_then_non_contrast():
    means = {}
    for phase in ("non-contrast", "arterial", "portal-venous"):
        ct, labels = procedural_phantom(phase=phase, seed=1)
        means[phase] = ct.array[labels.array == ORGAN_BY_KEY["aorta"].label].mean()
    assert means["arterial"] > means["portal-venous"] > means["non-contrast"]


def _centroid_x(labels: Volume, key: str) -> float:
    """Physical LPS x (mm) of an organ's centroid: +x is the patient's left."""
    index_zyx = np.argwhere(labels.array == ORGAN_BY_KEY[key].label).mean(axis=0)
    matrix = np.asarray(labels.direction).reshape(3, 3)
    return float((np.asarray(labels.origin) + matrix @ (index_zyx[::-1] * np.asarray(labels.spacing)))[0])


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, -1, 0, 0, 0, 1)])
def test_right_organs_are_on_the_patients_right(direction):
    _, labels = procedural_phantom((32, 48, 48), seed=2, direction=tuple(float(d) for d in direction))
    assert _centroid_x(labels, "liver") < 0 < _centroid_x(labels, "spleen")
    assert _centroid_x(labels, "kidney_right") < _centroid_x(labels, "kidney_left")
    assert _centroid_x(labels, "adrenal_gland_right") < _centroid_x(labels, "adrenal_gland_left")
    assert _centroid_x(labels, "inferior_vena_cava") < _centroid_x(labels, "aorta")


def test_flipped_direction_mirrors_the_array_but_not_the_patient():
    _, lps = procedural_phantom((32, 48, 48), seed=3)
    _, ras = procedural_phantom((32, 48, 48), seed=3, direction=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    assert np.array_equal(lps.array, ras.array[:, ::-1, ::-1])


def test_same_seed_same_phantom_other_seed_other_phantom():
    a, la = procedural_phantom(seed=7)
    b, lb = procedural_phantom(seed=7)
    c, lc = procedural_phantom(seed=8)
    assert np.array_equal(a.array, b.array) and np.array_equal(la.array, lb.array)
    assert not np.array_equal(la.array, lc.array) and not np.allclose(a.array, c.array)
    assert set(np.unique(la.array)) == set(range(14))


def test_64_cubed_renders_in_under_a_second():
    procedural_phantom(seed=0)
    start = time.perf_counter()
    procedural_phantom(seed=1)
    assert time.perf_counter() - start < 1.0
