"""Per-tissue CT numbers (HU) in the four contrast phases, and random "scans" drawn from them.

Each entry gives, per phase, the range in which the tissue's *mean* HU lies in typical adult
multiphase abdominal CT, and the within-tissue standard deviation of its texture (scanner noise
is added separately). Values and sources are documented in ``docs/hu_table.md``; they are
approximate literature/clinical ranges, not measurements of one scanner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DccsegError

CONTRAST_PHASES: tuple[str, ...] = ("non-contrast", "arterial", "portal-venous", "delayed")
PHASE_TIMING: dict[str, float] = {phase: float(i) for i, phase in enumerate(CONTRAST_PHASES)}
"""Position of each phase on the continuous enhancement axis used by ``sample_timed_scan``."""


@dataclass(frozen=True)
class TissueHU:
    """Mean-HU range ``(low, high)`` and texture SD for each contrast phase."""

    name: str
    ranges: tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]
    sd: tuple[float, float, float, float]

    def range(self, phase: str) -> tuple[float, float]:
        return self.ranges[phase_index(phase)]

    def midpoint(self, phase: str) -> float:
        low, high = self.range(phase)
        return 0.5 * (low + high)


def _t(name: str, nc, art, pv, dl, sd) -> TissueHU:
    sds = sd if isinstance(sd, tuple) else (sd,) * 4
    return TissueHU(name, (nc, art, pv, dl), sds)


TISSUES: tuple[TissueHU, ...] = (
    # organs
    _t("liver", (40, 65), (60, 80), (100, 130), (80, 100), 7),
    _t("spleen", (38, 55), (90, 140), (110, 140), (90, 115), (6, 22, 7, 6)),
    _t("kidney_cortex", (25, 40), (150, 250), (150, 200), (100, 150), 10),
    _t("kidney_medulla", (25, 40), (60, 100), (140, 190), (120, 170), 10),
    _t("gallbladder", (0, 20), (0, 20), (0, 22), (0, 22), 5),
    _t("esophagus", (30, 45), (50, 80), (60, 90), (55, 80), 9),
    _t("stomach_wall", (30, 45), (60, 100), (70, 110), (60, 90), 10),
    _t("pancreas", (25, 50), (100, 150), (85, 120), (60, 90), 10),
    _t("adrenal", (10, 35), (40, 80), (50, 90), (40, 70), 10),
    # vessels and blood pools
    _t("aorta", (35, 50), (250, 450), (150, 220), (100, 150), 8),
    _t("ivc", (35, 50), (60, 120), (130, 180), (100, 140), (8, 20, 10, 8)),
    _t("portal_vein", (35, 50), (80, 140), (160, 220), (100, 150), 9),
    _t("artery", (35, 50), (230, 420), (150, 210), (100, 150), 10),
    _t("vein", (35, 50), (45, 80), (120, 170), (100, 140), 10),
    _t("heart_blood", (35, 50), (200, 380), (140, 200), (100, 140), 15),
    _t("myocardium", (35, 50), (100, 150), (90, 120), (70, 90), 10),
    _t("pulmonary_artery", (35, 50), (180, 350), (130, 190), (100, 140), 12),
    # background tissues
    _t("muscle", (40, 55), (45, 65), (50, 70), (50, 65), 9),
    _t("fat", (-115, -90), (-115, -90), (-110, -85), (-110, -85), 12),
    _t("soft_tissue", (20, 40), (30, 60), (40, 70), (35, 60), 12),
    _t("bone_cancellous", (150, 300), (160, 310), (165, 315), (160, 310), 40),
    _t("bone_cortical", (450, 800), (450, 800), (450, 800), (450, 800), 60),
    _t("lung", (-880, -820), (-880, -810), (-880, -810), (-880, -815), 25),
    _t("air", (-1005, -995), (-1005, -995), (-1005, -995), (-1005, -995), 3),
    _t("bowel_wall", (30, 45), (55, 90), (65, 100), (55, 85), 10),
    _t("bowel_contents", (-20, 30), (-20, 30), (-20, 30), (-20, 30), 15),
    _t("stomach_contents", (0, 30), (0, 30), (0, 30), (0, 30), 8),
    _t("urine", (0, 20), (0, 20), (0, 25), (20, 200), (5, 5, 5, 20)),
    _t("brain", (28, 40), (30, 42), (32, 44), (32, 44), 6),
    # pathology (dccseg/phantoms/pathology.py)
    _t("cyst", (0, 20), (0, 20), (0, 20), (0, 20), 5),
    _t("lesion_hypo", (25, 45), (35, 65), (45, 80), (45, 75), 10),
    _t("lesion_iso", (35, 55), (75, 130), (90, 130), (75, 105), 10),
    _t("lesion_hyper", (30, 50), (130, 230), (80, 130), (55, 90), 15),
    _t("lesion_rim", (30, 45), (80, 140), (90, 140), (75, 110), 12),
    _t("necrosis", (10, 30), (10, 30), (10, 30), (10, 30), 8),
    _t("mass", (30, 50), (60, 130), (70, 120), (60, 100), 18),
)

TISSUE_BY_NAME: dict[str, TissueHU] = {t.name: t for t in TISSUES}
TISSUE_INDEX: dict[str, int] = {t.name: i for i, t in enumerate(TISSUES)}

ORGAN_TISSUE: dict[str, str] = {
    "spleen": "spleen",
    "kidney_right": "kidney_cortex",
    "kidney_left": "kidney_cortex",
    "gallbladder": "gallbladder",
    "esophagus": "esophagus",
    "liver": "liver",
    "stomach": "stomach_wall",
    "aorta": "aorta",
    "inferior_vena_cava": "ivc",
    "portal_and_splenic_vein": "portal_vein",
    "pancreas": "pancreas",
    "adrenal_gland_right": "adrenal",
    "adrenal_gland_left": "adrenal",
}
"""The tissue whose HU describes each of the 13 organs (organ table keys)."""


def phase_index(phase: str) -> int:
    """Index of a contrast phase in ``CONTRAST_PHASES``; a DccsegError for anything else."""
    try:
        return CONTRAST_PHASES.index(phase)
    except ValueError:
        raise DccsegError(f"unknown contrast phase '{phase}'; use one of: {', '.join(CONTRAST_PHASES)}") from None


def hu_range(tissue: str, phase: str) -> tuple[float, float]:
    """The documented mean-HU range of ``tissue`` in ``phase``."""
    return TISSUE_BY_NAME[tissue].range(phase)


@dataclass(frozen=True)
class ScanHU:
    """One simulated scan: mean and texture SD per tissue (indexed like ``TISSUES``)."""

    phase: str
    timing: float
    mean: np.ndarray
    sd: np.ndarray

    def of(self, tissue: str) -> float:
        return float(self.mean[TISSUE_INDEX[tissue]])


def _fractions(rng: np.random.Generator) -> np.ndarray:
    """Position of each tissue's mean inside its range: a shared bolus strength plus per-tissue jitter."""
    strength = rng.uniform(0.0, 1.0)
    return np.clip(0.6 * strength + 0.4 * rng.uniform(0.0, 1.0, len(TISSUES)), 0.0, 1.0)


