"""The refine stage's training priors drawn on the ground truth: degraded (mild) and realistic (coarse-network-like errors)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from dccseg.phantoms import procedural_phantom
from dccseg.training.cases import on_grid
from dccseg.training.configs import preset, with_overrides
from dccseg.training.finetune import starting_prior
from dccseg.training.priors import SYNTHETIC_PRIORS, degraded_prior, realistic_prior

FURTHEST_ERROR_VOXELS = 9
"""Grown by 2, leaked 2 further, shifted by (1, 2, 2): no prior voxel lies further (city block) from its organ."""


@pytest.fixture(scope="module")
def labels():
    ct, labels = procedural_phantom((64, 96, 96), phase="portal-venous", seed=3)
    return on_grid(ct, labels, (5.0, 5.0, 5.0))[1]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(int(a.sum() + b.sum()), 1)


@pytest.mark.parametrize("draw", [degraded_prior, realistic_prior])
def test_a_prior_is_seeded_and_only_holds_the_cases_organs(labels, draw):
    first = draw(labels, np.random.default_rng(7))
    assert np.array_equal(first.array, draw(labels, np.random.default_rng(7)).array)
    assert not np.array_equal(first.array, draw(labels, np.random.default_rng(8)).array)
    assert set(np.unique(first.array)) <= set(np.unique(labels.array))
    assert first.spacing == labels.spacing and first.array.shape == labels.array.shape


def test_realistic_priors_are_further_from_the_truth_than_degraded_ones_but_near_it(labels):
    organs = [int(o) for o in np.unique(labels.array) if o > 0]
    scores = {draw: [] for draw in SYNTHETIC_PRIORS.values()}
    for seed in range(8):
        for draw in scores:
            prior = draw(labels, np.random.default_rng(seed)).array
            scores[draw] += [dice(prior == o, labels.array == o) for o in organs]
            for organ in organs:
                distance = ndi.distance_transform_cdt(labels.array != organ, metric="taxicab")
                assert distance[prior == organ].max(initial=0) <= FURTHEST_ERROR_VOXELS
    assert 0.2 < np.mean(scores[realistic_prior]) < np.mean(scores[degraded_prior]) - 0.05


def test_realistic_is_a_prior_mode_that_a_fine_tune_keeps():
    config = with_overrides(preset("tiny"), refine__prior="realistic")
    assert config.refine.prior == "realistic"

    class Card:
        training = {"stages": {"refine": {"prior": "realistic"}}}

    assert starting_prior(Card()) == "realistic"
