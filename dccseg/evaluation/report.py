"""Aggregating per-case results (per organ, per case, per phase, per subject) and printing them as tables.

Two overall Dice figures are reported because the paper's tables mix them (method.md §1.9):
``dice_mean_of_cases`` (mean over organs per case, then over cases; the Wilcoxon test pairs
these per-case means) and ``dice_mean_of_organs`` (mean over cases per organ, then over organs).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

RESULT_FORMAT = "dccseg-evaluation"


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _organ_summary(results: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
    entries = [r["organs"][key] for r in results if key in r["organs"]]
    present = [m for m in entries if m["in_reference"]]
    dices = [m["dice"] for m in present]
    return {
        "n": len(present),
        "dice_mean": _mean(dices),
        "dice_std": float(np.std(dices)) if dices else None,
        "hd95_mean": _mean(m["hd95"] for m in present),
        "missed": sum(1 for m in present if not m["in_prediction"]),
        "false_positives": sum(1 for m in entries if m["in_prediction"] and not m["in_reference"]),
    }


def _aggregate(results: Sequence[dict[str, Any]], organs: list[str]) -> dict[str, Any]:
    per_organ = {key: _organ_summary(results, key) for key in organs}
    return {
        "n_cases": len(results),
        "dice_mean_of_cases": _mean(r["dice_mean"] for r in results),
        "dice_mean_of_organs": _mean(s["dice_mean"] for s in per_organ.values()),
        "hd95_mean_of_cases": _mean(r["hd95_mean"] for r in results),
        "per_organ": per_organ,
    }


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate ``evaluate_pair`` results: overall, per organ, per case and per contrast phase."""
    organs: list[str] = []
    for result in results:
        organs += [key for key in result["organs"] if key not in organs]
    phases = sorted({r.get("phase", "unknown") for r in results})
    subjects = sorted({r["subject"] for r in results if r.get("subject")})
    return {
        **_aggregate(results, organs),
        "organs": organs,
        "per_case": [
            {"case": r.get("case", ""), "phase": r.get("phase", "unknown"), "dice_mean": r["dice_mean"], "hd95_mean": r["hd95_mean"]}
            for r in results
        ],
        "per_phase": {phase: _aggregate([r for r in results if r.get("phase", "unknown") == phase], organs) for phase in phases},
        "per_subject": {subject: _aggregate([r for r in results if r.get("subject") == subject], organs) for subject in subjects},
    }


def result_document(results: Sequence[dict[str, Any]], **context: Any) -> dict[str, Any]:
    """The JSON written by ``dccseg evaluate``: context (model, dataset, ...), per-case results and summary."""
    return {"format": RESULT_FORMAT, **context, "cases": list(results), "summary": summarize(results)}


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in [header, *rows]]


def format_summary(summary: dict[str, Any]) -> str:
    """A readable report: per-organ table, Dice per organ and phase when there are several phases, overall means."""
    rows = [
        (key, str(s["n"]), _number(s["dice_mean"], 3), _number(s["dice_std"], 3), _number(s["hd95_mean"], 1), str(s["missed"]), str(s["false_positives"]))
        for key, s in summary["per_organ"].items()
    ]
    lines = _table(("organ", "n", "Dice", "±sd", "HD95 mm", "missed", "false+"), rows)
    for title, groups in (("Dice by phase", summary["per_phase"]), ("Dice by subject", summary.get("per_subject", {}))):
        if len(groups) > 1:
            header = (title, *(f"{g} (n={s['n_cases']})" for g, s in groups.items()))
            group_rows = [(key, *(_number(s["per_organ"][key]["dice_mean"], 3) for s in groups.values())) for key in summary["organs"]]
            group_rows.append(("mean of cases", *(_number(s["dice_mean_of_cases"], 3) for s in groups.values())))
            lines += ["", *_table(header, group_rows)]
    lines += [
        "",
        f"cases: {summary['n_cases']}",
        f"Dice, mean over organs per case then over cases: {_number(summary['dice_mean_of_cases'], 4)}",
        f"Dice, mean over cases per organ then over organs: {_number(summary['dice_mean_of_organs'], 4)}",
        f"HD95 (mm), mean of case means: {_number(summary['hd95_mean_of_cases'], 2)}",
    ]
    return "\n".join(lines)
