"""Rebuild the shipped demo model (dccseg/models/dccseg-abdomen/<version>/) on a 2-core CPU.

Training data: label-driven synthetic CT from the bundled real anatomy in all four phases
(``dccseg phantom synth``) plus the bundled real non-contrast CT, whose HU are moved to other
phases on the fly. Validation: whole synthetic anatomies (all their phases) never trained on.

    python tools/train_demo_model.py DATA_DIR RUN_DIR [--coarse-epochs N] [--refine-epochs N]

DATA_DIR is made by:
    dccseg phantom synth DATA_DIR --count 16 --phase all --seed 100 --spacing 1.5,1.5,3
    dccseg dataset add DATA_DIR --image dccseg/data/totalseg_example/example_ct.nii.gz \
        --label dccseg/data/totalseg_example/example_ct_organs.nii.gz --phase non-contrast --id real-example-ct
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dccseg.dataset import Dataset
from dccseg.progress import Progress
from dccseg.store import ModelCard, dataset_hash
from dccseg.training.evaluate import evaluate_model_folder
from dccseg.training.export import build_card, load_part, write_model_folder
from dccseg.training.pipeline import train_coarse, train_refine

VALIDATION_ANATOMIES = 3
NAME, VERSION = "dccseg-abdomen", "0.1.0"
# Inference-only setting: refine on 3 mm slices at most, which halves the work on thin-slice scans.
REFINE_SLICE_THICKNESS = 3.0


def anatomy_split(dataset_dir: Path) -> dict[str, list[str]]:
    """Hold out whole anatomies: every phase of the last VALIDATION_ANATOMIES synthetic anatomies."""
    ids = sorted(c.id for c in Dataset.load(dataset_dir).cases)
    anatomies = sorted({i.rsplit("-", 2)[0] if i.startswith("synth-") else i for i in ids})
    synthetic = [a for a in anatomies if a.startswith("synth-")]
    held_out = set(synthetic[-VALIDATION_ANATOMIES:])
    val = [i for i in ids if any(i.startswith(a + "-") for a in held_out)]
    return {"train": [i for i in ids if i not in val], "val": val}


def combine(data: Path, coarse_run: Path, refine_run: Path, folder: Path) -> None:
    """Join the two trained stages into a model version folder and measure it on the held-out anatomies."""
    coarse_state, coarse_info = load_part(coarse_run / "coarse")
    refine_state, refine_info = load_part(refine_run / "refine")
    refine_info = {**refine_info, "preprocessing": {**refine_info["preprocessing"], "refine_slice_thickness": REFINE_SLICE_THICKNESS}}
    dataset = Dataset.load(data)
    split = json.loads((coarse_run / "split.json").read_text(encoding="utf-8"))
    phases = {}
    for case in dataset.cases:
        phases[case.phase] = phases.get(case.phase, 0) + 1
    training = {
        "data": {
            "dataset": "label-driven synthetic CT from the bundled TotalSegmentator anatomy (dccseg phantom synth --count 16 --phase all --seed 100 --spacing 1.5,1.5,3) + the bundled real non-contrast CT",
            "cases": len(dataset.cases), "phases": phases, "train": split["train"], "val": split["val"],
            "phase_augmentation": "organ-wise phase simulation on every training case (probability 0.6)",
            "real_cases": ["real-example-ct (non-contrast; TotalSegmentator example_ct, labels are model predictions)"],
        },
        "data_hash": dataset_hash(dataset),
        "stages": {"coarse": {k: coarse_info.get(k) for k in ("epochs", "best")}, "refine": {k: refine_info.get(k) for k in ("epochs", "best", "prior")}},
        "pretraining": None,
        "recipe": "python tools/train_demo_model.py DATA RUN --stage coarse|refine|combine",
    }
    card = build_card(NAME, VERSION, coarse_info, refine_info, training, {}, description="Demo model: trained on a 2-core CPU in about an hour, from one real anatomy (synthetic CT in four phases + the real non-contrast scan)")
    write_model_folder(folder, card, {"coarse": coarse_state, "refine": refine_state})
    val_cases = [c for c in dataset.cases if c.id in set(split["val"])]
    metrics = evaluate_model_folder(folder, val_cases, torch.device("cpu"), Progress("human"))
    data = card.to_dict()
    data["metrics"] = metrics
    write_model_folder(folder, ModelCard.from_dict(data), {"coarse": coarse_state, "refine": refine_state})
    print(json.dumps(metrics, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("run", type=Path)
    parser.add_argument("--coarse-epochs", type=int, default=44)
    parser.add_argument("--refine-epochs", type=int, default=5)
    parser.add_argument("--stage", choices=("coarse", "refine", "combine"), required=True, help="coarse and refine are independent (the refine prior is degraded ground truth) and may run at once; combine joins them")
    args = parser.parse_args()
    progress = Progress("human")
    coarse_run, refine_run = args.run / "coarse-run", args.run / "refine-run"
    if args.stage in ("coarse", "refine"):
        run = coarse_run if args.stage == "coarse" else refine_run
        run.mkdir(parents=True, exist_ok=True)
        (run / "split.json").write_text(json.dumps(anatomy_split(args.data), indent=2))
    if args.stage == "coarse":
        overrides = {"coarse__epochs": args.coarse_epochs, "coarse__samples_per_case": 1, "coarse__crop": (64, 64, 64), "coarse__validate_every": 4}
        train_coarse(args.data, coarse_run, config="default", overrides=overrides, device="cpu", progress=progress)
    elif args.stage == "refine":
        overrides = {"refine__epochs": args.refine_epochs, "refine__patches_per_organ": 10, "refine__phase_variants": 1, "refine__prior": "degraded", "refine__val_patches_per_organ": 5}
        train_refine(args.data, refine_run, config="default", overrides=overrides, device="cpu", progress=progress)
    else:
        combine(args.data, coarse_run, refine_run, args.run / "model")


if __name__ == "__main__":
    main()
