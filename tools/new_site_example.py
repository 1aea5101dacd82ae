"""The "new site" example of the fine-tuning loop (docs/training.md): a site unlike the adult bodies the shipped model learnt.

The site is a children's hospital: bodies are ``CHILD_SCALE`` of an adult's size in every direction (a toddler;
0.65, a school-age child, was the site until the shipped model did as well on it as on adults), scanned chest to
pelvis in arterial and portal-venous phase. The shipped model learnt adult bodies only.
Bodies come from the bundled training bodies (never the test bodies, which the benchmark keeps unseen); the first
``TRAIN`` cases are the site's curated training cases, the other ``HELD_OUT`` its held-out cases.

    python tools/new_site_example.py WORK [--model dccseg-abdomen@VERSION] [--world-ratio R ...]   # default: the shipped model

Steps, each skipped when its result is already in WORK (so a stopped example resumes):
``WORK/site`` (the dataset), ``WORK/finetune-r<R>`` (``train all --from MODEL --world-ratio R``, one per ratio),
``WORK/finetune-children`` (the first ratio with ``--body-scale auto``: the children trained at an adult's size and
compared as DCC Segment's Child box reads them), ``WORK/scratch`` (``train all`` from scratch on the same three cases, for the fine-tune's epochs: coarse 15, refine 5), then
``WORK/report.json`` (before/after of every run, on the held-out cases and the benchmark; the first ratio is the
one the report calls the fine-tune). ``docs/finetune_example.json`` is that report for the shipped model.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from dccseg.dataset import Dataset
from dccseg.phantoms import synthesize_from_labels
from dccseg.phantoms.synthesis import prepared
from dccseg.phantoms.templates import BODY_SPLIT, load_template
from dccseg.store import ModelStore
from dccseg.volume import Volume

PHASES = ("portal-venous", "arterial", "portal-venous")
SPACING = (2.0, 2.0, 4.0)
CHILD_SCALE = 0.5
TRAIN, HELD_OUT = 3, 3
SEED = 5
CHILDREN_RUN = "finetune-children"
SCRATCH_OVERRIDES = {"coarse__epochs": 15, "refine__epochs": 5, "refine__prior": "coarse"}  # the fine-tune's epochs; coarse-mask priors need no fold models


def child(volume: Volume) -> Volume:
    """The same voxels at ``CHILD_SCALE`` times the spacing: a body of a child's size."""
    return Volume(volume.array, tuple(s * CHILD_SCALE for s in volume.spacing), tuple(o * CHILD_SCALE for o in volume.origin), volume.direction)


def build_site(folder: Path) -> list[str]:
    """The site's dataset; returns the held-out case ids."""
    bodies = BODY_SPLIT["train"]
    if not (folder / "dataset.json").is_file():
        dataset = Dataset.new(folder, name="new-site example (children)")
        for index in range(TRAIN + HELD_OUT):
            body = bodies[(index + 1) % len(bodies)]
            case_seed = SEED * 1000 + index
            ct, labels = synthesize_from_labels(prepared(*load_template(body)), phase=PHASES[index % len(PHASES)], seed=case_seed,
                                                output_spacing=SPACING, field_of_view=None)
            role = "train" if index < TRAIN else "held-out"
            dataset.add_volumes(f"site-{index:02d}-{role}", child(ct.with_array(np.round(ct.array).astype(np.int16))), child(labels.with_array(labels.array.astype(np.uint8))),
                                PHASES[index % len(PHASES)], source="tools/new_site_example.py", notes=f"{body}, seed {case_seed}, child size x{CHILD_SCALE}", subject=f"{body}-{case_seed}")
    return sorted(c.id for c in Dataset.load(folder).cases if c.id.endswith("held-out"))


