"""Synthetic pathology: lesions keep organ labels, masses and grown organs never take other organs, sizes honoured."""

import numpy as np
import pytest
import scipy.ndimage as ndi

from dccseg.errors import DccsegError
from dccseg.organs import ORGAN_BY_KEY
from dccseg.phantoms.hu_table import CONTRAST_PHASES, TISSUE_BY_NAME, TISSUE_INDEX, sample_scan
from dccseg.phantoms.pathology import DISPLACEABLE, LESION_KINDS, PathologySettings, add_pathology

SPACING = (3.0, 3.0, 3.0)
LIVER, SPLEEN, KIDNEY_R, AORTA = (ORGAN_BY_KEY[k].label for k in ("liver", "spleen", "kidney_right", "aorta"))
NONE = dict(lesion_probability=0.0, mass_probability=0.0, enlarge_probability=0.0, shrink_probability=0.0, removal_probability=0.0)
PATHOLOGY_TISSUES = {TISSUE_INDEX[t] for pair in LESION_KINDS.values() for t in pair if t} | {TISSUE_INDEX["mass"], TISSUE_INDEX["necrosis"]}


def _ellipsoid(shape, centre, semi_vox):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return sum(((a - c) / s) ** 2 for a, c, s in zip((z, y, x), centre, semi_vox)) <= 1.0


@pytest.fixture(scope="module")
def scene():
    """A 3 mm abdomen: a large liver touching the right kidney, a spleen and an aorta in fat, inside muscle walls
    (y 7-8 and 55-56) with subcutaneous fat and air beyond them."""
    shape = (40, 64, 64)
    tissue = np.full(shape, TISSUE_INDEX["fat"], np.uint8)
    tissue[:, :3], tissue[:, -3:] = TISSUE_INDEX["air"], TISSUE_INDEX["air"]
    tissue[:, 7:9], tissue[:, 55:57] = TISSUE_INDEX["muscle"], TISSUE_INDEX["muscle"]
    organs = np.zeros(shape, np.uint8)
    parts = (
        (LIVER, "liver", (20, 30, 18), (14, 16, 13)),
        (KIDNEY_R, "kidney_cortex", (20, 44, 20), (8, 5, 5)),
        (SPLEEN, "spleen", (22, 34, 50), (6, 6, 5)),
        (AORTA, "aorta", (20, 40, 34), (19, 3, 3)),
    )
    for label, name, centre, semi in parts:
        mask = _ellipsoid(shape, centre, semi)
        organs[mask], tissue[mask] = label, TISSUE_INDEX[name]
    tissue[_ellipsoid(shape, (20, 44, 20), (5, 2, 2))] = TISSUE_INDEX["kidney_medulla"]
    return tissue, organs


def _run(scene, seed, **settings):
    tissue, organs = scene
    return add_pathology(tissue, organs, SPACING, np.random.default_rng(seed), PathologySettings(**{**NONE, **settings}))


def test_same_seed_same_pathology_and_inputs_untouched(scene):
    before = [a.copy() for a in scene]
    everything = dict(lesion_probability=1.0, mass_probability=1.0, enlarge_probability=0.5, shrink_probability=0.5, removal_probability=0.3)
    first, again, other = _run(scene, 3, **everything), _run(scene, 3, **everything), _run(scene, 4, **everything)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert all(np.array_equal(a, b) for a, b in zip(before, scene))
    assert all(np.array_equal(a, b) for a, b in zip(_run(scene, 3), scene))


@pytest.mark.parametrize("seed", range(6))
def test_lesions_keep_the_organ_label_and_change_only_tissue_inside_organs(scene, seed):
    tissue, organs = scene
    new_tissue, new_organs = _run(scene, seed, lesion_probability=1.0, lesion_organs=("liver", "spleen", "kidney_right"))
    changed = new_tissue != tissue
    assert np.array_equal(new_organs, organs) and changed.any()
    assert np.isin(organs[changed], [LIVER, SPLEEN, KIDNEY_R]).all()
    assert set(np.unique(new_tissue[changed])) <= PATHOLOGY_TISSUES


