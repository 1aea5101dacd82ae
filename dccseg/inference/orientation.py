"""Is the scan a left-right mirror image? A file whose header swaps the patient's sides reads as a mirrored body.

The coarse network knows on which side each organ lies, so it does not see a mirrored body as one: on the bundled CT
mirrored it labels the liver as spleen and the spleen and stomach as liver, every organ on its usual side, and the
per-organ plausibility checks find nothing but a small pancreas. What it cannot hide is its confidence: it is sure of far fewer organ voxels than in the same scan mirrored
back. On the 30 validation renders of the training bodies a scan's mirror held at most 0.68 times the confident organ
voxels of the scan itself, so a scan whose mirror holds ``MIRROR_RATIO`` times more is flagged (``docs/input_checks.md``).
"""

from __future__ import annotations

from typing import Any

import torch

CONFIDENT_PROBABILITY = 0.9
MIRROR_RATIO = 1.25
MIN_CONFIDENT_ML = 20.0
"""Below this much confident organ tissue in both readings (a slab of a few slices) the comparison says nothing."""


def confident_organ_voxels(probabilities: torch.Tensor) -> int:
    """Voxels whose most likely class is an organ, more likely than ``CONFIDENT_PROBABILITY``; ``probabilities`` is (C, D, H, W)."""
    top, label = probabilities.max(dim=0)
    return int(((label > 0) & (top > CONFIDENT_PROBABILITY)).sum())


def mirror_flag(as_is: int, mirrored: int, voxel_ml: float) -> dict[str, Any] | None:
    """The case-wide flag (``dccseg.plausibility``'s form) when the mirrored scan reads clearly better than the scan; else None."""
    if max(as_is, mirrored) * voxel_ml < MIN_CONFIDENT_ML or mirrored < MIRROR_RATIO * as_is:
        return None
    return {"organ": None, "check": "mirrored",
            "message": f"the scan reads as a left-right mirror image (the model is sure of {mirrored / max(as_is, 1):.1f} times more organ tissue in its mirror): "
                       "if the patient's sides are swapped in the file's orientation, fix the orientation and segment again; if this is situs inversus, "
                       "the organs are labelled by the usual sides and need review"}
