"""Dice of a model on bodies it never trained on: the two test bodies rendered in all four phases, and real scans.

    python tools/evaluate_unseen.py MODEL WORK [--shared ../shared] [--fast]

MODEL is a model reference or folder. WORK keeps the test sets (made once) and the results
(``WORK/results-<model>/*.json``, one per set, from ``dccseg evaluate --json-out``). The synthetic set is
s0006 and s0009 (``BODY_SPLIT["test"]``), 3 anatomies each x 4 phases, whole field of view, at 1.5x1.5x3 mm.
The pathology set is 3 more anatomies of each, every one drawn with pathology (``phantom synth --pathology 1``: a
lesion inside an organ is that organ), in arterial and portal-venous phase, as contrast-enhanced scans of patients come.
With ``--shared`` the real scans join: s0009's non-contrast CT and the portal-venous DICOM slab of another
patient, with their organ references (never trained on; they stand in for every patient not seen).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from dccseg.phantoms.templates import BODY_SPLIT

ANATOMIES_PER_BODY = 3
SEED, PATHOLOGY_SEED = 900, 901
PATHOLOGY_PHASES = "arterial,portal-venous"


def _dccseg(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "dccseg", *args, "--progress", "none"], check=True)


def make_sets(work: Path, shared: Path | None) -> dict[str, Path]:
    sets = {"unseen-synthetic": work / "unseen-synthetic"}
    if not sets["unseen-synthetic"].exists():
        _dccseg("phantom", "synth", str(sets["unseen-synthetic"]), "--template", ",".join(BODY_SPLIT["test"]), "--count", str(ANATOMIES_PER_BODY * len(BODY_SPLIT["test"])),
                "--phase", "all", "--whole-view", "--seed", str(SEED), "--spacing", "1.5,1.5,3")
    sets["unseen-pathology"] = work / "unseen-pathology"
    if not sets["unseen-pathology"].exists():
        _dccseg("phantom", "synth", str(sets["unseen-pathology"]), "--template", ",".join(BODY_SPLIT["test"]), "--count", str(ANATOMIES_PER_BODY * len(BODY_SPLIT["test"])),
                "--phase", PATHOLOGY_PHASES, "--pathology", "1", "--whole-view", "--seed", str(PATHOLOGY_SEED), "--spacing", "1.5,1.5,3")
    if shared is not None:
        sets["unseen-real"] = work / "unseen-real"
        if not sets["unseen-real"].exists():
            data = shared / "data"
            _dccseg("dataset", "add", str(sets["unseen-real"]), "--image", str(data / "totalsegmentator-subjects/s0009/ct.nii.gz"),
                    "--label", str(data / "references/s0009_organs.nii.gz"), "--phase", "non-contrast", "--id", "real-s0009", "--subject", "s0009")
            _dccseg("dataset", "add", str(sets["unseen-real"]), "--image", str(data / "totalsegmentator/example_ct_dicom"),
                    "--label", str(data / "references/example_ct_dicom_organs.nii.gz"), "--phase", "portal-venous", "--id", "real-pv-slab", "--subject", "pv-slab")
    return sets


def card_metrics(results: dict[str, dict]) -> dict[str, dict]:
    """The model card's ``metrics.unseen``: Dice per organ, per phase and per body of every test set."""
    out = {}
    for name, document in results.items():
        summary = document["summary"]
        groups = {"per_subject": summary.get("per_subject", {})} if name == "unseen-real" else {"per_phase": summary["per_phase"], "per_subject": summary.get("per_subject", {})}
        out[name] = {
            "cases": summary["n_cases"], "dice_mean_of_organs": _round(summary["dice_mean_of_organs"]),
            "dice_per_organ": {k: _round(v["dice_mean"]) for k, v in summary["per_organ"].items()},
            **{key: {g: {"dice_mean_of_organs": _round(s["dice_mean_of_organs"]), "dice_per_organ": {k: _round(v["dice_mean"]) for k, v in s["per_organ"].items()}}
                     for g, s in value.items()} for key, value in groups.items()},
        }
    return out


def markdown_table(metrics: dict[str, dict]) -> str:
    """Organs as rows; the synthetic test bodies, each phase, the pathology set and each real scan as columns."""
    synthetic, real = metrics.get("unseen-synthetic", {}), metrics.get("unseen-real", {})
    columns = [(f"synthetic {b}", s) for b, s in synthetic.get("per_subject", {}).items()]
    columns += [(f"synthetic {p}", s) for p, s in synthetic.get("per_phase", {}).items()]
    columns += [("synthetic with pathology", metrics["unseen-pathology"])] if "unseen-pathology" in metrics else []
    columns += [(f"real {b}", s) for b, s in real.get("per_subject", {}).items()]
    organs = list(synthetic.get("dice_per_organ", {})) or list(real.get("dice_per_organ", {}))
    rows = ["| organ | unseen synthetic | " + " | ".join(c for c, _ in columns) + " |", "|---|---|" + "---|" * len(columns)]
    for organ in organs:
        cells = [synthetic.get("dice_per_organ", {}).get(organ)] + [s["dice_per_organ"].get(organ) for _, s in columns]
        rows.append(f"| {organ} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in cells) + " |")
    means = [synthetic.get("dice_mean_of_organs")] + [s["dice_mean_of_organs"] for _, s in columns]
    rows.append("| **mean** | " + " | ".join("-" if v is None else f"**{v:.3f}**" for v in means) + " |")
    return "\n".join(rows)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("work", type=Path)
    parser.add_argument("--shared", type=Path, help="the shared data folder with the real unseen scans")
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args()
    results = args.work / f"results-{Path(args.model).name}"
    results.mkdir(parents=True, exist_ok=True)
    documents = {}
    for name, folder in make_sets(args.work, args.shared).items():
        out = results / f"{name}.json"
        if not out.exists():
            _dccseg("evaluate", "--dataset", str(folder), "--model", args.model, "--json-out", str(out), *(["--fast"] if args.fast else []))
        documents[name] = json.loads(out.read_text(encoding="utf-8"))
    metrics = card_metrics(documents)
    (results / "unseen.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    print(markdown_table(metrics))


if __name__ == "__main__":
    main()
