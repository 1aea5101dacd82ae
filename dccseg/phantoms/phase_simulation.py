"""Move a real CT from one contrast phase to another inside organ masks, keeping its texture.

Inside each organ the HU are mapped ``target_mean + (hu - source_mean) * scale``, where ``scale``
changes the organ's measured variance by the difference of the two phases' texture variances
(scanner noise is not amplified);
the change is blended in with a weight that falls smoothly over ~1-2 voxels at the mask border and
ramps from zero at fat (-100 HU) to one at -60 HU (judged on the lower of the HU before and after,
which makes the way back the inverse), so gas and fat inside or around organs are left alone.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.ndimage as ndi

from ..errors import DccsegError
from ..organs import ORGAN_BY_LABEL
from ..volume import Volume
from .hu_table import ORGAN_TISSUE, TISSUE_BY_NAME, phase_index, sample_scan, typical_scan
from .structures import organ_label, structure_tissue

BORDER_SIGMA_VOX = 0.8
FAT_HU, SOFT_TISSUE_HU = -100.0, -60.0
"""Voxels at or below fat HU (gas, renal sinus or pancreatic fat) keep their HU; soft tissue moves fully."""
SIMULATED_TISSUES = {"muscle", "artery", "vein", "heart_blood", "myocardium", "pulmonary_artery", "bowel_wall", "kidney_cortex"}
"""Tissues of non-organ structures (``structure_labels``) that change with the phase too."""


def measure_organ_means(ct: Volume, labels: Volume) -> dict[int, float]:
    """Mean HU of every organ id present (fat and gas voxels, below -60 HU, excluded)."""
    out = {}
    for label in np.unique(labels.array):
        mask = (labels.array == label) & (ct.array > SOFT_TISSUE_HU)
        if label > 0 and mask.any():
            out[int(label)] = float(ct.array[mask].mean())
    return out


def _texture_scale(values: np.ndarray, source_sd: float, target_sd: float) -> float:
    """Factor that turns the measured spread into one with ``target_sd**2 - source_sd**2`` more variance."""
    measured = float(values.std()) if values.size > 1 else 0.0
    if measured < 1e-3:
        return 1.0
    return float(np.sqrt(max(measured**2 + target_sd**2 - source_sd**2, (0.5 * measured) ** 2))) / measured


def _blend_weight(mask: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """Soft mask: 1 inside, falling smoothly to 0 over ~2 voxels outside."""
    return np.clip(2.0 * ndi.gaussian_filter(mask[box].astype(np.float32), BORDER_SIGMA_VOX), 0.0, 1.0)


def _padded_box(mask: np.ndarray, pad: int = 3) -> tuple[slice, ...] | None:
    boxes = ndi.find_objects(mask.astype(np.uint8))
    if not boxes or boxes[0] is None:
        return None
    return tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(boxes[0], mask.shape))


def _move(image: np.ndarray, mask: np.ndarray, free: np.ndarray, source_mean: float, target_mean: float, scale: float) -> None:
    """Map the HU inside ``mask``; the soft border spreads only into ``free`` (unlabelled) voxels."""
    box = _padded_box(mask)
    if box is None:
        return
    region = image[box]
    moved = target_mean + (region - source_mean) * scale
    tissue_like = np.clip((np.minimum(region, moved) - FAT_HU) / (SOFT_TISSUE_HU - FAT_HU), 0.0, 1.0)
    weight = _blend_weight(mask, box) * (mask[box] | free[box]) * tissue_like
    image[box] = region + weight * (moved - region)


def simulate_phase(
    ct: Volume,
    organ_labels: Volume,
    source_phase: str,
    target_phase: str,
    seed: int | None = None,
    target_means: dict[int, float] | None = None,
    source_means: dict[int, float] | None = None,
    structure_labels: Volume | None = None,
    structure_names: Sequence[str] | None = None,
) -> Volume:
    """Return ``ct`` made to look like ``target_phase`` (organ ids 1..13 in ``organ_labels``).

    Target organ means are the middles of the documented ranges, random within the ranges when
    ``seed`` is given, or ``target_means`` (organ id -> HU) where given. Source means are measured
    (soft tissue only) unless ``source_means`` gives them; swapping both dicts undoes a simulation. ``structure_labels``/``structure_names`` (TotalSegmentator-style) also move vessels, heart,
    muscles and bowel walls that are not among the 13 organs.
    """
    if not ct.same_grid(organ_labels):
        raise DccsegError("the CT and the organ labels are on different grids; resample the labels onto the CT first")
    source_idx, target_idx = phase_index(source_phase), phase_index(target_phase)
    scan = typical_scan(target_phase) if seed is None else sample_scan(target_phase, np.random.default_rng(seed))
    image = ct.array.astype(np.float32, copy=True)
    free = organ_labels.array == 0
    if structure_labels is not None:
        free = free & (structure_labels.array == 0)
    measured = measure_organ_means(ct, organ_labels)
    for label, source_mean in {**measured, **{k: v for k, v in (source_means or {}).items() if k in measured}}.items():
        if label not in ORGAN_BY_LABEL:
            continue
        tissue = TISSUE_BY_NAME[ORGAN_TISSUE[ORGAN_BY_LABEL[label].key]]
        target = (target_means or {}).get(label, scan.of(tissue.name))
        mask = organ_labels.array == label
        scale = _texture_scale(ct.array[mask & (ct.array > SOFT_TISSUE_HU)], tissue.sd[source_idx], tissue.sd[target_idx])
        _move(image, mask, free, source_mean, target, scale)
    if structure_labels is not None:
        if not structure_labels.same_grid(ct) or not structure_names:
            raise DccsegError("structure labels need the CT's grid and a names list; give both or leave them out")
        for label, name in enumerate(structure_names, start=1):
            tissue_name = structure_tissue(name)
            if organ_label(name) or tissue_name not in SIMULATED_TISSUES:
                continue
            mask = (structure_labels.array == label) & (ct.array > SOFT_TISSUE_HU)
            if mask.any():
                tissue = TISSUE_BY_NAME[tissue_name]
                scale = _texture_scale(ct.array[mask], tissue.sd[source_idx], tissue.sd[target_idx])
                _move(image, structure_labels.array == label, free, float(ct.array[mask].mean()), scan.of(tissue_name), scale)
    return ct.with_array(image)
