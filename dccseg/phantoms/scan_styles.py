"""Ways a scan's tissue HU depart from the phase table: oral contrast, and SynthSeg-style random HU per tissue.

``randomise_scan`` keeps air, lung and fat where they are (they frame the body) and draws every other tissue's
mean and texture anew, so a network trained on it must find organs by shape and context, not by HU.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .hu_table import TISSUE_INDEX, TISSUES, ScanHU

ORAL_CONTRAST_HU = (150.0, 600.0)
RANDOM_HU = (-60.0, 320.0)
_FIXED = [TISSUE_INDEX[t] for t in ("air", "lung", "fat")]
_LUMEN = [TISSUE_INDEX[t] for t in ("stomach_contents", "bowel_contents")]


def with_oral_contrast(scan: ScanHU, rng: np.random.Generator) -> ScanHU:
    """Positive oral contrast: stomach and bowel contents at 150-600 HU."""
    mean = scan.mean.copy()
    mean[_LUMEN] = rng.uniform(*ORAL_CONTRAST_HU, len(_LUMEN))
    return replace(scan, mean=mean)


def randomise_scan(scan: ScanHU, rng: np.random.Generator) -> ScanHU:
    """Random mean (-60..320 HU) and texture SD (3..30 HU) for every tissue but air, lung and fat."""
    mean = rng.uniform(*RANDOM_HU, len(TISSUES))
    sd = rng.uniform(3.0, 30.0, len(TISSUES))
    mean[_FIXED], sd[_FIXED] = scan.mean[_FIXED], scan.sd[_FIXED]
    return replace(scan, mean=mean, sd=sd)