def _train(work: Path, run: str, **options) -> float | None:
    """``train_all`` into ``WORK/run`` unless it finished before; returns its wall seconds (None when skipped)."""
    from dccseg.store import ModelStore
    from dccseg.training.pipeline import train_all

    status = work / run / "status.json"
    if status.is_file() and json.loads(status.read_text(encoding="utf-8"))["state"] == "finished":
        return None
    started = time.perf_counter()
    train_all(work / "site", work / run, device="cpu", resume=status.is_file(), store=ModelStore(work / "store"), **options)
    return round(time.perf_counter() - started)


def _run_report(work: Path, run: str, seconds: float | None, previous: dict, **settings) -> dict:
    """A fine-tune's before/after from its card, with its settings and wall seconds (those of an earlier report when it was skipped)."""
    card = json.loads((work / run / "model" / "model.json").read_text(encoding="utf-8"))
    return {**card["metrics"]["finetune"], "held_back": card.get("held_back", ""), **settings,
            "seconds": seconds if seconds is not None else previous.get(run, {}).get("seconds")}


def scratch_report(work: Path, finetune: dict, held_out: list[str]) -> dict:
    """The scratch model against the fine-tune's starting model, on the same held-out cases and benchmark."""
    import torch

    from dccseg.training.finetune_report import benchmark_cases, case_scores, compare

    folder = str((work / "scratch" / "model").resolve())
    cases = [c for c in Dataset.load(work / "site").cases if c.id in held_out]
    before = {"held_out": {c: v["before"] for c, v in finetune["held_out"]["per_case"].items()},
              "benchmark": {c: v["before"] for c, v in finetune["benchmark"]["per_case"].items()}}
    after = {"held_out": case_scores(folder, cases, torch.device("cpu")), "benchmark": case_scores(folder, benchmark_cases(work / "scratch"), torch.device("cpu"))}
    return {part: compare(before[part], after[part]) for part in ("held_out", "benchmark")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--model", help="the model the site fine-tunes (default: the shipped one, as dccseg segment picks it)")
    parser.add_argument("--world-ratio", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    os.environ["DCCSEG_MODEL_STORE"] = str(args.work / "store")
    args.model = args.model or ModelStore().resolve(None).ref
    held_out = build_site(args.work / "site")
    report_path = args.work / "report.json"
    previous = json.loads(report_path.read_text(encoding="utf-8")).get("runs", {}) if report_path.is_file() else {}
    from dccseg.training import finetune

    report = {"model": args.model, "site": f"{TRAIN} training + {HELD_OUT} held-out children (x{CHILD_SCALE}) from the training bodies", "runs": {},
              "schedule": {"epoch_share": finetune.EPOCH_SHARE, "lr_share": finetune.LR_SHARE, "patience": finetune.PATIENCE,
                           "weight_share": finetune.WEIGHT_SHARE, "preset": "default", "seed": 0},
              "command": "python tools/new_site_example.py WORK"}
    for ratio in args.world_ratio:
        run = f"finetune-r{ratio:g}"
        seconds = _train(args.work, run, from_model=args.model, world_ratio=ratio, held_out=held_out, name="site")
        report["runs"][run] = _run_report(args.work, run, seconds, previous, world_ratio=ratio)
    seconds = _train(args.work, CHILDREN_RUN, from_model=args.model, world_ratio=args.world_ratio[0], held_out=held_out, name="site-children", body_scale="auto")
    report["runs"][CHILDREN_RUN] = _run_report(args.work, CHILDREN_RUN, seconds, previous, world_ratio=args.world_ratio[0], body_scale="auto")
    _train(args.work, "scratch", overrides=SCRATCH_OVERRIDES, held_out=held_out, name="site-scratch")
    report["runs"]["scratch"] = scratch_report(args.work, report["runs"][f"finetune-r{args.world_ratio[0]:g}"], held_out)
    report_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for run, result in report["runs"].items():
        print(f"{run}: held-out {result['held_out']['before']:.3f} -> {result['held_out']['after']:.3f}, "
              f"benchmark {result['benchmark']['before']:.3f} -> {result['benchmark']['after']:.3f}")


if __name__ == "__main__":
    main()
