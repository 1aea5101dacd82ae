"""Evaluate a model on labelled cases with the full ``dccseg segment`` pipeline: the card's metrics and the per-case Dice."""

from __future__ import annotations

from typing import Any

import torch

from dccseg.dataset import Case
from dccseg.evaluation import evaluate_pair, summarize
from dccseg.inference import segment_volume
from dccseg.io import read_image, read_labelmap
from dccseg.progress import QUIET, Progress
from dccseg.store import load_model


def evaluate_cases(model_ref: str, cases: list[Case], device: torch.device, progress: Progress = QUIET, stage: str = "evaluate",
                   body_scale: float | str = 1.0) -> list[dict[str, Any]]:
    """``evaluate_pair`` of every case, segmented with ``model_ref`` (a reference or a model folder) as ``dccseg segment --body-scale`` does."""
    model = load_model(model_ref, device)
    results = []
    for index, case in enumerate(cases):
        progress.update(stage, index / max(len(cases), 1), f"segmenting {case.id} with {model.card.ref}")
        ct = read_image(case.image)
        reference = read_labelmap(case.label, reference=ct)
        results.append(evaluate_pair(segment_volume(ct, model, body_scale=body_scale), reference, model.card.organ_objects, case=case.id, phase=case.phase))
    progress.update(stage, 1.0, f"{len(cases)} case(s)")
    return results


def case_dice(results: list[dict[str, Any]]) -> dict[str, float]:
    """Case id -> its mean Dice over the organs of its reference (0 when it has none the model found)."""
    return {result["case"]: float(result["dice_mean"]) if result["dice_mean"] is not None else 0.0 for result in results}


def card_metrics(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The model card's metrics: ``dice_mean`` (per case, then over cases), ``dice`` per organ, per phase, HD95."""
    summary = summarize(results)
    return {
        "evaluated_on": f"{len(results)} validation case(s): {', '.join(r['case'] for r in results)}",
        "dice_mean": summary["dice_mean_of_cases"],
        "dice_mean_of_organs": summary["dice_mean_of_organs"],
        "dice": {key: organ["dice_mean"] for key, organ in summary["per_organ"].items() if organ["dice_mean"] is not None},
        "hd95_mean": summary["hd95_mean_of_cases"],
        "per_phase": {phase: part["dice_mean_of_cases"] for phase, part in summary["per_phase"].items()},
    }

