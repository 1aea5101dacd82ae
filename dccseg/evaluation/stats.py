"""Paired Wilcoxon signed-rank test between two evaluations of the same cases (method.md §1.9)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy import stats

from ..errors import DccsegError
from .report import RESULT_FORMAT

ALPHA = 0.01
MIN_CASES_FOR_POWER = 6


def wilcoxon_compare(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> dict[str, Any]:
    """Two-sided paired Wilcoxon signed-rank test of ``a`` against ``b`` (differences are a - b).

    Returns n, the median and mean difference, the statistic, p, whether p < alpha, and a note.
    Zero differences are dropped (scipy's ``wilcox`` rule). With fewer than 6 pairs the smallest
    possible two-sided p is 2/2^n >= 0.0625, so the test cannot detect anything.
    """
    first, second = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError("wilcoxon_compare needs two equally long 1-D sequences of paired values")
    differences = first - second
    n = int(differences.size)
    result: dict[str, Any] = {
        "n": n,
        "median_difference": float(np.median(differences)) if n else None,
        "mean_difference": float(np.mean(differences)) if n else None,
        "statistic": None,
        "p_value": None,
        "alpha": alpha,
        "significant": False,
        "note": "",
    }
    if not np.any(differences):
        result["note"] = "no pairs differ, so there is nothing to test"
        return result
    test = stats.wilcoxon(first, second, zero_method="wilcox", alternative="two-sided")
    result.update(statistic=float(test.statistic), p_value=float(test.pvalue), significant=bool(test.pvalue < alpha))
    if n < MIN_CASES_FOR_POWER:
        result["note"] = f"only {n} paired cases: the test has no power (the smallest possible p is 2/2^n = {2 / 2**n:.3g})"
    return result


def _case_values(document: dict[str, Any], metric: str, organ: str | None, source: str) -> dict[str, float]:
    if not isinstance(document, dict) or document.get("format") != RESULT_FORMAT:
        raise DccsegError(f"{source} is not a result file of `dccseg evaluate --json-out`; evaluate again and compare those files")
    values = {}
    for case in document["cases"]:
        value = case["organs"].get(organ, {}).get(metric) if organ else case.get(metric)
        if value is not None:
            values[case["case"]] = float(value)
    return values


def paired_values(doc_a: dict[str, Any], doc_b: dict[str, Any], metric: str = "dice_mean", organ: str | None = None,
                  sources: tuple[str, str] = ("A", "B")) -> tuple[list[str], list[float], list[float]]:
    """Case ids present in both documents with their values of ``metric`` (per case, or of one organ)."""
    values_a = _case_values(doc_a, metric, organ, sources[0])
    values_b = _case_values(doc_b, metric, organ, sources[1])
    ids = sorted(set(values_a) & set(values_b))
    if not ids:
        raise DccsegError(f"{sources[0]} and {sources[1]} share no case with a {metric} value; compare evaluations of the same cases")
    return ids, [values_a[i] for i in ids], [values_b[i] for i in ids]


def format_comparison(result: dict[str, Any], label: str) -> str:
    p = result["p_value"]
    verdict = "-" if p is None else ("significant" if result["significant"] else "not significant") + f" at p < {result['alpha']}"
    lines = [
        f"paired Wilcoxon signed-rank test on {label} (A - B)",
        f"  n = {result['n']}, median difference = {result['median_difference']:+.4f}, mean difference = {result['mean_difference']:+.4f}",
        f"  p = {'-' if p is None else f'{p:.4g}'} ({verdict})",
    ]
    if result["note"]:
        lines.append(f"  note: {result['note']}")
    return "\n".join(lines)
