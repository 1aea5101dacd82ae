"""Refine-stage data: cases on the refine grid and batched 2D organ patches from them.

Each case keeps its normalised image in ``1 + phase_variants`` contrast phases (variant 0 is the
original; the others are ``simulate_phase`` re-renderings made once, in HU, before
normalisation), its ground truth and its coarse prior. Every epoch draws a table of patch
centres inside each organ of the prior (``dccseg.patches.training_centers``); a batch is cut out
of the cached volumes in one gather per case (``extract_patches``), never patch by patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dccseg.inference.settings import InferenceSettings
from dccseg.networks import make_refine_input
from dccseg.patches import crop_patches, extract_patches, training_centers
from dccseg.preprocess import attention_labels, normalize_ct
from dccseg.training.augment import random_phase
from dccseg.training.cases import on_grid
from dccseg.volume import Volume

ROW_FIELDS = ("case", "variant", "organ", "z", "y", "x")


@dataclass
class RefineCase:
    id: str
    images: list[torch.Tensor]  # (Z, H, W) float32 in [-1, 1], one per phase variant
    labels: torch.Tensor  # (Z, H, W) uint8 ground truth
    prior: torch.Tensor  # (Z, H, W) uint8 coarse mask
    organs: list[int]  # organs present in the prior


def refine_case(case_id: str, phase: str, ct: Volume, labels: Volume, prior: Volume, settings: InferenceSettings, variants: int, rng: np.random.Generator) -> RefineCase:
    """The case on the refine grid (canonical CT and labels in, coarse-grid prior in)."""
    ct_r, labels_r = on_grid(ct, labels, settings.refine_grid_spacing(ct.spacing[2]))
    prior_r = attention_labels(prior, labels_r)
    versions = [ct_r] + [random_phase(ct_r, labels_r, phase, rng, 1.0) for _ in range(variants)]
    unique = {id(v): v for v in versions}  # an unknown-phase case cannot be re-rendered
    images = [torch.from_numpy(normalize_ct(v.array, settings.intensity)) for v in unique.values()]
    prior_array = prior_r.array.astype(np.uint8)
    organs = [int(v) for v in np.unique(prior_array) if v > 0]
    return RefineCase(case_id, images, torch.from_numpy(labels_r.array.astype(np.uint8)), torch.from_numpy(prior_array), organs)


def patch_rows(cases: list[RefineCase], per_organ: int, phase_probability: float, rng: np.random.Generator) -> np.ndarray:
    """(N, 6) int64 rows (case, variant, organ, z, y, x): ``per_organ`` centres per organ and case."""
    rows = []
    for index, case in enumerate(cases):
        variant = 0
        if len(case.images) > 1 and rng.random() < phase_probability:
            variant = int(rng.integers(1, len(case.images)))
        prior = case.prior.numpy()
        for organ in case.organs:
            centers = training_centers(prior, organ, per_organ, rng)
            head = np.tile(np.array([[index, variant, organ]], dtype=np.int64), (len(centers), 1))
            rows.append(np.concatenate([head, centers], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, len(ROW_FIELDS)), dtype=np.int64)


def gather_patches(cases: list[RefineCase], rows: np.ndarray, size: int, in_channels: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Network inputs (B, C, S, S), binary targets (B, S, S) and organ labels (B,) for ``rows``."""
    inputs, targets, organs = [], [], []
    keys = rows[:, 0] * 1000 + rows[:, 1]
    for key in np.unique(keys):
        group = rows[keys == key]
        case = cases[int(group[0, 0])]
        centers = torch.from_numpy(group[:, 3:6])
        organ = torch.from_numpy(group[:, 2])
        image, mask = extract_patches(case.images[int(group[0, 1])], case.prior, centers, size, organ_labels=organ)
        truth = crop_patches(case.labels, centers, size, 0)
        truth = truth == organ[:, None, None].to(truth.device, torch.uint8)  # cases may live on the GPU (release trainer)
        inputs.append(make_refine_input(image, mask, in_channels))
        targets.append(truth)
        organs.append(organ)
    return torch.cat(inputs).to(device), torch.cat(targets).to(device, torch.float32), torch.cat(organs)

