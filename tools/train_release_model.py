"""Rebuild the shipped model (dccseg/models/dccseg-abdomen/<version>/) on a 2-core CPU, in resumable steps.

Training data come from the five training bodies of ``dccseg.phantoms.templates.BODY_SPLIT`` only (label-driven
synthetic CT: every anatomy deformed, in a random phase, field of view and scan protocol, a quarter with random
HU per tissue, some with pathology) plus the bundled real non-contrast CT. The two test bodies (s0006, s0009) are
never trained on. Checkpoints and settings are chosen on fresh anatomies of the training bodies; the card's
figures come from the test bodies.

    python tools/train_release_model.py RUN --stage data --data-seeds 48 27                # ~8 min: RUN/coarse-data, RUN/refine-data (new seeds for every step)
    python tools/train_release_model.py RUN --stage coarse --start MODEL --coarse-epochs 30 --coarse-lr-scale 0.2   # ~35 min on one core (5 mm grid)
    python tools/train_release_model.py RUN --stage refine --start MODEL --refine-prior degraded --refine-epochs 5 --refine-sharpen 8   # ~25 min, at the same time
    python tools/train_release_model.py RUN --stage combine --fusion-trust 0.3             # RUN/model: the two stages as a model folder
    python tools/fusion_trust_sweep.py RUN/model VALIDATION                                 # the fusion band (docs/diagnose.md)
    python tools/coarse_scales_sweep.py RUN/model VALIDATION                                # the coarse grids (docs/networks.md)
    dccseg diagnose --dataset VALIDATION --model RUN/model --refine-all --output val.json   # refine where it pays
    python tools/evaluate_unseen.py RUN/model WORK [--shared ../shared]                     # unseen bodies
    python tools/train_release_model.py RUN --stage card --validation-stages val.json --unseen WORK/results-model/unseen.json --unseen-stages NAME=TABLE.json ... --size-reference VALIDATION

Without ``--start`` the coarse and refine stages train from scratch (0.2.0 did: 20 and 5 epochs, about 2 h);
``LINEAGE`` says how the shipped version was made. Every continuation gets anatomies it has not seen (new seeds):
a second pass over the same set gained less on validation and lost on the real scans (docs/networks.md).
`--stage select --coarse-run A B` compares coarse runs on their validation anatomies.
`--refine-prior coarse` trains the refine step on the `--start` model's coarse masks of the new anatomies instead of degraded ground truth (docs/diagnose.md).
`--coarse-crop 64` trains the coarse step on larger crops than the variant's (measured with 0.4.6: no gain, docs/networks.md).
`--coarse-variant 5mm-wide` trains a coarse net twice as wide: its first step from scratch (a net of another shape cannot continue one, and one widened
from a trained net did not carry its gain), later steps with `--start` the previous wide model. It carried further to held-out bodies than the shipped
widths (docs/networks.md, A body left out).
`--stage combine --keep-refine MODEL --coarse-variant 5mm-wide` joins a new coarse net to MODEL's refine network.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from dccseg.dataset import Dataset
from dccseg.errors import DccsegError
from dccseg.networks import CoarseConfig, RefineConfig
from dccseg.phantoms.templates import BODY_SPLIT
from dccseg.progress import Progress
from dccseg.training.configs import CoarseTraining, preset
from dccseg.training.export import build_card, load_part, write_model_folder
from dccseg.training.pipeline import train_coarse, train_refine

NAME, VERSION = "dccseg-abdomen", "0.4.6"
LINEAGE = ("0.4.6 is 0.4.5's coarse network with its refine network continued twice by 5 epochs (degraded priors, the recipe's refine step) on seed 32's and then seed 33's 150 new anatomies, with a full-resolution head (sharpen_channels 8, docs/networks.md) added at the first step; chosen on validation anatomies under the twenty-first and twenty-second rules (docs/diagnose.md). "
           "0.4.5 is 0.4.4 with the mean organ volumes of its validation anatomies in its card (size_reference_ml, --size-reference), by which --body-scale auto measures a child's body; its networks and what it does by default are 0.4.4's. "
           "0.4.4 is 0.4.3's two networks with fusion_trust 0.3 (was 0.1), re-chosen on validation anatomies once the attention channel reached a scan's last slices (docs/diagnose.md). "
           "0.4.3 continues 0.4.1's two networks by three gentle steps, each on anatomies neither had seen: coarse 30 epochs at a fifth of the recipe's rate "
           "(--coarse-lr-scale 0.2) on seed 46's, seed 47's and then seed 48's 500 anatomies (the set below); refine 5 epochs on seed 25's, 26's and then 27's 150 anatomies (the set below). "
           "0.4.1 is 0.4.0 with the coarse network read at three grids (coarse_scales). 0.4.0 continues 0.3.0, which continued 0.2.0 (trained from "
           "scratch with this recipe: 250 coarse anatomies, seed 31, half with pathology; 100 refine anatomies, seed 22, no pathology). Coarse: 30 epochs at the recipe's learning rate on each of four sets of 500 anatomies, seeds 43 (0.3.0), 43 again, "
           "44 and 45, each continuation from the last. Refine: 0.3.0's (4 epochs at a fifth of the rate on 100 anatomies, seed 23), then 5 more on "
           "150 new anatomies (seed 24), degraded priors on the 5 mm coarse grid. Coarse scales 0.8, 0.9, 1 (grids of 4, 4.5 and 5 mm, probabilities averaged), chosen on validation anatomies (tools/coarse_scales_sweep.py).")
REAL_CT = Path(__file__).resolve().parents[1] / "dccseg" / "data" / "totalseg_example"
VALIDATION_PER_BODY = 4
DATA = {  # dataset folder -> (anatomies, output spacing x,y,z mm, seed, fraction with random HU, fraction with pathology)
    "coarse-data": (500, "3.5,3.5,3.5", 48, 0.25, 0.3),
    "refine-data": (150, "1.5,1.5,3", 33, 0.2, 0.3),
}
COARSE_VARIANTS = {  # name -> (coarse spacing mm, crop voxels, channels); compared in docs/networks.md
    "3.5mm": ((3.5, 3.5, 3.5), (64, 64, 64), (16, 32, 64, 128, 256)),
    "5mm": ((5.0, 5.0, 5.0), (48, 48, 48), (16, 32, 64, 128)),
    "5mm-wide": ((5.0, 5.0, 5.0), (48, 48, 48), (32, 64, 128, 256)),  # carried further to held-out bodies (the 29th and 30th rules)
}
# Inference-only settings: refine on 3 mm slices at most, which halves the work on thin-slice scans; the coarse
# network also reads 4 and 4.5 mm grids (tools/coarse_scales_sweep.py).
REFINE_SLICE_THICKNESS = 3.0
COARSE_SCALES = (0.8, 0.9, 1.0)


def make_data(run: Path, seeds: dict[str, int]) -> None:
    """Render the synthetic training sets (``seeds``: folder -> seed, default DATA's) and add the real example CT to each."""
    for folder, (count, spacing, seed, random_style, pathology) in DATA.items():
        seed = seeds.get(folder, seed)
        out = run / folder
        dccseg = [sys.executable, "-m", "dccseg"]
        subprocess.run([*dccseg, "phantom", "synth", str(out), "--count", str(count), "--phase", "any", "--template", "training-bodies",
                        "--spacing", spacing, "--random-style", str(random_style), "--pathology", str(pathology), "--seed", str(seed)], check=True)
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


def continued(start: str | None, lr_scale: float = 1.0) -> dict:
    """Coarse training from a model's weights with the recipe's own schedule: its learning rate (times ``lr_scale``) and no early stop.

    The gentle steps of 0.4.2 and 0.4.3 used a fifth of the rate. The refine stage keeps the fine-tune's fifth of the rate: that is the schedule measured in docs/diagnose.md.
    """
    if start is None:
        return {}
    optimizer = dataclasses.asdict(preset("default").coarse.optimizer)
    return {"coarse__optimizer": {**optimizer, "lr": optimizer["lr"] * lr_scale}, "coarse__patience": 0}


def coarse_run_folder(run: Path, variant: str) -> Path:
    """Where the coarse stage of ``variant`` trains, and where combine looks for it unless given ``--coarse-run``."""
    return run / f"coarse-run-{variant}"


def coarse_overrides(variant: str, epochs: int, crop_edge: int | None = None) -> dict:
    """The coarse step's training settings: the variant's grid, network and crops (cubes of ``crop_edge`` voxels when given)."""
    spacing, crop, channels = COARSE_VARIANTS[variant]
    stage = CoarseTraining(network=CoarseConfig(channels=channels), crop=(crop_edge,) * 3 if crop_edge else crop)
    stage.check_crop("--coarse-crop")
    return {"coarse__epochs": epochs, "coarse__samples_per_case": 1, "coarse__crop": stage.crop, "coarse__validate_every": 1,
            "phase__synthetic_cases": 0, "preprocessing__coarse_spacing": spacing, "coarse__network": stage.network.to_dict()}


def prior_coarse(prior: str, start: str | None) -> str | None:
    """The model whose coarse network draws the refine stage's training priors: ``start``'s for the ``coarse`` prior, none for the synthetic ones.

    On anatomies it never saw, a coarse network's masks carry the errors it makes on a new patient (docs/diagnose.md).
    """
    if prior != "coarse":
        return None
    if start is None:
        raise DccsegError("--refine-prior coarse needs --start MODEL: that model's coarse network draws the priors")
    return start


def prepare_run(run: Path, data: Path) -> None:
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "split.json").exists():
        (run / "split.json").write_text(json.dumps(anatomy_split(data), indent=2), encoding="utf-8")


