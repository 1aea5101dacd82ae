"""Training cases in memory: read once, put in canonical orientation, resampled to the working grids.

Datasets are small (tens of cases), so every stage caches its preprocessed volumes in memory.
The HU are kept (not normalised) because phase augmentation works in HU; normalisation happens
per sample, after augmentation, exactly as inference normalises a whole volume.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dccseg.errors import DccsegError
from dccseg.fileutil import atomic_output
from dccseg.preprocess import resample, to_canonical
from dccseg.volume import Volume

if TYPE_CHECKING:  # file IO (SimpleITK) loads only where cases are read: the release trainer runs without it
    from dccseg.dataset import Case, Dataset

SPLIT_FILE = "split.json"


@dataclass
class CaseVolumes:
    """One case on a working grid: CT in HU (float32) and organ labels (uint8), same grid.

    ``unlabelled``: organ ids the case's label map does not annotate (a dataset that lacks them); their voxels
    count as unknown in the loss, not as background.
    """

    id: str
    phase: str
    ct: Volume
    labels: Volume
    unlabelled: tuple[int, ...] = ()


def labelled_cases(dataset: Dataset) -> list[Case]:
    cases = [c for c in dataset.cases if c.label is not None]
    if not cases:
        raise DccsegError(f"dataset {dataset.root} has no labelled cases; add cases with 'dccseg dataset add ... --label'")
    return cases


def read_canonical(case: Case) -> tuple[Volume, Volume]:
    """The case's CT (float32 HU) and label map (uint8), both in canonical orientation."""
    from dccseg.io import read_image, read_labelmap

    ct = read_image(case.image)
    labels = read_labelmap(case.label, reference=ct)
    ct_canonical, transform = to_canonical(ct)
    labels_canonical = Volume(np.ascontiguousarray(transform.apply(labels.array)).astype(np.uint8), ct_canonical.spacing, ct_canonical.origin, ct_canonical.direction)
    return ct_canonical.with_array(ct_canonical.array.astype(np.float32, copy=False)), labels_canonical


def on_grid(ct: Volume, labels: Volume, spacing: tuple[float, float, float]) -> tuple[Volume, Volume]:
    """CT (linear) and labels (nearest) resampled to ``spacing`` (x, y, z mm)."""
    image = resample(ct, spacing, is_label=False)
    return image.with_array(image.array.astype(np.float32, copy=False)), resample(labels, spacing, is_label=True)


def load_case(case: Case, spacing: tuple[float, float, float]) -> CaseVolumes:
    ct, labels = on_grid(*read_canonical(case), spacing)
    return CaseVolumes(case.id, case.phase, ct, labels)


def split_cases(cases: list[Case], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A deterministic (train ids, validation ids) split; one case only means no validation."""
    ids = sorted(c.id for c in cases)
    if len(ids) < 2 or val_fraction <= 0:
        return ids, []
    order = np.random.default_rng(seed).permutation(len(ids))
    n_val = min(max(1, round(val_fraction * len(ids))), len(ids) - 1)
    val = sorted(ids[i] for i in order[:n_val])
    return [i for i in ids if i not in val], val


def load_or_make_split(run_dir: Path, cases: list[Case], val_fraction: float, seed: int, reuse_from: Path | None = None,
                       held_out: list[str] | None = None) -> tuple[list[str], list[str]]:
    """The run's split: kept in ``split.json`` so resumed and later stages (refine) use the same one.

    ``reuse_from``: the coarse run folder, whose split refine must keep so its validation cases
    were never seen by the coarse model either. ``held_out``: the validation cases the user chose.
    """
    known = {c.id for c in cases}
    if held_out:
        unknown = sorted(set(held_out) - known)
        if unknown:
            raise DccsegError(f"--held-out names cases that are not labelled cases of the dataset: {', '.join(unknown)}")
        if not known - set(held_out):
            raise DccsegError("--held-out leaves no case to train on; hold out fewer cases")
        return sorted(known - set(held_out)), sorted(held_out)
    for folder in (run_dir, reuse_from):
        path = folder / SPLIT_FILE if folder is not None else None
        if path is not None and path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            train = [i for i in data["train"] if i in known]
            val = [i for i in data["val"] if i in known]
            new = sorted(known - set(train) - set(val))
            train += new  # cases added since the split was made join the training set
            break
    else:
        train, val = split_cases(cases, val_fraction, seed)
    return train, val


def save_split(run_dir: Path, train: list[str], val: list[str]) -> None:
    with atomic_output(run_dir / SPLIT_FILE) as tmp:
        tmp.write_text(json.dumps({"train": train, "val": val}, indent=2) + "\n", encoding="utf-8")
