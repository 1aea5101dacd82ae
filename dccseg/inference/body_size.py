"""Read a child's scan on grids scaled to the child's size (``dccseg segment --body-scale``).

The networks learnt adult bodies at fixed grid spacings, so a child's organs reach them a few voxels across. With a
body scale f < 1 the coarse and in-plane refine spacings are the card's times f, so the organs reach both networks at
an adult's size. ``AUTO`` measures f on a first coarse pass at the card's grids: each of ``SIZE_ORGANS`` found whole in
the scan's z range gives (volume / the card's ``size_reference_ml``) ** (1/3), and their median is the body's size.
It is a choice for the user, not a default: measured this way, adults with small organs read as children too
(docs/model.md).
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from ..errors import DccsegError
from ..organs import ORGAN_BY_KEY
from ..volume import Volume

SIZE_ORGANS = ("liver", "spleen", "kidney_right", "kidney_left")
AUTO = "auto"
MIN_SCALE, MAX_SCALE = 0.5, 1.0
"""Grids at most twice as fine as the card's (a toddler's size), never coarser (an adult's)."""
MIN_ORGANS = 2
OPTION_HELP = ("a child: read the body on grids scaled to its size. auto measures it from liver, spleen and kidneys on a first pass; a number gives the child's "
               "size relative to an adult (0.5 a toddler, 0.7 a school-age child). Default 1, an adult (docs/diagnose.md)")
"""The ``--body-scale`` help of ``dccseg segment`` and ``dccseg diagnose``."""


def parse_body_scale(text: str) -> float | str:
    """``--body-scale``: ``auto`` or a number in [MIN_SCALE, MAX_SCALE]."""
    if text == AUTO:
        return AUTO
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not MIN_SCALE <= value <= MAX_SCALE:
        raise DccsegError(f"--body-scale takes 'auto' or the patient's size relative to an adult, from {MIN_SCALE} (a toddler) to {MAX_SCALE} (an adult, the default), not {text!r}")
    return value


def whole_in_z(mask: np.ndarray) -> bool:
    """Whether ``mask`` (z first) holds voxels and none of them lies on the grid's first or last slice (the organ is not cut)."""
    return bool(mask.any()) and not mask[0].any() and not mask[-1].any()


def whole_organ_volumes(labels: Volume) -> dict[str, float]:
    """The volume (ml) of each of ``SIZE_ORGANS`` that ``labels`` (a label map, z first) holds whole in its z range."""
    volumes = {}
    for key in SIZE_ORGANS:
        mask = labels.array == ORGAN_BY_KEY[key].label
        if whole_in_z(mask):
            volumes[key] = float(np.count_nonzero(mask)) * labels.voxel_ml
    return volumes


def reference_volumes(label_maps: Iterable[Volume]) -> dict[str, float]:
    """A card's ``size_reference_ml``: each organ's mean whole volume over label maps of the training bodies (organs never whole are left out)."""
    found: dict[str, list[float]] = {}
    for labels in label_maps:
        for key, volume in whole_organ_volumes(labels).items():
            found.setdefault(key, []).append(volume)
    return {key: round(float(np.mean(found[key])), 1) for key in SIZE_ORGANS if key in found}


def size_factor(coarse: Volume, reference_ml: Mapping[str, float]) -> float | None:
    """The median of (organ volume / reference volume) ** (1/3) over the organs of ``reference_ml`` that ``coarse``
    (a canonical label map, z first) holds whole in its z range; None when fewer than ``MIN_ORGANS`` qualify."""
    volumes = whole_organ_volumes(coarse)
    factors = [(volumes[key] / reference) ** (1.0 / 3.0) for key, reference in reference_ml.items() if key in volumes]
    return float(np.median(factors)) if len(factors) >= MIN_ORGANS else None


def within_range(factor: float) -> float:
    """The body scale a measured size factor gives: the factor kept within [MIN_SCALE, MAX_SCALE]."""
    return min(max(factor, MIN_SCALE), MAX_SCALE)


def labelled_body_scale(labels: Volume, body_scale: float | str, reference_ml: Mapping[str, float]) -> float:
    """A training case's body scale: ``body_scale`` itself, or with ``AUTO`` its reference ``labels`` (canonical, z first) measured
    as inference measures a coarse pass; 1 when fewer than ``MIN_ORGANS`` lie whole in them."""
    if body_scale != AUTO:
        return float(body_scale)
    factor = size_factor(labels, reference_ml)
    return 1.0 if factor is None else within_range(factor)


def at_adult_size(volume: Volume, body_scale: float) -> Volume:
    """``volume`` with spacing and origin divided by ``body_scale``: on the card's grids it gives the voxels that grids
    ``body_scale`` times as fine give the original, so training sees a child as ``--body-scale`` shows it to the networks."""
    return Volume(volume.array, tuple(s / body_scale for s in volume.spacing), tuple(o / body_scale for o in volume.origin), volume.direction)