def select_coarse(runs: list[Path]) -> dict[str, float]:
    """Coarse-only validation Dice of each coarse run on the union of their validation cases (training bodies only)."""
    import numpy as np
    import torch

    from dccseg.networks import CoarseConfig as Config
    from dccseg.preprocess import IntensityConfig
    from dccseg.training.cases import load_case
    from dccseg.training.coarse import coarse_network, predict_coarse
    from dccseg.training.metrics import DiceAccumulator

    cases = []
    for run in runs:
        split = json.loads((run / "split.json").read_text(encoding="utf-8"))
        dataset = Dataset.load(Path(json.loads((run / "run.json").read_text(encoding="utf-8"))["dataset"]))
        cases += [c for c in dataset.cases if c.id in set(split["val"]) and c.label is not None]
    scores = {}
    for run in runs:
        state, info = load_part(run / "coarse")
        net = coarse_network(Config.from_dict(info["architecture"]), state, torch.device("cpu"))
        spacing = tuple(info["preprocessing"]["coarse_spacing"])
        intensity = IntensityConfig.from_dict(info["preprocessing"]["intensity"])
        dice = DiceAccumulator()
        for case in cases:
            volumes = load_case(case, spacing)
            dice.add_labelmaps(predict_coarse(net, volumes.ct.array, intensity, Config.from_dict(info["architecture"]).size_divisor, torch.device("cpu")), volumes.labels.array)
        scores[str(run)] = float(np.mean(list(dice.result().values())))
        print(f"{run}: coarse-only Dice {scores[str(run)]:.4f} on {len(cases)} validation cases", flush=True)
    return scores


