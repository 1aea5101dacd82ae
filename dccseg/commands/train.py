"""``dccseg train coarse|refine|pretrain|all DATASET --output RUN_DIR``: train models, resumably, in a run folder.

The run folder holds ``status.json``, ``metrics.jsonl`` and the checkpoints (see
``dccseg.training.runstate``). Under ``torchrun`` every process runs this same command; rank 0
writes the files. A stopped run (SIGTERM/SIGINT) exits with 130 and continues with ``--resume``.
``dccseg train release OUTPUT_MODEL_DIR`` trains the release model from synthesised cases on a wall-clock
budget and writes a model folder (``dccseg.training.release``).
"""

from __future__ import annotations

import argparse
import os

from ..losses import LOSS_NAMES
from ..progress import Progress
from ..store import DEFAULT_MODEL_NAME
from ..training.configs import OPTIMIZER_PRESETS, PRESETS, PRIORS
from ..training.distributed import DEVICE_CHOICES
from ..training.finetune import WORLD_RATIO
from ..training.pipeline import PRETRAIN_LOSSES, train_all, train_coarse, train_refine
from ..training.pretrain import FORMS, train_pretrain
from ..training.pretrain_data import D_SCALES
from ..training.release import NAME, SCALES, VERSION, train_release

STOPPED_EXIT = 130


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="dataset folder (dataset.json)")
    parser.add_argument("--output", "-o", required=True, metavar="RUN_DIR", help="run folder: status.json, metrics.jsonl, checkpoints, model")
    parser.add_argument("--config", choices=PRESETS, default="default", help="training preset: tiny (tests), default (CPU demo model), paper (GPU, the paper's settings)")
    parser.add_argument("--epochs", type=int, help="epochs of the command's stage(s), overriding the preset")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="auto picks CUDA when present")
    parser.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last completed epoch")
    parser.add_argument("--val-fraction", type=float, help="fraction of cases held out for validation (default 0.2)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, help="data loader worker processes (default 0)")


def _refine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prior", choices=PRIORS, help="attention-channel masks for training patches: oof (out-of-fold coarse predictions), coarse, degraded (default: the preset's)")
    parser.add_argument("--folds", type=int, help="folds for --prior oof")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZER_PRESETS), help="refine optimiser preset: paper (Adam 1e-4) or code (SGD 1e-4)")


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("train", help="train the coarse and refine networks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)

    coarse = stages.add_parser("coarse", parents=[common], help="train the coarse 3D network")
    _common(coarse)
    coarse.set_defaults(func=run_coarse)

    refine = stages.add_parser("refine", parents=[common], help="train the refine 2D network on organ patches")
    _common(refine)
    _refine_options(refine)
    refine.add_argument("--coarse", metavar="RUN_DIR_OR_MODEL", help="coarse model: a 'train coarse' run folder or a model reference; the run then ends with a usable model in RUN_DIR/model")
    refine.add_argument("--encoder", metavar="CKPT", help="pretrained encoder (.safetensors, or a pretraining run folder) to fine-tune from")
    refine.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name written into RUN_DIR/model's card")
    refine.set_defaults(func=run_refine)

    pretrain = stages.add_parser("pretrain", parents=[common], help="contrastive pretraining of the refine encoder on organ patches (issue 4)")
    _common(pretrain)
    _pretrain_options(pretrain)
    pretrain.set_defaults(func=run_pretrain)

    everything = stages.add_parser("all", parents=[common], help="coarse -> pretrain -> refine -> evaluate -> register a new model version")
    _common(everything)
    _refine_options(everything)
    everything.add_argument("--name", default=DEFAULT_MODEL_NAME, help="model name in the store (the next free version is used)")
    everything.add_argument("--loss", choices=PRETRAIN_LOSSES, default="none", help="contrastive pretraining loss of the refine encoder (none: train from scratch)")
    everything.add_argument("--from", dest="from_model", metavar="MODEL_REF",
                            help="fine-tune this model (NAME, NAME@VERSION or folder) instead of training from scratch: its weights, preprocessing and a gentler schedule")
    everything.add_argument("--world-ratio", type=float, default=WORLD_RATIO,
                            help=f"with --from: renders of the bundled bodies in all phases per training case, so the model keeps working beyond your scans (default {WORLD_RATIO})")
    everything.add_argument("--held-out", metavar="ID[,ID...]", help="the cases to hold out for validation and the before/after comparison (default: a random --val-fraction)")
    everything.add_argument("--no-benchmark", action="store_true", help="with --from: compare before/after on the held-out cases only, not on the bundled benchmark")
    everything.add_argument("--body-scale", default="1", metavar="auto|F",
                            help="your cases are children: train on them at an adult's size and compare before/after as 'segment --body-scale' reads them. "
                                 "auto measures each case by its labels against the --from model's organ volumes; a number is their size relative to an adult (default 1, adults)")
    everything.set_defaults(func=run_all)

    release = stages.add_parser("release", parents=[common],
                                help="the release model on a wall-clock budget (one GPU: 9 minutes), cases synthesised while it trains")
    release.add_argument("output", metavar="OUTPUT_MODEL_DIR", help="new folder for the model (model.json + coarse/refine weights)")
    release.add_argument("--minutes", type=float, default=9.0, help="wall-clock budget of the whole command (default 9)")
    release.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="auto picks CUDA when present")
    release.add_argument("--workers", type=int, help="CPU processes that synthesise cases (default: CPU cores - 2)")
    release.add_argument("--scale", choices=sorted(SCALES), default="release", help="release (the shipped model's networks) or tiny (tests)")
    release.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    release.add_argument("--name", default=NAME, help=f"model name in the card (default {NAME})")
    release.add_argument("--version", default=VERSION, help=f"model version in the card (default {VERSION})")
    release.set_defaults(func=run_release)


