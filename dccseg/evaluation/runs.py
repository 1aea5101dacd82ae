"""The two evaluation jobs: saved predictions against references, and a model on a dataset."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from ..dataset import Dataset
from ..errors import DccsegError
from ..fileutil import ensure_writable_dir
from ..io import read_image, read_labelmap, write_output
from ..organs import Organ
from ..progress import QUIET, Progress
from .inputs import match_pairs, read_pair
from .metrics import evaluate_pair


def evaluate_files(pred: str | os.PathLike, ref: str | os.PathLike, organs: Sequence[Organ], phase: str = "unknown",
                   progress: Progress = QUIET) -> list[dict[str, Any]]:
    """Per-case results for a prediction/reference pair of files, or two folders matched by case id."""
    pairs = match_pairs(Path(pred), Path(ref))
    results = []
    for index, (case, pred_path, ref_path) in enumerate(pairs):
        progress.update("evaluate", index / len(pairs), case)
        prediction, reference = read_pair(pred_path, ref_path)
        results.append(evaluate_pair(prediction, reference, organs, case=case, phase=phase))
    progress.update("evaluate", 1.0, f"{len(pairs)} case(s)")
    return results


def evaluate_dataset(dataset_dir: str | os.PathLike, model: Any, organs: Sequence[Organ] | None = None, fast: bool = False,
                     save_predictions: str | os.PathLike | None = None, progress: Progress = QUIET) -> list[dict[str, Any]]:
    """Segment every labelled case of a dataset with a loaded model and evaluate it against its label.

    ``organs`` defaults to the model's organs; predictions are written as ``<id>.nii.gz`` into
    ``save_predictions`` when given (existing files are never replaced).
    """
    from ..inference import segment_volume

    dataset = Dataset.load(dataset_dir)
    cases = [c for c in dataset.cases if c.label is not None]
    if not cases:
        raise DccsegError(f"dataset {dataset.root} has no labelled cases to evaluate; add labels with `dccseg dataset add`")
    skipped = len(dataset.cases) - len(cases)
    if skipped:
        progress.log(f"skipping {skipped} unlabelled case(s)")
    organs = list(organs) if organs is not None else model.card.organ_objects
    out_dir = Path(save_predictions) if save_predictions else None
    if out_dir is not None:
        ensure_writable_dir(out_dir)
        existing = [c.id for c in cases if (out_dir / f"{c.id}.nii.gz").exists()]
        if existing:
            raise DccsegError(f"{out_dir} already holds predictions for {', '.join(existing[:5])}; choose an empty folder")
    results = []
    for index, case in enumerate(cases):
        progress.update("evaluate", index / len(cases), f"case {case.id} ({index + 1}/{len(cases)})")
        ct = read_image(case.image)
        reference = read_labelmap(case.label, reference=ct)
        prediction = segment_volume(ct, model, organs=organs, fast=fast)
        if out_dir is not None:
            write_output(prediction, out_dir / f"{case.id}.nii.gz")
        results.append({**evaluate_pair(prediction, reference, organs, case=case.id, phase=case.phase), "subject": case.subject})
    progress.update("evaluate", 1.0, f"{len(cases)} case(s)")
    return results
