"""Pretraining data: organ patches of every training case, labelled with organ and phase, as two views each.

Each case is held on the refine grid twice normalised: the network input (the model's intensity
configuration, e.g. per-volume percentiles) and the image d is measured on (``d_scale``):

* ``fixed`` (default): the [-175, 250] HU window mapped linearly to [-1, 1], so a given d
  difference v means the same HU difference in every scan (v = 1 is 212.5 HU);
* ``percentile``: the network input itself, the paper's per-volume scale (method.md §1.4 notes that
  its units are volume-relative).

The attention mask is the coarse prior of the case (out-of-fold, coarse or degraded ground truth,
exactly as the refine stage makes it, see ``dccseg.training.priors``). A batch is cut out of the
cached volumes on the CPU in one gather per case, moved to the device, and augmented there
(``dccseg.training.views``); d is computed from the views before any intensity change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dccseg.errors import DccsegError
from dccseg.inference.settings import InferenceSettings
from dccseg.losses import PretrainTargets
from dccseg.networks import make_refine_input
from dccseg.organs import PHASES
from dccseg.patches import IMAGE_PAD, crop_patches, training_centers
from dccseg.preprocess import IntensityConfig, attention_labels, normalize_ct
from dccseg.training.cases import CaseVolumes, on_grid, read_canonical
from dccseg.training.priors import degraded_prior, out_of_fold_priors, predicted_prior
from dccseg.training.views import ViewConfig, apply_intensity_jitter, two_views
from dccseg.volume import Volume

D_SCALES = ("fixed", "percentile")
ROW_FIELDS = ("case", "organ", "z", "y", "x")


@dataclass
class PretrainCase:
    id: str
    phase: int  # index into dccseg.organs.PHASES
    image: torch.Tensor  # (Z, H, W) float32 network input in [-1, 1]
    d_image: torch.Tensor  # (Z, H, W) float32 in [-1, 1], the scale d is measured on
    prior: torch.Tensor  # (Z, H, W) uint8 coarse organ labels
    organs: list[int]


@dataclass
class PretrainBatch:
    """n patches on the CPU: images (n, 2, S, S) = [network input, d image], masks (n, S, S), organ/phase (n,)."""

    images: torch.Tensor
    masks: torch.Tensor
    organ: torch.Tensor  # 1-based organ labels
    phase: torch.Tensor


def d_intensity(config: IntensityConfig, d_scale: str) -> IntensityConfig | None:
    """The intensity configuration of the d image; None means "the network input itself"."""
    if d_scale not in D_SCALES:
        raise DccsegError(f"unknown d scale '{d_scale}'; use one of {', '.join(D_SCALES)}")
    if d_scale == "percentile":
        return None
    fixed = IntensityConfig(window=config.window, percentiles=config.percentiles, mode="fixed")
    return None if fixed == config else fixed


def pretrain_case(case_id: str, phase: str, ct: Volume, prior: Volume, settings: InferenceSettings, d_scale: str) -> PretrainCase:
    """A case on the refine grid (``ct`` canonical HU on that grid, ``prior`` on any grid)."""
    prior_r = attention_labels(prior, ct).array.astype(np.uint8)
    image = torch.from_numpy(normalize_ct(ct.array, settings.intensity))
    d_config = d_intensity(settings.intensity, d_scale)
    d_image = image if d_config is None else torch.from_numpy(normalize_ct(ct.array, d_config))
    organs = [int(v) for v in np.unique(prior_r) if v > 0]
    return PretrainCase(case_id, PHASES.index(phase if phase in PHASES else "unknown"), image, d_image, torch.from_numpy(prior_r), organs)


def case_priors(session: Any, small: list[CaseVolumes], coarse_net: torch.nn.Module | None) -> dict[str, Volume]:
    """Coarse-grid priors of the training cases, made as the refine stage makes them (same seeds, same cache)."""
    config = session.config
    mode = config.refine.prior
    if mode == "oof":
        return out_of_fold_priors(session, small)
    if mode == "coarse":
        if coarse_net is None:
            raise DccsegError("--prior coarse needs --coarse RUN_DIR_OR_MODEL")
        device = session.ctx.device
        with torch.no_grad():
            return {c.id: predicted_prior(coarse_net, c, config.preprocessing.intensity, config.coarse.network.size_divisor, device) for c in small}
    return {c.id: degraded_prior(c.labels, np.random.default_rng([config.seed, index, 3])) for index, c in enumerate(small)}


def load_pretrain_cases(session: Any, coarse_net: torch.nn.Module | None, d_scale: str) -> list[PretrainCase]:
    """Every training case of the session with its prior, on the refine grid."""
    config = session.config
    settings = InferenceSettings.from_card(config.preprocessing.to_card())
    small: list[CaseVolumes] = []
    fine: dict[str, Volume] = {}
    for case in session.cases(session.train_ids):
        session.state.set(force=False, stage="load", message=f"loading {case.id}")
        ct, labels = read_canonical(case)
        ct_c, labels_c = on_grid(ct, labels, config.preprocessing.coarse_spacing)
        small.append(CaseVolumes(case.id, case.phase, ct_c, labels_c))
        fine[case.id] = on_grid(ct, labels, settings.refine_grid_spacing(ct.spacing[2]))[0]
    priors = case_priors(session, small, coarse_net)
    return [pretrain_case(c.id, c.phase, fine[c.id], priors[c.id], settings, d_scale) for c in small]


def patch_rows(cases: list[PretrainCase], per_organ: int, rng: np.random.Generator) -> np.ndarray:
    """(N, 5) int64 rows (case, organ, z, y, x): ``per_organ`` centres in each organ of each case's prior."""
    rows = []
    for index, case in enumerate(cases):
        prior = case.prior.numpy()
        for organ in case.organs:
            centers = training_centers(prior, organ, per_organ, rng)
            head = np.tile(np.array([[index, organ]], dtype=np.int64), (len(centers), 1))
            rows.append(np.concatenate([head, centers], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, len(ROW_FIELDS)), dtype=np.int64)


