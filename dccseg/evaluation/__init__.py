"""Evaluation: per-organ Dice and HD95, aggregation per case/organ/phase, and paired Wilcoxon tests.

The functions are pure and reused by ``dccseg evaluate``, the ablation and the benchmark.
"""

from .metrics import dice, evaluate_pair, hd95
from .report import format_summary, result_document, summarize
from .runs import evaluate_dataset, evaluate_files
from .stats import paired_values, wilcoxon_compare

__all__ = [
    "dice",
    "evaluate_dataset",
    "evaluate_files",
    "evaluate_pair",
    "format_summary",
    "hd95",
    "paired_values",
    "result_document",
    "summarize",
    "wilcoxon_compare",
]
