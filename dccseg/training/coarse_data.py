"""Coarse-stage training samples: random 3D crops of cached coarse-grid cases, with phase augmentation.

Each item is drawn from a generator seeded by (seed, epoch, index), so any worker, rank or resumed
run produces the same sample. Crops are centred on a random organ voxel (organs equally likely)
with probability ``foreground_crops``, elsewhere uniformly; volumes smaller than the crop are padded
with air (-1) and background.
"""

from __future__ import annotations

import numpy as np
import torch

from dccseg.organs import ORGANS
from dccseg.phantoms import synthesize_from_labels
from dccseg.preprocess import normalize_ct
from dccseg.training.augment import KNOWN_PHASES, random_phase
from dccseg.training.cases import CaseVolumes
from dccseg.training.configs import TrainingConfig


class CoarseSamples(torch.utils.data.Dataset):
    def __init__(self, cases: list[CaseVolumes], config: TrainingConfig) -> None:
        self.cases = cases
        self.config = config
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.cases) * self.config.coarse.samples_per_case

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.config.seed, self.epoch, index])
        case = self.cases[index % len(self.cases)]
        ct = random_phase(case.ct, case.labels, case.phase, rng, self.config.phase.probability)
        image = normalize_ct(ct.array, self.config.preprocessing.intensity)
        image, labels = random_crop(image, case.labels.array, self.config.coarse.crop, self.config.coarse.foreground_crops, rng)
        known = torch.ones(len(ORGANS) + 1, dtype=torch.bool)
        known[list(case.unlabelled)] = False
        return {
            "image": torch.from_numpy(image)[None],
            "labels": torch.from_numpy(labels.astype(np.int64))[None],
            "known": known,
            "seed": torch.tensor(int(rng.integers(2**62))),
        }


def random_crop(image: np.ndarray, labels: np.ndarray, crop: tuple[int, int, int], foreground: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    pad = [(0, max(0, c - s)) for c, s in zip(crop, image.shape)]
    if any(p[1] for p in pad):
        image = np.pad(image, pad, constant_values=-1.0)
        labels = np.pad(labels, pad, constant_values=0)
    present = np.unique(labels)
    present = present[present > 0]
    if present.size and rng.random() < foreground:
        organ = rng.choice(present)
        voxels = np.argwhere(labels == organ)
        centre = voxels[rng.integers(len(voxels))]
    else:
        centre = np.array([rng.integers(s) for s in image.shape])
    start = [int(np.clip(c - k // 2, 0, s - k)) for c, k, s in zip(centre, crop, image.shape)]
    box = tuple(slice(a, a + k) for a, k in zip(start, crop))
    return np.ascontiguousarray(image[box]), np.ascontiguousarray(labels[box])


def synthetic_cases(templates: list[CaseVolumes], count: int, seed: int) -> list[CaseVolumes]:
    """``count`` label-driven synthetic CTs in random phases, made from the training cases' own anatomy."""
    names = [o.key for o in ORGANS]
    rng = np.random.default_rng([seed, 7])
    out = []
    for i in range(count):
        template = templates[i % len(templates)]
        phase = str(rng.choice(KNOWN_PHASES))
        ct, labels = synthesize_from_labels(template.labels, names, phase, int(rng.integers(2**31)), output_spacing=template.labels.spacing)
        ct, labels = ct.with_array(ct.array.astype(np.float32)), labels.with_array(labels.array.astype(np.uint8))
        out.append(CaseVolumes(f"synthetic-{i}-{template.id}", phase, ct, labels, template.unlabelled))
    return out
