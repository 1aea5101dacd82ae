"""Before/after of a fine-tune: the starting model and the new one on the same held-out user cases and on the benchmark.

The benchmark is the same for every run: the bundled real example CT (non-contrast) and one render each of the
two bundled test bodies (``BODY_SPLIT["test"]``, never trained on) in the contrast phases, made once per run
folder. The verdict decides whether the new version may become the default: a model that is worse on the
user's held-out cases, or that forgets the benchmark by more than ``FORGET_LIMIT``, is registered held back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dccseg.dataset import Case, Dataset
from dccseg.evaluation import wilcoxon_compare
from dccseg.io import read_image, read_labelmap
from dccseg.progress import QUIET, Progress
from dccseg.training.evaluate import case_dice, evaluate_cases

FORGET_LIMIT = 0.02
UNCHANGED = 0.005
BENCHMARK_FOLDER = "benchmark"
BENCHMARK_RENDERS = (("s0006", "portal-venous"), ("s0009", "arterial"))
BENCHMARK_SPACING = (2.0, 2.0, 4.0)
BENCHMARK_SEED = 4242


def case_scores(model_ref: str, cases: list[Case], device: torch.device, progress: Progress = QUIET, body_scale: float | str = 1.0) -> dict[str, float]:
    """Case id -> mean Dice over the organs of its reference, segmented with ``model_ref`` as ``dccseg segment --body-scale`` does."""
    return case_dice(evaluate_cases(model_ref, cases, device, progress, stage="compare", body_scale=body_scale))


def benchmark_cases(run_dir: Path) -> list[Case]:
    """The benchmark as a dataset in ``RUN_DIR/benchmark`` (made on first use): the bundled real CT and renders of the test bodies."""
    from dccseg.commands.demo import DATA
    from dccseg.phantoms import synthesize_from_labels
    from dccseg.phantoms.synthesis import prepared
    from dccseg.phantoms.templates import load_template

    folder = run_dir / BENCHMARK_FOLDER
    if (folder / "dataset.json").is_file():
        return Dataset.load(folder).cases
    dataset = Dataset.new(folder, name="fine-tune benchmark")
    ct = read_image(DATA / "example_ct.nii.gz")
    dataset.add_volumes("example-ct", ct, read_labelmap(DATA / "example_ct_organs.nii.gz", reference=ct), "non-contrast", source="bundled real CT", subject="totalseg_example")
    for index, (body, phase) in enumerate(BENCHMARK_RENDERS):
        ct, labels = synthesize_from_labels(prepared(*load_template(body)), phase=phase, seed=BENCHMARK_SEED + index, output_spacing=BENCHMARK_SPACING, field_of_view=None)
        dataset.add_volumes(f"{body}-{phase}", ct.with_array(np.round(ct.array).astype(np.int16)), labels.with_array(labels.array.astype(np.uint8)), phase,
                            source="dccseg phantom synth (test body)", subject=body)
    return dataset.cases


def compare(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Means before and after, their difference and the paired Wilcoxon p over the cases."""
    cases = sorted(before)
    first, second = [before[c] for c in cases], [after[c] for c in cases]
    test = wilcoxon_compare(second, first) if cases else {"p_value": None}
    mean_before, mean_after = (float(np.mean(v)) if v else None for v in (first, second))
    delta = None if mean_before is None else round(mean_after - mean_before, 4)
    return {
        "cases": cases, "before": _round(mean_before), "after": _round(mean_after), "delta": delta, "p_value": _round(test["p_value"]),
        "per_case": {c: {"before": round(before[c], 4), "after": round(after[c], 4)} for c in cases},
    }


def verdict(held_out: dict[str, Any], benchmark: dict[str, Any] | None) -> tuple[str, str]:
    """("better" | "worse" | "unchanged", the reason to hold the model back or "")."""
    delta = held_out.get("delta")
    forgot = benchmark is not None and benchmark.get("delta") is not None and benchmark["delta"] < -FORGET_LIMIT
    if delta is None:
        word = "unchanged"
    else:
        word = "better" if delta > UNCHANGED else "worse" if delta < -UNCHANGED else "unchanged"
    reasons = []
    if not held_out.get("cases"):
        reasons.append("not measured on any case of yours (one labelled case: nothing to hold out); add cases and fine-tune again")
    if word == "worse":
        reasons.append(f"worse than its starting model on the held-out cases ({held_out['before']:.3f} -> {held_out['after']:.3f})")
    if forgot:
        reasons.append(f"lost {-benchmark['delta']:.3f} Dice on the benchmark ({benchmark['before']:.3f} -> {benchmark['after']:.3f}; limit {FORGET_LIMIT})")
    return word, "; ".join(reasons)


def summary_line(report: dict[str, Any]) -> str:
    """"on your 3 held-out cases: 0.81 -> 0.88 (p = 0.25); on the benchmark: 0.86 -> 0.86"."""
    held = report["held_out"]
    how = "cross-validated" if held.get("method") == "cross-validation" else "held-out"
    read = f" read at body scale {held['body_scale']}" if "body_scale" in held else ""
    parts = [f"on your {len(held['cases'])} {how} case(s){read}: {_text(held['before'])} -> {_text(held['after'])}"
             + (f" (p = {held['p_value']:.2g})" if held.get("p_value") is not None else "")]
    bench = report.get("benchmark")
    if bench:
        parts.append(f"on the benchmark: {_text(bench['before'])} -> {_text(bench['after'])}")
    return "; ".join(parts)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