def _means_at(phase: str, fractions: np.ndarray) -> np.ndarray:
    ranges = np.array([t.range(phase) for t in TISSUES], dtype=np.float64)
    return ranges[:, 0] + fractions * (ranges[:, 1] - ranges[:, 0])


def typical_scan(phase: str) -> ScanHU:
    """The scan whose every tissue sits at the middle of its range."""
    idx = phase_index(phase)
    half = np.full(len(TISSUES), 0.5)
    return ScanHU(phase, float(idx), _means_at(phase, half), np.array([t.sd[idx] for t in TISSUES], dtype=np.float64))


def sample_scan(phase: str, rng: np.random.Generator) -> ScanHU:
    """A random scan of ``phase``: every tissue mean inside its documented range, SDs jittered +-25%."""
    idx = phase_index(phase)
    sd = np.array([t.sd[idx] for t in TISSUES], dtype=np.float64) * rng.uniform(0.75, 1.25, len(TISSUES))
    return ScanHU(phase, float(idx), _means_at(phase, _fractions(rng)), sd)


def sample_timed_scan(rng: np.random.Generator, timing: float | None = None) -> ScanHU:
    """A scan anywhere on the continuous enhancement axis (0 NC, 1 arterial, 2 portal-venous, 3 delayed).

    Between two phases each tissue's mean and SD are interpolated linearly (e.g. timing 1.4 is a late
    arterial scan); ``phase`` is the nearest named phase. ``timing`` None draws it uniformly in [0, 3].
    """
    t = float(rng.uniform(0.0, 3.0) if timing is None else np.clip(timing, 0.0, 3.0))
    low = min(int(np.floor(t)), 2)
    w = t - low
    fractions = _fractions(rng)
    before, after = CONTRAST_PHASES[low], CONTRAST_PHASES[low + 1]
    mean = (1 - w) * _means_at(before, fractions) + w * _means_at(after, fractions)
    sd = np.array([(1 - w) * s.sd[low] + w * s.sd[low + 1] for s in TISSUES]) * rng.uniform(0.75, 1.25, len(TISSUES))
    return ScanHU(CONTRAST_PHASES[int(round(t))], t, mean, sd)