def _pretrain_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loss", choices=LOSS_NAMES, default="dcc", help="pretraining loss (default dcc)")
    parser.add_argument("--form", choices=FORMS, default="paper", help="paper: Eq. 4, clamped weights, Adam; code: the released code's loss form, unclamped weights, SGD 5e-4")
    parser.add_argument("--temperature", type=float, help="contrastive temperature (base temperature equal to it; default 0.07)")
    parser.add_argument("--d-scale", choices=D_SCALES, default="fixed", help="scale of the mean organ intensity d: fixed HU window (default) or the per-volume percentile scale of the paper")
    parser.add_argument("--batch-size", type=int, help="patches per batch (two views each), overriding the preset")
    parser.add_argument("--coarse", metavar="RUN_DIR_OR_MODEL", help="coarse model whose predictions give the attention masks (with --prior coarse)")
    parser.add_argument("--prior", choices=PRIORS, help="attention masks: oof (out-of-fold coarse predictions), coarse, degraded (default: the preset's)")
    parser.add_argument("--folds", type=int, help="folds for --prior oof")
    parser.set_defaults(optimizer=None)


def run_pretrain(args: argparse.Namespace, progress: Progress) -> int:
    overrides = _overrides(args, ("pretrain",))
    overrides.update({k: v for k, v in {"pretrain__batch_size": args.batch_size, "pretrain__temperature": args.temperature}.items() if v is not None})
    return _exit(train_pretrain(
        args.dataset, args.output, loss=args.loss, form=args.form, d_scale=args.d_scale, coarse=args.coarse, config=args.config,
        overrides=overrides, device=args.device, resume=args.resume, progress=_progress(progress),
    ))


def _overrides(args: argparse.Namespace, stages: tuple[str, ...]) -> dict[str, object]:
    values: dict[str, object] = {f"{s}__epochs": args.epochs for s in stages}
    values.update(val_fraction=args.val_fraction, seed=args.seed, num_workers=args.workers)
    if "refine" in stages or "pretrain" in stages:
        values.update(refine__prior=args.prior, refine__folds=args.folds, refine__optimizer=args.optimizer)
    return {k: v for k, v in values.items() if v is not None}


def _progress(progress: Progress) -> Progress:
    """Only rank 0 of a torchrun job reports."""
    return progress if int(os.environ.get("RANK", "0")) == 0 else Progress("none")


def _exit(state: str) -> int:
    return 0 if state == "finished" else STOPPED_EXIT


def run_coarse(args: argparse.Namespace, progress: Progress) -> int:
    return _exit(train_coarse(args.dataset, args.output, config=args.config, overrides=_overrides(args, ("coarse",)), device=args.device, resume=args.resume, progress=_progress(progress)))


def run_refine(args: argparse.Namespace, progress: Progress) -> int:
    return _exit(train_refine(
        args.dataset, args.output, coarse=args.coarse, encoder=args.encoder, name=args.name, config=args.config,
        overrides=_overrides(args, ("refine",)), device=args.device, resume=args.resume, progress=_progress(progress),
    ))


def run_all(args: argparse.Namespace, progress: Progress) -> int:
    held_out = [part.strip() for part in args.held_out.split(",") if part.strip()] if args.held_out else None
    return _exit(train_all(
        args.dataset, args.output, name=args.name, loss=args.loss, config=args.config,
        overrides=_overrides(args, ("coarse", "refine")), device=args.device, resume=args.resume, progress=_progress(progress),
        from_model=args.from_model, world_ratio=args.world_ratio, held_out=held_out, benchmark=not args.no_benchmark, body_scale=args.body_scale,
    ))


def run_release(args: argparse.Namespace, progress: Progress) -> int:
    print(train_release(args.output, minutes=args.minutes, device=args.device, workers=args.workers, scale=args.scale, seed=args.seed,
                        name=args.name, version=args.version, progress=progress))
    return 0
