"""Coarse masks for the refine stage's attention channel (method.md §1.1), on the coarse grid.

* ``out_of_fold_priors``: K coarse models, each trained on the other folds, predict their held-out
  fold, so every training case gets a mask of test-time quality. Cached in ``RUN_DIR/priors/``
  (one ``<case>.npz`` each), so a resumed run skips the folds already done.
* ``predicted_prior``: one coarse model's prediction (validation cases, or the ``coarse`` mode).
* ``degraded_prior``: the ground truth on the coarse grid, each organ randomly dilated, eroded and
  shifted by a voxel: a cheap stand-in with coarse-like errors.
* ``realistic_prior``: the errors a coarse network makes on patients it never saw, drawn on the
  ground truth: shifts of up to two voxels, one or two voxels too big or too small, end slices
  missing, a hole, a leak into a neighbouring organ. A refine network cannot copy such a prior.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import torch
from torch import nn

from dccseg.fileutil import atomic_output, ensure_writable_dir
from dccseg.preprocess import IntensityConfig
from dccseg.training.cases import CaseVolumes
from dccseg.training.coarse import fit_coarse, predict_coarse
from dccseg.training.loop import StageStopped
from dccseg.training.session import Session
from dccseg.volume import Volume

PRIOR_DIR = "priors"
LEAK_PROBABILITY, MISSING_END_PROBABILITY, HOLE_PROBABILITY = 0.2, 0.2, 0.15


def degraded_prior(labels: Volume, rng: np.random.Generator) -> Volume:
    """Coarse-grid ground truth with a random 1-voxel dilation/erosion and shift per organ."""
    out = np.zeros_like(labels.array)
    organs = [int(v) for v in np.unique(labels.array) if v > 0]
    for organ in rng.permutation(organs) if organs else []:
        mask = labels.array == organ
        change = rng.integers(3)
        if change == 0:
            mask = ndi.binary_dilation(mask)
        elif change == 1 and ndi.binary_erosion(mask).any():
            mask = ndi.binary_erosion(mask)
        mask = shifted(mask, tuple(int(s) for s in rng.integers(-1, 2, 3)))
        out[mask] = organ
    return labels.with_array(out)


def realistic_prior(labels: Volume, rng: np.random.Generator) -> Volume:
    """Coarse-grid ground truth with the errors of a coarse network on an unseen patient, drawn independently per organ."""
    out = np.zeros_like(labels.array)
    organs = [int(v) for v in np.unique(labels.array) if v > 0]
    for organ in rng.permutation(organs) if organs else []:
        mask = _with_coarse_errors(labels.array, organ, rng)
        out[mask] = organ
    return labels.with_array(out)


def _with_coarse_errors(labels: np.ndarray, organ: int, rng: np.random.Generator) -> np.ndarray:
    mask = labels == organ
    size = int(rng.integers(-2, 3))  # voxels grown (+) or shrunk (-)
    if size > 0:
        mask = ndi.binary_dilation(mask, iterations=size)
    elif size < 0 and ndi.binary_erosion(mask, iterations=-size).any():
        mask = ndi.binary_erosion(mask, iterations=-size)
    if rng.random() < LEAK_PROBABILITY:
        near = ndi.binary_dilation(mask, iterations=2) & (labels > 0) & (labels != organ)
        mask |= near & (rng.random(mask.shape) < 0.7)
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    if slices.size > 3 and rng.random() < MISSING_END_PROBABILITY:
        cut = int(rng.integers(1, max(2, slices.size // 4) + 1))
        mask[slices[:cut] if rng.random() < 0.5 else slices[-cut:]] = False
    if rng.random() < HOLE_PROBABILITY and mask.sum() > 50:
        centre = np.argwhere(mask)[int(rng.integers(int(mask.sum())))]
        grid = np.ogrid[tuple(slice(0, n) for n in mask.shape)]
        mask &= sum((g - c) ** 2 for g, c in zip(grid, centre)) > int(rng.integers(2, 4)) ** 2
    shift = (int(rng.integers(-1, 2)), *(int(s) for s in rng.integers(-2, 3, 2)))  # (z, y, x)
    return shifted(mask, shift)


def shifted(mask: np.ndarray, shift: tuple[int, ...]) -> np.ndarray:
    """``mask`` moved by ``shift`` voxels per axis; what leaves the grid is lost, nothing wraps round to the other side."""
    out = np.zeros_like(mask)
    source = tuple(slice(max(-s, 0), n - max(s, 0)) for s, n in zip(shift, mask.shape))
    target = tuple(slice(max(s, 0), n - max(-s, 0)) for s, n in zip(shift, mask.shape))
    out[target] = mask[source]
    return out


SYNTHETIC_PRIORS = {"degraded": degraded_prior, "realistic": realistic_prior}
"""Priors drawn on the ground truth, by prior mode (other modes validate on degraded ones when no coarse model is given)."""


def predicted_prior(net: nn.Module, case: CaseVolumes, intensity: IntensityConfig, divisor: int, device: torch.device) -> Volume:
    return case.labels.with_array(predict_coarse(net, case.ct.array, intensity, divisor, device))


def _prior_path(run_dir: Path, case_id: str) -> Path:
    return run_dir / PRIOR_DIR / f"{case_id}.npz"


def save_prior(run_dir: Path, case_id: str, prior: Volume) -> None:
    ensure_writable_dir(run_dir / PRIOR_DIR)
    with atomic_output(_prior_path(run_dir, case_id)) as tmp:
        with open(tmp, "wb") as stream:
            np.savez_compressed(stream, labels=prior.array, spacing=prior.spacing, origin=prior.origin, direction=prior.direction)


def load_prior(run_dir: Path, case_id: str) -> Volume | None:
    path = _prior_path(run_dir, case_id)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return Volume(data["labels"], tuple(data["spacing"].tolist()), tuple(data["origin"].tolist()), tuple(data["direction"].tolist()))


def fold_of(ids: list[str], folds: int) -> dict[str, int]:
    """Case id -> fold (0..folds-1), round robin over the sorted ids."""
    return {case_id: i % folds for i, case_id in enumerate(sorted(ids))}


def out_of_fold_priors(session: Session, cases: list[CaseVolumes]) -> dict[str, Volume]:
    """Masks of test-time quality for ``cases`` (coarse grid): fold k is predicted by a model trained without it."""
    config = session.config
    folds = min(config.refine.folds, len(cases))
    assignment = fold_of([c.id for c in cases], folds)
    priors: dict[str, Volume] = {}
    for fold in range(folds):
        held_out = [c for c in cases if assignment[c.id] == fold]
        cached = {c.id: load_prior(session.run_dir, c.id) for c in held_out}
        if all(v is not None for v in cached.values()):
            priors.update(cached)  # type: ignore[arg-type]
            continue
        training = [c for c in cases if assignment[c.id] != fold]
        stage = f"coarse-fold{fold + 1}"
        session.log(f"out-of-fold priors: fold {fold + 1}/{folds}, training on {len(training)} cases")
        result, net = fit_coarse(session, stage, training, held_out, config.coarse, config.refine.fold_epochs)
        if result.state != "finished":
            raise StageStopped(stage)
        net.to(session.ctx.device)
        for case in held_out:
            prior = predicted_prior(net, case, config.preprocessing.intensity, config.coarse.network.size_divisor, session.ctx.device)
            if session.ctx.is_writer:
                save_prior(session.run_dir, case.id, prior)
            priors[case.id] = prior
    return priors

