"""Evaluate a run's model folder on held-out cases with the full ``dccseg segment`` pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dccseg.dataset import Case
from dccseg.evaluation import evaluate_pair, summarize
from dccseg.inference import segment_volume
from dccseg.io import read_image, read_labelmap
from dccseg.progress import QUIET, Progress
from dccseg.store import load_model


def evaluate_model_folder(folder: Path, cases: list[Case], device: torch.device, progress: Progress = QUIET) -> dict[str, Any]:
    """The model card's metrics: ``dice_mean`` (per case, then over cases), ``dice`` per organ, per phase, HD95."""
    model = load_model(str(Path(folder).resolve()), device)
    results = []
    for index, case in enumerate(cases):
        progress.update("evaluate", index / len(cases), f"segmenting {case.id}")
        ct = read_image(case.image)
        reference = read_labelmap(case.label, reference=ct)
        results.append(evaluate_pair(segment_volume(ct, model), reference, model.card.organ_objects, case=case.id, phase=case.phase))
    progress.update("evaluate", 1.0, f"{len(cases)} case(s)")
    summary = summarize(results)
    return {
        "evaluated_on": f"{len(cases)} validation case(s): {', '.join(c.id for c in cases)}",
        "dice_mean": summary["dice_mean_of_cases"],
        "dice_mean_of_organs": summary["dice_mean_of_organs"],
        "dice": {key: organ["dice_mean"] for key, organ in summary["per_organ"].items() if organ["dice_mean"] is not None},
        "hd95_mean": summary["hd95_mean_of_cases"],
        "per_phase": {phase: part["dice_mean_of_cases"] for phase, part in summary["per_phase"].items()},
    }
