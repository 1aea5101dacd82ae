"""Organ shapes taken from another body (the ``mixed`` anatomy): placement, what a swap may overwrite, determinism."""

import numpy as np

from dccseg.organs import ORGAN_BY_KEY
from dccseg.phantoms import ANATOMY_PRESETS, load_template, synthesize_from_labels
from dccseg.inference.body_size import whole_in_z
from dccseg.phantoms.organ_swap import donor_shape
from dccseg.phantoms.synthesis import prepare_template, prepared, swap_organs
from dccseg.training.release_data import CaseMaker, CaseRecipe
from dccseg.training.configs import preset
from dccseg.phantoms.templates import BODY_SPLIT
from dccseg.volume import Volume

KIDNEY = ORGAN_BY_KEY["kidney_left"].label
NAMES = ["kidney_left", "vertebrae", "colon"]


def _ellipsoid(shape, centre, radii):
    grid = np.indices(shape).astype(np.float64)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0


def _body(kidney_centre, kidney_radii, shape=(40, 48, 48), spacing=(2.0, 2.0, 2.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)):
    """A toy body: a kidney (label 1) beside a vertebral block (2), inside a ring of colon (3) whose inside is the body core."""
    labels = np.zeros(shape, np.uint8)
    labels[_ellipsoid(shape, np.array(shape) / 2, (shape[0], 22, 22)) & ~_ellipsoid(shape, np.array(shape) / 2, (shape[0], 20, 20))] = 3
    labels[:, 30:40, 20:28] = 2
    labels[_ellipsoid(shape, kidney_centre, kidney_radii)] = 1
    return Volume(labels, spacing, (0.0, 0.0, 0.0), direction)


def test_donor_shape_takes_the_host_organs_place_and_size_and_keeps_its_own_form():
    host = _body((20, 20, 20), (5, 5, 5))
    host_mask = host.array == 1
    # the donor is stored with the x axis flipped and finer voxels; its kidney is long in z (physical), as the shape to keep
    donor = Volume(_ellipsoid((60, 40, 40), (30, 20, 20), (24, 6, 6)), (1.0, 1.5, 1.5), (40.0, 0.0, 0.0), (-1, 0, 0, 0, 1, 0, 0, 0, 1))
    shape = donor_shape(host, host_mask, donor, donor.array)
    assert abs(int(shape.sum()) - int(host_mask.sum())) < 0.1 * host_mask.sum()
    assert np.abs(np.argwhere(shape).mean(axis=0) - np.argwhere(host_mask).mean(axis=0)).max() < 0.5
    extent = np.ptp(np.argwhere(shape), axis=0)
    assert extent[0] > 5 * extent[2] and extent[1] > extent[2]  # the donor's proportions (36 : 9 : 6 mm in z, y, x), though the host's kidney is round


def test_a_swap_fills_only_the_freed_organ_and_empty_body_voxels_and_rebuilds_the_medulla():
    host = prepare_template(_body((20, 22, 24), (8, 7, 7)), NAMES)
    donor = prepare_template(_body((20, 24, 24), (14, 5, 9)), NAMES)
    swapped = swap_organs(host, [donor], np.random.default_rng(0), 1.0)
    host_kidney = host.code_organ[host.codes] == KIDNEY
    new_kidney = swapped.code_organ[swapped.codes] == KIDNEY
    assert (new_kidney & ~host_kidney).any() and (host_kidney & ~new_kidney).any()  # the donor's longer kidney grows into the empty body and leaves some of the host's
    assert not (new_kidney & ~host_kidney & ((host.codes != 0) | ~host.core)).any()  # never over another structure, never outside the body
    others = ~(host_kidney | new_kidney)
    assert np.array_equal(swapped.codes[others & (host.codes != 0)], host.codes[others & (host.codes != 0)])
    assert (swapped.codes == host.inner_code[1]).any() and (swapped.codes[new_kidney] == 1).any()  # cortex and medulla, as prepare_template splits them
    assert np.array_equal(swap_organs(host, [donor], np.random.default_rng(0), 0.0).codes, host.codes)
    cut = prepare_template(_body((3, 24, 24), (8, 5, 9)), NAMES)  # the donor's kidney runs off its grid: its shape is not whole
    assert not whole_in_z(cut.code_organ[cut.codes] == KIDNEY)
    assert np.array_equal(swap_organs(host, [cut], np.random.default_rng(0), 1.0).codes, host.codes)


def test_mixed_anatomy_swaps_real_organs_deterministically_and_only_with_donors():
    host, donor = prepared(*load_template("s0009")), prepared(*load_template("totalseg_example"))
    mixed = ANATOMY_PRESETS["mixed"]

    def organs(phase, anatomy=mixed, donors=(donor,)):
        return synthesize_from_labels(host, phase=phase, seed=5, output_spacing=(6.0, 6.0, 6.0), field_of_view=None, anatomy=anatomy, donors=donors)[1].array

    typical = organs("arterial", ANATOMY_PRESETS["typical"])
    assert np.array_equal(organs("arterial"), organs("delayed"))  # one anatomy in every phase of a seed
    assert not np.array_equal(organs("arterial"), typical)
    assert np.array_equal(organs("arterial", donors=()), typical)  # no other body, nothing to swap
    assert {2, 3, 6, 8} <= set(np.unique(organs("arterial")))


def test_the_release_recipe_renders_mixed_anatomies_from_its_other_bodies():
    def labels(anatomy):
        recipe = CaseRecipe(preset("default").preprocessing, BODY_SPLIT["train"], template_step=4, real_fraction=0.0, pathology=0.0, anatomy=anatomy)
        return [CaseMaker(recipe).make("coarse", BODY_SPLIT["train"], (12, i), f"case-{i}").labels for i in range(2)]

    assert any(not np.array_equal(a, b) for a, b in zip(labels("mixed"), labels("typical")))
