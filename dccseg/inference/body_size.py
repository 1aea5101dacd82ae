"""Read a body clearly smaller than the training bodies on grids scaled to its size (a child's scan, issue "the model must work on patients it never saw").

The networks learnt adult bodies at fixed grid spacings, so a child's organs reach them a few voxels across. A card
with ``size_reference_ml`` (mean organ volumes of its training data) lets inference measure the body on the first
coarse pass: each of ``SIZE_ORGANS`` found whole in the scan's z range gives (volume / reference) ** (1/3), and
their median is the body's size factor. Below ``SMALL_BODY`` the pipeline runs again with the coarse and in-plane
refine spacings times that factor (at least ``MIN_FACTOR``), so the organs reach the networks at an adult's size.
Adults (and any scan where fewer than ``MIN_ORGANS`` organs lie whole in it) keep the card's grids.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..organs import ORGAN_BY_KEY
from ..volume import Volume

SIZE_ORGANS = ("liver", "spleen", "kidney_right", "kidney_left")
SMALL_BODY = 0.8
"""Size factors at or above this read as adults: adult organ volumes vary about +-50% (factor 0.8-1.15)."""
MIN_FACTOR = 0.5
"""Grids at most twice as fine as the card's (a toddler's size)."""
MIN_ORGANS = 2


def size_factor(coarse: Volume, reference_ml: Mapping[str, float]) -> float | None:
    """The median of (organ volume / reference volume) ** (1/3) over the organs of ``reference_ml`` that ``coarse``
    (a canonical label map, z first) holds whole in its z range; None when fewer than ``MIN_ORGANS`` qualify."""
    voxel_ml = float(np.prod(coarse.spacing)) / 1000.0
    labels = coarse.array
    factors = []
    for key, reference in reference_ml.items():
        mask = labels == ORGAN_BY_KEY[key].label
        if not mask.any() or mask[0].any() or mask[-1].any():
            continue
        factors.append((np.count_nonzero(mask) * voxel_ml / reference) ** (1.0 / 3.0))
    return float(np.median(factors)) if len(factors) >= MIN_ORGANS else None


def body_scale(coarse: Volume, reference_ml: Mapping[str, float] | None) -> float:
    """The factor the card's grid spacings are multiplied by for this body: 1 for adults, the size factor (>= ``MIN_FACTOR``) for a small body."""
    factor = size_factor(coarse, reference_ml) if reference_ml else None
    return 1.0 if factor is None or factor >= SMALL_BODY else max(factor, MIN_FACTOR)
