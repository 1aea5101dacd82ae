"""Rebuild the shipped model (dccseg/models/dccseg-abdomen/<version>/) on a 2-core CPU, in resumable steps.

Training data come from the five training bodies of ``dccseg.phantoms.templates.BODY_SPLIT`` only (label-driven
synthetic CT: every anatomy deformed, in a random phase, field of view and scan protocol, a quarter with random
HU per tissue) plus the bundled real non-contrast CT. The two test bodies (s0006, s0009) are never trained on.
Checkpoints are chosen on fresh anatomies of the training bodies; the card's figures come from the test bodies.

    python tools/train_release_model.py RUN --stage data              # ~10 min: RUN/coarse-data, RUN/refine-data
    python tools/train_release_model.py RUN --stage coarse [--resume]  # ~75 min on one core
    python tools/train_release_model.py RUN --stage refine [--resume]  # ~75 min on one core, at the same time
    python tools/train_release_model.py RUN --stage combine            # RUN/model: the two stages as a model folder

Then measure it on the unseen bodies with ``python tools/evaluate_unseen.py RUN/model ...``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from dccseg.dataset import Dataset
from dccseg.networks import CoarseConfig
from dccseg.progress import Progress
from dccseg.training.export import build_card, load_part, write_model_folder
from dccseg.training.pipeline import train_coarse, train_refine

NAME, VERSION = "dccseg-abdomen", "0.2.0"
REAL_CT = Path(__file__).resolve().parents[1] / "dccseg" / "data" / "totalseg_example"
VALIDATION_PER_BODY = 4
DATA = {  # dataset folder -> (anatomies, output spacing x,y,z mm, seed, fraction with random HU)
    "coarse-data": (250, "3.5,3.5,3.5", 21, 0.25),
    "refine-data": (100, "1.5,1.5,3", 22, 0.2),
}
COARSE_VARIANTS = {  # name -> (coarse spacing mm, crop voxels, channels); compared in docs/networks.md
    "3.5mm": ((3.5, 3.5, 3.5), (64, 64, 64), (16, 32, 64, 128, 256)),
    "5mm": ((5.0, 5.0, 5.0), (48, 48, 48), (16, 32, 64, 128)),
}
# Inference-only setting: refine on 3 mm slices at most, which halves the work on thin-slice scans.
REFINE_SLICE_THICKNESS = 3.0


def make_data(run: Path) -> None:
    """Render the synthetic training sets and add the real example CT to each."""
    for folder, (count, spacing, seed, random_style) in DATA.items():
        out = run / folder
        dccseg = [sys.executable, "-m", "dccseg"]
        subprocess.run([*dccseg, "phantom", "synth", str(out), "--count", str(count), "--phase", "any", "--template", "training-bodies",
                        "--spacing", spacing, "--random-style", str(random_style), "--seed", str(seed)], check=True)
        subprocess.run([*dccseg, "dataset", "add", str(out), "--image", str(REAL_CT / "example_ct.nii.gz"), "--label",
                        str(REAL_CT / "example_ct_organs.nii.gz"), "--phase", "non-contrast", "--id", "real-example-ct"], check=True)


def anatomy_split(dataset_dir: Path) -> dict[str, list[str]]:
    """Validation: the last VALIDATION_PER_BODY anatomies of every training body (fresh deformations, never trained on)."""
    ids = sorted(c.id for c in Dataset.load(dataset_dir).cases)
    by_body: dict[str, list[str]] = {}
    for case_id in ids:
        if case_id.startswith("synth-"):
            by_body.setdefault(case_id.split("-")[1], []).append(case_id)
    val = sorted(i for cases in by_body.values() for i in sorted(cases, key=lambda c: int(c.split("-")[2]))[-VALIDATION_PER_BODY:])
    return {"train": [i for i in ids if i not in val], "val": val}


def prepare_run(run: Path, data: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "split.json").exists():
        (run / "split.json").write_text(json.dumps(anatomy_split(data), indent=2), encoding="utf-8")


def combine(run: Path, coarse_run: Path, refine_run: Path) -> Path:
    """Join the two trained stages into a model version folder."""
    coarse_state, coarse_info = load_part(coarse_run / "coarse")
    refine_state, refine_info = load_part(refine_run / "refine")
    refine_info = {**refine_info, "preprocessing": {**refine_info["preprocessing"], "refine_slice_thickness": REFINE_SLICE_THICKNESS}}
    training = {
        "data": {
            "bodies": {"train": coarse_info["data"].get("bodies", []), "never_trained_on": ["s0006", "s0009", "the real portal-venous slab"]},
            "coarse": {k: coarse_info["data"][k] for k in ("dataset", "cases", "phases", "val")},
            "refine": {k: refine_info["data"][k] for k in ("dataset", "cases", "phases", "val")},
            "synthesis": {folder: {"anatomies": c, "spacing_mm": s, "seed": seed, "random_hu_fraction": r} for folder, (c, s, seed, r) in DATA.items()},
            "real_cases": ["real-example-ct (non-contrast; TotalSegmentator example_ct, labels are model predictions)"],
        },
        "stages": {"coarse": {k: coarse_info.get(k) for k in ("epochs", "best")}, "refine": {k: refine_info.get(k) for k in ("epochs", "best", "prior")}},
        "pretraining": None,
        "recipe": "python tools/train_release_model.py RUN --stage data|coarse|refine|combine",
    }
    card = build_card(NAME, VERSION, coarse_info, refine_info, training, {},
                      description="Trained on a 2-core CPU from five real anatomies (synthetic CT in any phase, field of view and protocol) + one real non-contrast CT")
    write_model_folder(run / "model", card, {"coarse": coarse_state, "refine": refine_state})
    return run / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--stage", choices=("data", "coarse", "refine", "combine"), required=True,
                        help="coarse and refine are independent (the refine prior is degraded ground truth) and may run at once")
    parser.add_argument("--coarse-epochs", type=int, default=8)
    parser.add_argument("--refine-epochs", type=int, default=5)
    parser.add_argument("--coarse-variant", choices=sorted(COARSE_VARIANTS), default="3.5mm", help="coarse grid and network (default 3.5mm)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--coarse-run", type=Path, help="combine: the coarse run folder (default RUN/coarse-run)")
    parser.add_argument("--refine-run", type=Path, help="combine: the refine run folder (default RUN/refine-run)")
    args = parser.parse_args()
    progress = Progress("human")
    if args.stage == "data":
        make_data(args.run)
    elif args.stage == "coarse":
        run = args.run / ("coarse-run" if args.coarse_variant == "3.5mm" else f"coarse-run-{args.coarse_variant}")
        prepare_run(run, args.run / "coarse-data")
        spacing, crop, channels = COARSE_VARIANTS[args.coarse_variant]
        overrides = {"coarse__epochs": args.coarse_epochs, "coarse__samples_per_case": 1, "coarse__crop": crop, "coarse__validate_every": 1, "phase__synthetic_cases": 0,
                     "preprocessing__coarse_spacing": spacing, "coarse__network": CoarseConfig(channels=channels).to_dict()}
        train_coarse(args.run / "coarse-data", run, config="default", overrides=overrides, device="cpu", resume=args.resume, progress=progress)
    elif args.stage == "refine":
        prepare_run(args.run / "refine-run", args.run / "refine-data")
        overrides = {"refine__epochs": args.refine_epochs, "refine__patches_per_organ": 10, "refine__phase_variants": 1, "refine__prior": "degraded", "refine__val_patches_per_organ": 5}
        train_refine(args.run / "refine-data", args.run / "refine-run", config="default", overrides=overrides, device="cpu", resume=args.resume, progress=progress)
    else:
        print(combine(args.run, args.coarse_run or args.run / "coarse-run", args.refine_run or args.run / "refine-run"))


if __name__ == "__main__":
    main()
