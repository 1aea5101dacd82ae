"""Guess a CT's contrast phase from the mean HU of its vessels and enhancing organs.

Each phase is scored by how well the measured organ means fit the phase's documented HU ranges
(``dccseg.phantoms.hu_table``), plus the aorta-minus-portal-vein difference, which separates the
arterial phase best. Scores become probabilities with a softmax; the best phase and its
probability are returned. Without organ labels there is no evidence: the answer is "unknown".
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

from .errors import DccsegError
from .organs import ORGAN_BY_KEY
from .phantoms.hu_table import CONTRAST_PHASES, TISSUE_BY_NAME
from .volume import Volume

EVIDENCE_ORGANS: dict[str, tuple[str, ...]] = {
    "aorta": ("aorta",),
    "portal_and_splenic_vein": ("portal_vein",),
    "inferior_vena_cava": ("ivc",),
    "liver": ("liver",),
    "spleen": ("spleen",),
    "kidney_right": ("kidney_cortex", "kidney_medulla"),
    "kidney_left": ("kidney_cortex", "kidney_medulla"),
}
"""Organs used as evidence, with the tissues whose ranges they span (kidney: cortex and medulla)."""
TOLERANCE_HU = 15.0
MIN_VOXELS = 10
AORTA_MINUS_PORTAL = {"non-contrast": (-15.0, 15.0), "arterial": (110.0, 320.0), "portal-venous": (-60.0, 40.0), "delayed": (-40.0, 40.0)}


def _robust_mean(ct: np.ndarray, mask: np.ndarray) -> float | None:
    core = ndi.binary_erosion(mask)
    voxels = ct[core] if core.sum() >= MIN_VOXELS else ct[mask]
    return float(np.median(voxels)) if voxels.size >= MIN_VOXELS else None


def _phase_range(organ: str, phase: str) -> tuple[float, float]:
    ranges = [TISSUE_BY_NAME[t].range(phase) for t in EVIDENCE_ORGANS[organ]]
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def _fit(value: float, low: float, high: float) -> float:
    """Log-score of ``value`` for a range: 0 inside, falling quadratically outside (scaled by the range)."""
    distance = max(low - value, value - high, 0.0)
    return -0.5 * (distance / (0.5 * (high - low) + TOLERANCE_HU)) ** 2


def guess_phase(ct: Volume, labels: Volume | None) -> tuple[str, float, dict]:
    """Return (phase, confidence in [0, 1], evidence) for ``ct`` with organ ``labels`` (ids 1..13)."""
    if labels is None:
        return "unknown", 0.0, {"reason": "no organ labels: segment the CT first or choose the phase by hand"}
    if not ct.same_grid(labels, 1e-3):
        raise DccsegError("the CT and the organ labels are on different grids; give labels that match the CT")
    means: dict[str, float] = {}
    for organ in EVIDENCE_ORGANS:
        value = _robust_mean(ct.array, labels.array == ORGAN_BY_KEY[organ].label)
        if value is not None:
            means[organ] = round(value, 1)
    if not means:
        return "unknown", 0.0, {"reason": "none of aorta, portal vein, IVC, liver, spleen or kidneys is labelled"}
    scores = np.array([sum(_fit(v, *_phase_range(o, p)) for o, v in means.items()) for p in CONTRAST_PHASES])
    if "aorta" in means and "portal_and_splenic_vein" in means:
        difference = means["aorta"] - means["portal_and_splenic_vein"]
        scores += 2.0 * np.array([_fit(difference, *AORTA_MINUS_PORTAL[p]) for p in CONTRAST_PHASES])
    probabilities = np.exp(scores - scores.max())
    probabilities /= probabilities.sum()
    best = int(np.argmax(probabilities))
    evidence = {"mean_hu": means, "probabilities": {p: round(float(q), 3) for p, q in zip(CONTRAST_PHASES, probabilities)}}
    return CONTRAST_PHASES[best], float(probabilities[best]), evidence
