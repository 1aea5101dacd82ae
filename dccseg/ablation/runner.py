"""Run an ablation: benchmark data -> for each seed and arm: pretrain -> finetune refine -> evaluate.

The arms go through the product commands (``train_pretrain``, ``train_refine``) on the same
training dataset with the same preset, overrides and seed, and are evaluated on the same test
cases with the same priors. Output folder::

    plan.json                    the plan (a rerun must use the same one)
    data/train, data/test        the benchmark datasets
    runs/<arm>-s<seed>/          pretrain/ and refine/ run folders, eval.json (per-case Dice, times)
    results.json                 every arm's evaluation, gathered

A rerun on the same folder skips finished arms and resumes unfinished runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from dccseg.errors import DccsegError
from dccseg.fileutil import atomic_output, ensure_writable_dir
from dccseg.progress import QUIET, Progress
from dccseg.training.distributed import resolve_device
from dccseg.training.pretrain import train_pretrain
from dccseg.training.runstate import read_metrics
from dccseg.training.session import build_config
from dccseg.training.pipeline import train_refine

from .data import build_benchmark
from .evaluate import evaluate_refine, load_test_cases
from .plan import AblationPlan, Arm

PLAN_FILE = "plan.json"
RESULTS_FILE = "results.json"
EVAL_FILE = "eval.json"


def run_ablation(plan: AblationPlan, output: str | Path, device: str = "auto", progress: Progress = QUIET, command: str = "") -> Path:
    """Run (or continue) ``plan`` in ``output``; returns the path of ``results.json`` (``command`` is recorded to reproduce it)."""
    output = Path(output)
    ensure_writable_dir(output)
    _record_plan(plan, output)
    started = time.perf_counter()
    progress.update("data", 0.0, "benchmark data")
    train_dir, test_dir = build_benchmark(plan.data, output / "data", progress)
    preprocessing = build_config({"preset": plan.preset, "overrides": plan.overrides}).preprocessing.to_card()
    test_cases = load_test_cases(test_dir, preprocessing, plan.test_prior_seed)
    torch_device = resolve_device(device)
    jobs = [(seed, arm) for seed in plan.seeds for arm in plan.arms]
    for index, (seed, arm) in enumerate(jobs):
        folder = output / "runs" / f"{arm.name}-s{seed}"
        if (folder / EVAL_FILE).is_file():
            continue
        progress.update("ablation", index / len(jobs), f"{arm.name} (seed {seed})")
        progress.log(f"arm {arm.name}, seed {seed}: {'pretraining with ' + arm.loss if arm.loss else 'no pretraining'}")
        times: dict[str, float] = {}
        encoder = _pretrain(plan, arm, seed, train_dir, folder, device, times)
        clock = time.perf_counter()
        state = train_refine(train_dir, folder / "refine", encoder=encoder, config=plan.preset, overrides={**plan.overrides, "seed": seed},
                             device=device, resume=_started(folder / "refine"))
        if state != "finished":
            raise DccsegError(f"the refine training of arm {arm.name} stopped; rerun the same command to continue")
        times["refine"] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()
        records = evaluate_refine(folder / "refine", test_cases, torch_device)
        times["evaluate"] = round(time.perf_counter() - clock, 2)
        result = {"arm": arm.name, "loss": arm.loss, "form": arm.form, "d_scale": arm.d_scale, "seed": seed, "seconds": times,
                  "pretrain": _pretrain_summary(folder / "pretrain") if arm.loss else None, "cases": records}
        _write_json(folder / EVAL_FILE, result)
    progress.update("ablation", 1.0, "all arms evaluated")
    return _gather(plan, output, time.perf_counter() - started, command, _machine(torch_device))


def _pretrain(plan: AblationPlan, arm: Arm, seed: int, train_dir: Path, folder: Path, device: str, times: dict[str, float]) -> Path | None:
    if arm.loss is None:
        return None
    clock = time.perf_counter()
    state = train_pretrain(train_dir, folder / "pretrain", loss=arm.loss, form=arm.form, d_scale=arm.d_scale, config=plan.preset,
                           overrides={**plan.overrides, "seed": seed}, device=device, resume=_started(folder / "pretrain"))
    if state != "finished":
        raise DccsegError(f"the pretraining of arm {arm.name} stopped; rerun the same command to continue")
    times["pretrain"] = round(time.perf_counter() - clock, 2)
    return folder / "pretrain"


def _started(run_dir: Path) -> bool:
    return (run_dir / "status.json").is_file()


def _pretrain_summary(run_dir: Path) -> dict[str, Any]:
    records = [r for r in read_metrics(run_dir) if r.get("stage") == "pretrain"]
    last = records[-1] if records else {}
    return {"final_loss": last.get("train_loss"), "empty_view_rate": last.get("empty_view_rate"), "epochs": len(records)}


def _record_plan(plan: AblationPlan, output: Path) -> None:
    path = output / PLAN_FILE
    wanted = json.loads(json.dumps(plan.to_dict()))
    if path.is_file():
        if json.loads(path.read_text(encoding="utf-8")) != wanted:
            raise DccsegError(f"{output} holds an ablation with another plan; use a new --output folder")
        return
    _write_json(path, wanted)


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"CPU, {os.cpu_count()} cores"


def _gather(plan: AblationPlan, output: Path, seconds: float, command: str, machine: str) -> Path:
    runs = []
    for seed in plan.seeds:
        for arm in plan.arms:
            runs.append(json.loads((output / "runs" / f"{arm.name}-s{seed}" / EVAL_FILE).read_text(encoding="utf-8")))
    path = output / RESULTS_FILE
    previous = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    total = round(float(previous.get("seconds_total", 0.0)) + seconds, 1)
    _write_json(path, {"plan": plan.to_dict(), "runs": runs, "seconds_total": total, "threads": torch.get_num_threads(), "machine": machine, "command": command})
    return path


def _write_json(path: Path, data: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
