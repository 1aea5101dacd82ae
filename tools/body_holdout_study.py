"""Leave one training body out: how well does a coarse network trained on the other bodies segment a body it never saw?

Validation anatomies of the training bodies (the rules of docs/networks.md) measure how well a network knows those
bodies; this measures how well a data recipe carries to a new one, the question the test bodies stand for. Per run:

    python tools/body_holdout_study.py WORK --held-out s0327 --anatomy wide [--anatomies 120] [--validation 12] [--epochs 50] [--seed 1] [--crop 48] [--channels 16,32,64,128]

renders ``--anatomies`` training cases of the other training bodies (the test bodies are never used) with the arm's
``--anatomy`` and ``--validation`` typical renders of the held-out body, all at the coarse grid,
then trains the CPU recipe's 5 mm coarse network from scratch, validating every epoch on the held-out body. It prints
and writes ``WORK/result.json``: the held-out coarse Dice per epoch and the figure, the mean of the last three.
Folds that share ``--seed`` draw the same training anatomies in both arms, so arms differ in the anatomy only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from dccseg.dataset import Dataset
from dccseg.errors import DccsegError
from dccseg.networks import CoarseConfig
from dccseg.phantoms import ANATOMY_PRESETS
from dccseg.phantoms.templates import BODY_SPLIT
from dccseg.progress import Progress
from dccseg.training.configs import CoarseTraining
from dccseg.training.pipeline import train_coarse

SPACING, CROP, CHANNELS = (5.0, 5.0, 5.0), (48, 48, 48), (16, 32, 64, 128)  # the CPU recipe's 5mm variant (tools/train_release_model.py)
LAST = 3


def render(folder: Path, bodies: list[str], count: int, anatomy: str, seed: int) -> None:
    """``count`` anatomies of ``bodies`` in random phases, fields of view, protocols and pathology, as the CPU recipe draws them."""
    subprocess.run([sys.executable, "-m", "dccseg", "phantom", "synth", str(folder), "--count", str(count), "--phase", "any", "--template", ",".join(bodies),
                    "--spacing", ",".join(map(str, SPACING)), "--random-style", "0.25", "--pathology", "0.3", "--anatomy", anatomy, "--seed", str(seed),
                    "--progress", "none"], check=True)


def _widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"give whole numbers separated by commas, e.g. {','.join(map(str, CHANNELS))}; got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("--held-out", required=True, choices=BODY_SPLIT["train"])
    parser.add_argument("--anatomy", choices=sorted(ANATOMY_PRESETS), default="typical")
    parser.add_argument("--anatomies", type=int, default=120)
    parser.add_argument("--validation", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--crop", type=int, default=CROP[0], help=f"edge of the training crops in voxels, a multiple of {CoarseConfig(channels=CHANNELS).size_divisor} (default {CROP[0]}, the CPU recipe's)")
    parser.add_argument("--channels", type=_widths, default=CHANNELS, help=f"the network's feature widths per level, comma-separated (default {','.join(map(str, CHANNELS))}, the CPU recipe's)")
    args = parser.parse_args()
    try:
        network = CoarseConfig(channels=args.channels)
        CoarseTraining(network=network, crop=(args.crop,) * 3).check_crop("--crop")
    except DccsegError as error:
        parser.error(str(error))
    data = args.work / "data"
    if not (data / "dataset.json").is_file():
        render(data, [b for b in BODY_SPLIT["train"] if b != args.held_out], args.anatomies, args.anatomy, args.seed * 1000)
        render(data, [args.held_out], args.validation, "typical", args.seed * 1000 + 500)
    run = args.work / "run"
    run.mkdir(parents=True, exist_ok=True)
    cases = Dataset.load(data).cases
    held = [c.id for c in cases if c.subject == args.held_out]
    (run / "split.json").write_text(json.dumps({"train": [c.id for c in cases if c.id not in held], "val": held}, indent=1), encoding="utf-8")
    overrides = {"coarse__epochs": args.epochs, "coarse__samples_per_case": 1, "coarse__crop": (args.crop,) * 3, "coarse__validate_every": 1, "coarse__patience": 0,
                 "phase__synthetic_cases": 0, "preprocessing__coarse_spacing": SPACING, "coarse__network": network.to_dict()}
    train_coarse(data, run, config="default", overrides=overrides, device="cpu", resume=(run / "status.json").is_file(), progress=Progress("none"))
    curve = [row["val_dice_mean"] for row in map(json.loads, (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()) if row.get("val_dice_mean") is not None]
    result = {"held_out": args.held_out, "anatomy": args.anatomy, "anatomies": args.anatomies, "epochs": args.epochs, "seed": args.seed, "crop": args.crop, "channels": list(args.channels),
              "validation_cases": len(held), "curve": [round(v, 4) for v in curve], "figure": round(sum(curve[-LAST:]) / len(curve[-LAST:]), 4)}
    (args.work / "result.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"held out {args.held_out}, {args.anatomy} anatomy: held-out coarse Dice {result['figure']:.4f} (mean of the last {LAST} of {len(curve)} validations)")


if __name__ == "__main__":
    main()
