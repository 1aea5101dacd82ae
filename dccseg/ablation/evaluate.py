"""Per-organ Dice of one arm's refine network on the held-out test cases, from shared coarse priors.

Every arm is evaluated on the same inputs: each test case on the refine grid and the same coarse
prior (its ground truth on the coarse grid, degraded with a fixed seed per case, exactly the kind
of prior the refine networks were trained with). The refine network runs on every organ patch of
every slice (method.md §1.8: slice centroid + K-1 random pixels) and the patches are fused by
majority vote (``dccseg.inference.pipeline.refine_votes`` and ``dccseg.fusion.fuse``); Dice is
measured on the refine grid against the ground truth resampled there (nearest neighbour).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from dccseg.dataset import Dataset
from dccseg.evaluation import dice
from dccseg.fusion import fuse
from dccseg.inference.pipeline import refine_votes
from dccseg.inference.settings import InferenceSettings
from dccseg.networks import RefineConfig, build_refine_net
from dccseg.organs import ORGAN_BY_LABEL
from dccseg.preprocess import attention_labels, normalize_ct
from dccseg.training.cases import on_grid, read_canonical
from dccseg.training.export import load_part
from dccseg.training.priors import degraded_prior


@dataclass
class TestCase:
    id: str
    phase: str
    image: torch.Tensor  # (Z, H, W) normalised, refine grid
    prior: np.ndarray  # (Z, H, W) uint8 coarse prior on the refine grid
    truth: np.ndarray  # (Z, H, W) uint8 ground truth on the refine grid


def load_test_cases(dataset_dir: Path, preprocessing: dict[str, Any], prior_seed: int) -> list[TestCase]:
    """The test cases with their shared degraded-ground-truth priors (seeded per case index)."""
    settings = InferenceSettings.from_card(preprocessing)
    cases = []
    for index, case in enumerate(sorted(Dataset.load(dataset_dir).cases, key=lambda c: c.id)):
        ct, labels = read_canonical(case)
        _, labels_c = on_grid(ct, labels, settings.coarse_spacing)
        prior = degraded_prior(labels_c, np.random.default_rng([prior_seed, index]))
        ct_r, labels_r = on_grid(ct, labels, settings.refine_grid_spacing(ct.spacing[2]))
        prior_r = attention_labels(prior, labels_r)
        image = torch.from_numpy(normalize_ct(ct_r.array, settings.intensity))
        cases.append(TestCase(case.id, case.phase, image, prior_r.array.astype(np.uint8), labels_r.array.astype(np.uint8)))
    return cases


def load_refine(run_dir: Path, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The finished refine network of a ``train refine`` run folder, in eval mode."""
    state, info = load_part(Path(run_dir) / "refine")  # type: ignore[misc]
    net = build_refine_net(RefineConfig.from_dict(info["architecture"]))
    net.load_state_dict(state)
    return net.to(device).eval(), info


def segment_case(case: TestCase, net: torch.nn.Module, info: dict[str, Any], device: torch.device) -> np.ndarray:
    """The fused refine labels of one test case (refine grid)."""
    settings = InferenceSettings.from_card(info["preprocessing"])
    model = SimpleNamespace(device=device, refine=net, card=SimpleNamespace(architecture={"refine": info["architecture"]}))
    wanted = [int(v) for v in np.unique(case.prior) if v > 0]
    with torch.no_grad():
        accumulators = refine_votes(case.image, case.prior, wanted, model, settings)
    if not accumulators:
        return np.zeros(case.truth.shape, dtype=np.uint8)
    return fuse(case.truth.shape, accumulators).cpu().numpy()


def case_dice(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """{organ key: Dice} for the organs in the ground truth or the prediction."""
    out = {}
    for label in sorted(set(np.unique(truth).tolist()) | set(np.unique(prediction).tolist())):
        if label == 0 or label not in ORGAN_BY_LABEL:
            continue
        value = dice(prediction == label, truth == label)
        if not math.isnan(value):
            out[ORGAN_BY_LABEL[label].key] = round(float(value), 6)
    return out


def evaluate_refine(run_dir: Path, cases: list[TestCase], device: torch.device) -> list[dict[str, Any]]:
    """One record per test case: id, phase, per-organ Dice and their mean."""
    net, info = load_refine(run_dir, device)
    records = []
    for case in cases:
        organs = case_dice(segment_case(case, net, info, device), case.truth)
        records.append({"case": case.id, "phase": case.phase, "organs": organs, "dice_mean": float(np.mean(list(organs.values()))) if organs else None})
    return records
