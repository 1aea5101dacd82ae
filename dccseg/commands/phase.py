"""``dccseg phase guess``: the contrast phase of a CT from its organ HU."""

from __future__ import annotations

import argparse
import json

from ..io import read_image, read_labelmap
from ..phase_guess import guess_phase
from ..progress import Progress


def run_guess(args: argparse.Namespace, progress: Progress) -> int:
    progress.update("phase", 0.0, "reading")
    ct = read_image(args.image)
    labels = read_labelmap(args.label, reference=ct) if args.label else None
    phase, confidence, evidence = guess_phase(ct, labels)
    progress.update("phase", 1.0, f"{phase} ({confidence:.2f})")
    progress.close()
    if args.json:
        print(json.dumps({"phase": phase, "confidence": round(confidence, 3), "evidence": evidence}), flush=True)
    else:
        print(f"{phase} (confidence {confidence:.2f})")
        for organ, value in evidence.get("mean_hu", {}).items():
            print(f"  {organ}: {value:.0f} HU")
        if "reason" in evidence:
            print(f"  {evidence['reason']}")
    return 0


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("phase", parents=[common], help="contrast phase of a CT")
    sub = parser.add_subparsers(dest="phase_command", metavar="ACTION", required=True)
    guess = sub.add_parser("guess", parents=[common], help="guess the contrast phase from aorta, portal vein, IVC, liver, spleen and kidney HU")
    guess.add_argument("image", help="CT image (NIfTI, NRRD, MHA or DICOM folder)")
    guess.add_argument("--label", default=None, help="organ labelmap (ids 1..13) on the CT's grid; without it the phase is 'unknown'")
    guess.add_argument("--json", action="store_true", help="print one JSON object {phase, confidence, evidence}")
    guess.set_defaults(func=run_guess)
