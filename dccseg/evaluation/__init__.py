"""Evaluation: per-organ Dice and HD95, aggregation per case/organ/phase, paired Wilcoxon tests, stage-wise Dice.

The functions are pure and reused by ``dccseg evaluate``, the ablation and the benchmark.
"""

from .metrics import dice, evaluate_pair, hd95
from .report import format_summary, result_document, summarize
from .runs import evaluate_dataset, evaluate_files
from .stages import format_stage_table, refine_skip_organs, stage_table
from .stats import paired_values, wilcoxon_compare

__all__ = [
    "dice",
    "evaluate_dataset",
    "evaluate_files",
    "evaluate_pair",
    "format_stage_table",
    "format_summary",
    "hd95",
    "paired_values",
    "refine_skip_organs",
    "result_document",
    "stage_table",
    "summarize",
    "wilcoxon_compare",
]