def gather_batch(cases: list[PretrainCase], rows: np.ndarray, size: int) -> PretrainBatch:
    """Cut the patches of ``rows`` in their order (one gather per case)."""
    n = len(rows)
    images = torch.empty((n, 2, size, size), dtype=torch.float32)
    masks = torch.empty((n, size, size), dtype=torch.float32)
    phases = torch.empty(n, dtype=torch.long)
    for index in np.unique(rows[:, 0]):
        where = torch.from_numpy(np.nonzero(rows[:, 0] == index)[0])
        case = cases[int(index)]
        centers = torch.from_numpy(rows[where.numpy(), 2:5])
        organ = torch.from_numpy(rows[where.numpy(), 1]).to(torch.uint8)
        image = crop_patches(case.image, centers, size, IMAGE_PAD)
        images[where, 0] = image
        images[where, 1] = image if case.d_image is case.image else crop_patches(case.d_image, centers, size, IMAGE_PAD)
        masks[where] = (crop_patches(case.prior, centers, size, 0) == organ[:, None, None]).to(torch.float32)
        phases[where] = case.phase
    return PretrainBatch(images, masks, torch.from_numpy(rows[:, 1].copy()), phases)


def batch_views(batch: PretrainBatch, views: ViewConfig, in_channels: int, generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, PretrainTargets]:
    """Network inputs (2n, C, S, S) and loss targets: two views per patch, d images taken before any intensity change."""
    images, masks = two_views(batch.images.to(device, non_blocking=True), batch.masks.to(device, non_blocking=True), views, generator)
    d_views = images[:, 1]
    net_image = apply_intensity_jitter(images[:, 0], views.intensity_jitter, generator)
    inputs = make_refine_input(net_image, masks, in_channels)
    targets = PretrainTargets(organ=(batch.organ - 1).to(device), phase=batch.phase.to(device), image=d_views, mask=masks)
    return inputs, targets