@pytest.mark.parametrize("seed", range(8))
def test_masses_outside_organs_are_background_and_never_overwrite_other_organs(scene, seed):
    tissue, organs = scene
    new_tissue, new_organs = _run(scene, seed, mass_probability=1.0, mass_hosts=("kidney_right", "spleen", "retroperitoneum"))
    changed = new_tissue != tissue
    assert np.array_equal(new_organs, organs) and changed.any()
    hosts = set(np.unique(organs[changed])) - {0}
    assert len(hosts) <= 1 and hosts <= {KIDNEY_R, SPLEEN}
    assert np.isin(tissue[changed & (organs == 0)], DISPLACEABLE).all()
    assert set(np.unique(new_tissue[changed])) <= PATHOLOGY_TISSUES
    assert not changed[:, :9].any() and not changed[:, 55:].any()


def test_exophytic_masses_do_reach_outside_their_organ(scene):
    outside = [((_run(scene, seed, mass_probability=1.0, mass_hosts=("kidney_right",))[0] != scene[0]) & (scene[1] == 0)).sum() for seed in range(4)]
    assert max(outside) > 50


@pytest.mark.parametrize("organ", ["spleen", "kidney_right"])
def test_removed_organ_leaves_no_voxel_and_the_others_stay(scene, organ):
    tissue, organs = scene
    label = ORGAN_BY_KEY[organ].label
    new_tissue, new_organs = _run(scene, 1, removal_probability=1.0, removal_organs=(organ,))
    assert not (new_organs == label).any()
    assert np.array_equal(new_organs[organs != label], organs[organs != label])
    assert np.isin(new_tissue[organs == label], [TISSUE_INDEX[t] for t in ("fat", "soft_tissue", "bowel_wall", "bowel_contents")]).all()


@pytest.mark.parametrize("seed", range(3))
def test_splenomegaly_grows_into_background_only_to_the_drawn_volume(scene, seed):
    tissue, organs = scene
    new_tissue, new_organs = _run(scene, seed, enlarge_probability=1.0, enlarge_organs=("spleen",), splenomegaly_volume_factor=(3.0, 3.0))
    ratio = (new_organs == SPLEEN).sum() / (organs == SPLEEN).sum()
    assert 2.95 <= ratio <= 3.0
    grown = (new_organs == SPLEEN) & (organs != SPLEEN)
    assert (organs[grown] == 0).all() and np.isin(tissue[grown], DISPLACEABLE).all() and not grown[:, 55:].any()
    assert (new_tissue[grown] == TISSUE_INDEX["spleen"]).all()
    others = (organs != SPLEEN) & (organs != 0)
    assert np.array_equal(new_organs[others], organs[others])


def test_enlarged_liver_is_blocked_by_the_kidney_it_touches(scene):
    tissue, organs = scene
    _, new_organs = _run(scene, 2, enlarge_probability=1.0, enlarge_organs=("liver", "kidney_right"), enlarge_volume_factor=(2.0, 2.0))
    assert ((new_organs == LIVER).sum() > 1.9 * (organs == LIVER).sum()) and ((new_organs == KIDNEY_R).sum() > 1.5 * (organs == KIDNEY_R).sum())
    assert np.array_equal(new_organs[organs != 0], organs[organs != 0])


def test_shrunken_kidney_loses_its_outer_layer_to_fat_and_keeps_a_cortex(scene):
    tissue, organs = scene
    new_tissue, new_organs = _run(scene, 0, shrink_probability=1.0, shrink_organs=("kidney_right",), shrink_volume_factor=(0.5, 0.5))
    ratio = (new_organs == KIDNEY_R).sum() / (organs == KIDNEY_R).sum()
    assert 0.45 <= ratio <= 0.55
    lost = (organs == KIDNEY_R) & (new_organs != KIDNEY_R)
    assert (new_organs[lost] == 0).all() and (new_tissue[lost] == TISSUE_INDEX["fat"]).all()
    assert (new_tissue[new_organs == KIDNEY_R] == TISSUE_INDEX["kidney_cortex"]).mean() > 0.5
    assert np.array_equal(new_organs[organs != KIDNEY_R], organs[organs != KIDNEY_R])


