"""``dccseg demo``: segment the bundled real CT, as acquired and with simulated contrast phases.

The bundled CT is non-contrast; the arterial and portal-venous versions are made from it by
organ-wise phase simulation, so one run shows how the model behaves across phases. For each
version it writes the ``.seg.nrrd``, a PNG overlay and the Dice table against the reference.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..evaluation import evaluate_pair
from ..fileutil import atomic_output, ensure_writable_dir
from ..inference import segment_volume
from ..io import read_image, read_labelmap, write_image, write_output
from ..organs import ORGANS
from ..phantoms import simulate_phase
from ..progress import Progress
from ..render import render_overlay
from ..store import load_model

DATA = Path(__file__).resolve().parent.parent / "data" / "totalseg_example"
VERSIONS = (("non-contrast", "as acquired"), ("arterial", "simulated"), ("portal-venous", "simulated"))


def register(subparsers, common) -> None:
    parser = subparsers.add_parser("demo", parents=[common], help="segment the bundled real CT in three contrast phases and report Dice", description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("demo-output"), help="folder for the results (default: demo-output)")
    parser.add_argument("--model", default=None, help="model reference (default: the newest dccseg-abdomen)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.set_defaults(func=run)


def run(args, progress: Progress) -> int:
    ensure_writable_dir(args.output)
    ct = read_image(DATA / "example_ct.nii.gz")
    reference = read_labelmap(DATA / "example_ct_organs.nii.gz", reference=ct)
    start = time.perf_counter()
    model = load_model(args.model, args.device)
    progress.log(f"model {model.card.name}@{model.card.version} loaded in {time.perf_counter() - start:.1f} s on {model.device}")
    results = {}
    for index, (phase, how) in enumerate(VERSIONS):
        image = ct if phase == "non-contrast" else simulate_phase(ct, reference, "non-contrast", phase, seed=index)
        name = f"example_ct_{phase}"
        if phase != "non-contrast":
            write_image(image, args.output / f"{name}.nii.gz")
        start = time.perf_counter()
        labels = segment_volume(image, model, progress=progress)
        seconds = time.perf_counter() - start
        write_output(labels, args.output / f"{name}.seg.nrrd")
        render_overlay(image, labels, args.output / f"{name}.png", title=f"{phase} ({how}) — dccseg {model.card.version}")
        results[phase] = {"seconds": round(seconds, 2), **evaluate_pair(labels, reference, ORGANS, case=name, phase=phase)}
    report = dice_table(results)
    with atomic_output(args.output / "dice.md") as tmp:
        tmp.write_text(f"# Demo: Dice against the reference labels\n\nModel {model.card.name}@{model.card.version}.\n\n{report}\n", encoding="utf-8")
    with atomic_output(args.output / "dice.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if progress.mode == "json":  # stdout carries JSON lines only
        progress.log(report, table="dice", output=str(args.output.resolve()))
    else:
        print(f"{report}\n\nresults in {args.output.resolve()}")
    return 0


def dice_table(results: dict) -> str:
    """A markdown table: organs as rows, phases as columns."""
    phases = list(results)
    rows = ["| organ | " + " | ".join(phases) + " |", "|---|" + "---|" * len(phases)]
    for organ in ORGANS:
        cells = [_fmt(results[p]["organs"].get(organ.key, {}).get("dice")) for p in phases]
        rows.append(f"| {organ.name} | " + " | ".join(cells) + " |")
    rows.append("| **mean** | " + " | ".join(_fmt(results[p]["dice_mean"]) for p in phases) + " |")
    rows.append("| seconds | " + " | ".join(f"{results[p]['seconds']:.1f}" for p in phases) + " |")
    return "\n".join(rows)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"