def kept_refine(model: str) -> tuple[dict, dict]:
    """``model``'s refine network as a trained part (weights, then architecture, settings and training record): a release that changes only the coarse net keeps it."""
    from dccseg.training.finetune import load_starting_model

    kept = load_starting_model(model)
    training = kept.card.training
    info = {"part": "refine", "architecture": kept.card.architecture["refine"], "preprocessing": kept.card.preprocessing, "data": training["data"]["refine"],
            "data_hash": training["data_hash"].split("; refine ")[-1], **training["stages"]["refine"]}
    return kept.refine_state, info


def combine(run: Path, coarse: tuple[dict, dict], refine: tuple[dict, dict], version: str, fusion_trust: float | None, coarse_scales: tuple[float, ...] = COARSE_SCALES) -> Path:
    """Join a coarse part (``load_part`` of a coarse run) and a refine part (of a refine run, or ``kept_refine``) into a model version folder."""
    coarse_state, coarse_info = coarse
    refine_state, refine_info = refine
    coarse_grid = {k: coarse_info["preprocessing"][k] for k in ("coarse_spacing", "intensity")}  # the coarse net's own grid and scaling
    refine_info = {**refine_info, "preprocessing": {**refine_info["preprocessing"], **coarse_grid, "refine_slice_thickness": REFINE_SLICE_THICKNESS,
                                                                                   "fusion_trust": fusion_trust, "coarse_scales": list(coarse_scales)}}
    training = {
        "data": {
            "cases": coarse_info["data"]["cases"] + refine_info["data"]["cases"],
            "bodies": {"train": list(BODY_SPLIT["train"]), "never_trained_on": [*BODY_SPLIT["test"], "the real portal-venous slab"]},
            "coarse": {k: coarse_info["data"][k] for k in ("dataset", "cases", "phases", "val")},
            "refine": {k: refine_info["data"][k] for k in ("dataset", "cases", "phases", "val")},
            "synthesis": {folder: {"anatomies": c, "spacing_mm": s, "seed": seed, "random_hu_fraction": r, "pathology_fraction": p} for folder, (c, s, seed, r, p) in DATA.items()},
            "real_cases": ["real-example-ct (non-contrast; TotalSegmentator example_ct, labels are model predictions)"],
        },
        "data_hash": f"coarse {coarse_info['data_hash']}; refine {refine_info['data_hash']}",
        "stages": {"coarse": {k: coarse_info.get(k) for k in ("epochs", "best")}, "refine": {k: refine_info.get(k) for k in ("epochs", "best", "prior")}},
        "pretraining": None,
        "recipe": "python tools/train_release_model.py RUN --stage data|coarse|refine|combine",
        "lineage": LINEAGE,
    }
    card = build_card(NAME, version, coarse_info, refine_info, training, {},
                      description="Trained on a 2-core CPU from five real anatomies (synthetic CT in any phase, field of view, protocol and pathology) + one real non-contrast CT")
    write_model_folder(run / "model", card, {"coarse": coarse_state, "refine": refine_state})
    return run / "model"