def test_lesion_diameter_is_honoured_and_clipped_to_the_organ(scene):
    tissue, organs = scene
    exact = dict(lesion_probability=1.0, lesion_organs=("liver",), many_lesions_probability=0.0, elongation=1.0, irregularity=0.0,
                 lesion_kind_weights=(1.0, 0.0, 0.0, 0.0, 0.0))
    for diameter in (12.0, 30.0):
        new_tissue, _ = _run(scene, 5, lesion_diameter_mm=(diameter, diameter), **exact)
        voxels = (new_tissue == TISSUE_INDEX["cyst"]).sum()
        assert voxels == pytest.approx(np.pi / 6 * diameter**3 / 27.0, rel=0.3)
    exact["lesion_organs"] = ("spleen",)
    new_tissue, _ = _run(scene, 5, lesion_diameter_mm=(120.0, 120.0), **exact)
    assert 0.2 * (organs == SPLEEN).sum() < (new_tissue == TISSUE_INDEX["cyst"]).sum() < 0.9 * (organs == SPLEEN).sum()


def test_many_small_lesions_scatter_through_the_liver(scene):
    new_tissue, _ = _run(scene, 7, lesion_probability=1.0, lesion_organs=("liver",), many_lesions_probability=1.0, many_lesions_count=(8, 8),
                         many_lesions_diameter_mm=(9.0, 12.0), lesion_kind_weights=(0.0, 1.0, 0.0, 0.0, 0.0))
    _, count = ndi.label(new_tissue == TISSUE_INDEX["lesion_hypo"])
    assert 4 <= count <= 8


def test_every_new_tissue_has_hu_in_every_phase_and_behaves_as_documented():
    names = {t for pair in LESION_KINDS.values() for t in pair if t} | {"mass"}
    for name in names:
        assert all(low < high for low, high in TISSUE_BY_NAME[name].ranges) and len(TISSUE_BY_NAME[name].sd) == len(CONTRAST_PHASES)
        for phase in CONTRAST_PHASES:
            assert np.isfinite(sample_scan(phase, np.random.default_rng(0)).of(name))
    assert all(high <= 20 for _, high in TISSUE_BY_NAME["cyst"].ranges)
    hyper = TISSUE_BY_NAME["lesion_hyper"]
    liver = TISSUE_BY_NAME["liver"]
    assert hyper.midpoint("arterial") > liver.midpoint("arterial") and hyper.midpoint("delayed") < liver.midpoint("delayed")
    assert TISSUE_BY_NAME["lesion_hypo"].midpoint("portal-venous") < liver.midpoint("portal-venous")


def test_bad_settings_and_inputs_are_user_errors(scene):
    with pytest.raises(DccsegError, match="probability"):
        PathologySettings(mass_probability=1.5)
    with pytest.raises(DccsegError, match="range"):
        PathologySettings(lesion_diameter_mm=(20.0, 5.0))
    with pytest.raises(DccsegError, match="unknown organs"):
        PathologySettings(removal_organs=("appendix",))
    with pytest.raises(DccsegError, match="unknown organs"):
        PathologySettings(removal_organs=("retroperitoneum",))
    with pytest.raises(DccsegError, match="shrink"):
        PathologySettings(shrink_volume_factor=(0.5, 1.5))
    with pytest.raises(DccsegError, match="irregularity"):
        PathologySettings(irregularity=-0.1)
    with pytest.raises(DccsegError, match="same 3D grid"):
        add_pathology(scene[0], scene[1][:-1], SPACING, np.random.default_rng(0))
    with pytest.raises(DccsegError, match="organ map hold ids"):
        add_pathology(scene[0], scene[1].astype(np.int16) + 20, SPACING, np.random.default_rng(0))
    with pytest.raises(DccsegError, match="positive"):
        add_pathology(scene[0], scene[1], (3.0, 0.0, 3.0), np.random.default_rng(0))
