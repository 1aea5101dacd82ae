"""Stage-wise evaluation: per organ, the Dice of each inference stage, their means and what refinement gains.

The stages (``dccseg.inference.stages``): "coarse" (the coarse network alone, restored to the input
grid as inference restores labels), "refined" (what ``dccseg segment`` writes), "oracle_prior" (the
reference resampled to the coarse grid, restored the same way) and "oracle_refined" (the refine stage
fed that oracle prior). Per case only the organs present in the reference count. Means follow
``dccseg evaluate``: per organ over the cases that hold it; overall over organs per case, then over cases.
A summary is what a model card's ``stage_metrics`` stores per set; ``refine_skip_organs`` turns one
measured on validation bodies into the card's ``refine_skip``.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from ..errors import DccsegError
from ..organs import ORGAN_BY_KEY, Organ
from ..preprocess import resample_like
from ..progress import QUIET, Progress
from ..store.card import STAGE_COLUMNS
from ..volume import Volume
from .metrics import dice

GAINS = {"refined_over_coarse": ("refined", "coarse"), "oracle_refined_over_oracle_prior": ("oracle_refined", "oracle_prior")}


def case_stage_dice(predictions: dict[str, Volume], reference: Volume, organs: Sequence[Organ]) -> dict[str, dict[str, float]]:
    """{organ key: {stage: Dice}} for the ``organs`` present in ``reference`` (all maps on one grid)."""
    rows: dict[str, dict[str, float]] = {}
    for organ in organs:
        truth = reference.array == organ.label
        if truth.any():
            rows[organ.key] = {stage: dice(labels.array == organ.label, truth) for stage, labels in predictions.items()}
    return rows


def _mean(values: Iterable[float]) -> float | None:
    kept = list(values)
    return float(np.mean(kept)) if kept else None


def _stage_means(rows: Iterable[dict[str, float]]) -> dict[str, float | None]:
    rows = list(rows)
    return {stage: _mean(row[stage] for row in rows if stage in row) for stage in STAGE_COLUMNS}


def stage_table(
    pairs: Iterable[tuple[Volume, Volume]],
    model: Any,
    case_ids: Sequence[str] | None = None,
    organs: Sequence[Organ] | None = None,
    fast: bool = False,
    refine_skip: Iterable[int] | None = None,
    largest_component: bool = True,
    progress: Progress = QUIET,
    body_scale: float | str = 1.0,
) -> dict[str, Any]:
    """The stage table of a loaded model on (CT in HU, reference labels) pairs: {"cases": [...], "summary": {...}}.

    ``pairs`` may be a generator (one case in memory at a time); a reference on another grid than its
    CT is resampled onto it (nearest neighbour, noted in the case row). ``refine_skip`` (organ ids)
    defaults to the card's; pass ``()`` to measure every organ refined (as ``refine_skip_organs`` needs);
    ``body_scale`` as in ``dccseg segment --body-scale``.
    """
    from ..inference.stages import stage_predictions

    organs = list(organs) if organs is not None else model.card.organ_objects
    skip = model.card.refine_skip_labels if refine_skip is None else set(refine_skip)
    cases = []
    for index, (ct, reference) in enumerate(pairs):
        case = case_ids[index] if case_ids is not None else f"case{index + 1}"
        progress.log(f"case {case}")
        resampled = not reference.same_grid(ct)
        if resampled:
            reference = resample_like(reference, ct, is_label=True)
        timings: dict[str, float] = {}
        predictions = stage_predictions(ct, reference, model, organs, fast, skip, largest_component, progress, timings, body_scale=body_scale)
        rows = case_stage_dice(predictions, reference, organs)
        seconds = {stage: round(value, 2) for stage, value in timings.items()}
        cases.append({"case": case, "organs": rows, "mean": _stage_means(rows.values()), "seconds": seconds, "reference_resampled": resampled})
    if not cases:
        raise DccsegError("no cases to diagnose; give at least one CT with its reference labels")
    skipped = [o.key for o in organs if o.label in skip]
    return {"model": model.card.ref, "fast": fast, "cases": cases, "summary": summarize_stages(cases, skipped)}


def summarize_stages(cases: Sequence[dict[str, Any]], refine_skip: Sequence[str] = ()) -> dict[str, Any]:
    """Per-organ means over cases, overall means, the mean gains of refinement over its prior, and how many organs gain."""
    keys = sorted({key for case in cases for key in case["organs"]}, key=lambda key: ORGAN_BY_KEY[key].label)
    organs = {key: _stage_means(case["organs"][key] for case in cases if key in case["organs"]) for key in keys}
    means = {stage: _mean(case["mean"][stage] for case in cases if case["mean"][stage] is not None) for stage in STAGE_COLUMNS}
    gains = {name: _difference(means[a], means[b]) for name, (a, b) in GAINS.items()}
    improved = {name: sum(1 for row in organs.values() if (_difference(row[a], row[b]) or 0.0) > 0) for name, (a, b) in GAINS.items()}
    return {
        "cases": [case["case"] for case in cases],
        "refine_skip": list(refine_skip),
        "organs": organs,
        "mean": means,
        "gain": gains,
        "organs_improved": improved,
        "n_organs": len(organs),
    }


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def refine_skip_organs(summary: dict[str, Any], margin: float = 0.0) -> list[str]:
    """The organ keys whose refined Dice is below their coarse-only Dice by more than ``margin`` (a card's ``refine_skip``).

    Use a summary measured on validation bodies with every organ refined (``refine_skip=()``).
    """
    if summary.get("refine_skip"):
        raise DccsegError(
            f"this stage table was measured with refinement skipped for {', '.join(summary['refine_skip'])}; "
            "measure it with every organ refined (stage_table(..., refine_skip=()) or `dccseg diagnose --refine-all`)"
        )
    rows = summary["organs"].items()
    return [key for key, row in rows if row.get("refined") is not None and row.get("coarse") is not None and row["refined"] < row["coarse"] - margin]


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def format_stage_table(summary: dict[str, Any]) -> str:
    """A Markdown table: per organ the Dice of each stage and the gain of refinement over its prior, then the means."""
    header = ["organ", "coarse", "refined", "gain", "oracle prior", "oracle refined", "gain"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def row(name: str, values: dict[str, Any]) -> str:
        cells = [values.get(stage) for stage in ("coarse", "refined")]
        oracle = [values.get(stage) for stage in ("oracle_prior", "oracle_refined")]
        gain = [_difference(cells[1], cells[0]), _difference(oracle[1], oracle[0])]
        texts = [_cell(cells[0]), _cell(cells[1]), _cell(gain[0], True), _cell(oracle[0]), _cell(oracle[1]), _cell(gain[1], True)]
        return "| " + " | ".join([name, *texts]) + " |"

    lines += [row(key, values) for key, values in summary["organs"].items()]
    if summary.get("mean"):
        lines.append(row("**mean**", summary["mean"]))
    improved, total = summary.get("organs_improved"), summary.get("n_organs")
    if improved is not None and total:
        lines.append("")
        lines.append(
            f"refinement beats its prior for {improved['refined_over_coarse']} of {total} organs with the coarse prior, "
            f"{improved['oracle_refined_over_oracle_prior']} of {total} with the oracle prior"
        )
    if summary.get("cases"):
        lines.append(f"cases: {', '.join(summary['cases'])}")
    if summary.get("refine_skip"):
        lines.append(f"refinement skipped (model card) for: {', '.join(summary['refine_skip'])}")
    return "\n".join(lines)