def size_reference_of(dataset: Path) -> dict[str, float]:
    """The mean whole-organ volumes of ``dataset``'s label maps (validation anatomies of the training bodies)."""
    from dccseg.inference.body_size import reference_volumes
    from dccseg.io import read_labelmap

    return reference_volumes(read_labelmap(case.label) for case in Dataset.load(dataset).cases if case.label is not None)


def finish_card(run: Path, validation_stages: Path, unseen: Path, unseen_stages: dict[str, Path], size_reference: Path | None = None) -> None:
    """Put the measured figures into the card: refine skipped where it lost on validation bodies, Dice on unseen bodies.

    ``validation_stages``: a ``dccseg diagnose --refine-all --output`` table on fresh anatomies of the training bodies;
    ``unseen``: ``tools/evaluate_unseen.py``'s ``unseen.json``; ``unseen_stages``: set name -> diagnose table;
    ``size_reference``: a dataset of the training bodies whose mean organ volumes let inference scale small bodies (``dccseg.inference.body_size``).
    """
    from dccseg.evaluation.stages import refine_skip_organs
    from dccseg.store import ModelCard
    from dccseg.training.export import MODEL_FOLDER, read_model_folder

    card, weights = read_model_folder(run)
    validation = json.loads(validation_stages.read_text(encoding="utf-8"))["summary"]
    metrics = json.loads(unseen.read_text(encoding="utf-8"))
    synthetic = metrics["unseen-synthetic"]
    data = card.to_dict()
    data["refine_skip"] = refine_skip_organs(validation)
    if size_reference is not None:
        data["preprocessing"] = {**data["preprocessing"], "size_reference_ml": size_reference_of(size_reference)}
    data["stage_metrics"] = {"validation (fresh anatomies of the training bodies, every organ refined)": validation,
                             **{name: json.loads(p.read_text(encoding="utf-8"))["summary"] for name, p in unseen_stages.items()}}
    data["metrics"] = {"dice_mean": synthetic["dice_mean_of_organs"], "dice": synthetic["dice_per_organ"],
                       "measured_on": "unseen bodies s0006 and s0009, synthetic, 4 phases (tools/evaluate_unseen.py)", "unseen": metrics}
    write_model_folder(run / MODEL_FOLDER, ModelCard.from_dict(data), weights)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--stage", choices=("data", "coarse", "refine", "select", "combine", "card"), required=True,
                        help="coarse and refine are independent (the refine prior is degraded ground truth) and may run at once")
    parser.add_argument("--coarse-epochs", type=int, default=20)
    parser.add_argument("--refine-epochs", type=int, default=5)
    parser.add_argument("--coarse-lr-scale", type=float, default=1.0, help="coarse with --start: the recipe's learning rate times this (the gentle steps of 0.4.2 and 0.4.3: 0.2)")
    parser.add_argument("--coarse-variant", choices=sorted(COARSE_VARIANTS), default="5mm", help="coarse: the grid and network (default 5mm, docs/networks.md); combine: the coarse run it joins unless --coarse-run is given")
    parser.add_argument("--coarse-crop", type=int, metavar="EDGE", help="coarse: the edge of the training crops in voxels (default the variant's; the network reads whole volumes at inference)")
    parser.add_argument("--refine-prior", choices=("degraded", "realistic", "coarse"), default="realistic",
                        help="refine: the attention masks of training patches (docs/diagnose.md); coarse: the --start model's coarse masks of the new anatomies")
    parser.add_argument("--refine-sharpen", type=int, default=0, metavar="CHANNELS", help="refine: the full-resolution head's width (0.4.6: 8; 0 = none, docs/networks.md); a --start without one gets it added")
    parser.add_argument("--start", metavar="MODEL", help="coarse, refine: start from this model's weights (a name, name@version or model folder) instead of from scratch")
    parser.add_argument("--fusion-trust", type=float, help="combine: the card's fusion_trust, chosen on validation anatomies (docs/diagnose.md); default plain majority vote")
    parser.add_argument("--coarse-scales", type=float, nargs="+", default=COARSE_SCALES, help=f"combine: the card's coarse_scales (default {' '.join(map(str, COARSE_SCALES))})")
    parser.add_argument("--version", default=VERSION, help=f"combine: the version the model folder gets (default {VERSION})")
    parser.add_argument("--data-seeds", type=int, nargs=2, metavar=("COARSE", "REFINE"), help="data: seeds of the two sets (default the shipped version's last step; LINEAGE lists the others)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--coarse-run", type=Path, nargs="+", help="combine: the coarse run folder (default RUN/coarse-run-VARIANT of --coarse-variant); select: the runs to compare")
    parser.add_argument("--refine-run", type=Path, help="combine: the refine run folder (default RUN/refine-run)")
    parser.add_argument("--keep-refine", metavar="MODEL", help="combine: take the refine network, its settings and training record from this model instead of a refine run (a release that changes only the coarse net)")
    parser.add_argument("--validation-stages", type=Path, help="card: diagnose --refine-all table on validation anatomies")
    parser.add_argument("--unseen", type=Path, help="card: unseen.json of tools/evaluate_unseen.py")
    parser.add_argument("--unseen-stages", nargs="*", default=[], help="card: NAME=diagnose table of an unseen set")
    parser.add_argument("--size-reference", type=Path, metavar="VALIDATION", help="card: the validation anatomies; their mean organ volumes let inference read small bodies on scaled grids")
    args = parser.parse_args()
    progress = Progress("human")
    if args.stage == "data":
        make_data(args.run, dict(zip(DATA, args.data_seeds)) if args.data_seeds else {})
    elif args.stage == "coarse":
        try:
            overrides = {**coarse_overrides(args.coarse_variant, args.coarse_epochs, args.coarse_crop), **continued(args.start, args.coarse_lr_scale)}
        except DccsegError as error:
            parser.error(str(error))
        run = coarse_run_folder(args.run, args.coarse_variant)
        prepare_run(run, args.run / "coarse-data")
        train_coarse(args.run / "coarse-data", run, config="default", overrides=overrides, device="cpu", resume=args.resume, progress=progress, start=args.start)
    elif args.stage == "card":
        finish_card(args.run, args.validation_stages, args.unseen, {k: Path(v) for k, v in (a.split("=", 1) for a in args.unseen_stages)}, args.size_reference)
    elif args.stage == "select":
        select_coarse(args.coarse_run)
    elif args.stage == "refine":
        try:
            coarse = prior_coarse(args.refine_prior, args.start)
        except DccsegError as error:
            parser.error(str(error))
        prepare_run(args.run / "refine-run", args.run / "refine-data")
        overrides = {"refine__epochs": args.refine_epochs, "refine__patches_per_organ": 10, "refine__phase_variants": 1, "refine__prior": args.refine_prior, "refine__val_patches_per_organ": 5,
                     "preprocessing__coarse_spacing": COARSE_VARIANTS[args.coarse_variant][0],  # priors on the grid inference gives them
                     "refine__network": {**RefineConfig().to_dict(), "sharpen_channels": args.refine_sharpen}}
        train_refine(args.run / "refine-data", args.run / "refine-run", coarse=coarse, config="default", overrides=overrides, device="cpu",
                     resume=args.resume, progress=progress, start=args.start)
    else:
        coarse_folder = (args.coarse_run[0] if args.coarse_run else coarse_run_folder(args.run, args.coarse_variant)) / "coarse"
        coarse = load_part(coarse_folder)
        if coarse is None:
            parser.error(f"{coarse_folder} holds no trained coarse network (a run exports it when its epochs end): finish --stage coarse --coarse-variant {args.coarse_variant}, or give --coarse-run")
        refine_folder = (args.refine_run or args.run / "refine-run") / "refine"
        refine = kept_refine(args.keep_refine) if args.keep_refine else load_part(refine_folder)
        if refine is None:
            parser.error(f"{refine_folder} holds no trained refine network: run --stage refine first, or give --refine-run or --keep-refine MODEL")
        print(combine(args.run, coarse, refine, args.version, args.fusion_trust, tuple(args.coarse_scales)))


if __name__ == "__main__":
    main()
