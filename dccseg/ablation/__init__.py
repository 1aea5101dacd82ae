"""The DCC-CL ablation: no pretraining vs SimCLR vs AGCL vs DCC (and d scales) on multi-phase synthetic CT."""

from .plan import AblationPlan, Arm, BenchmarkData, build_plan
from .report import write_report
from .runner import run_ablation

__all__ = ["AblationPlan", "Arm", "BenchmarkData", "build_plan", "run_ablation", "write_report"]
