"""Contrastive pretraining of the refine encoder (issue 4; method.md §1.3-§1.6, §2).

``train_pretrain`` is ``dccseg train pretrain``; ``run_pretrain`` is the stage that ``train all``
runs between coarse and refine. The stage trains ``encoder + projection head`` (or, for ``ce``, the
encoder + a linear organ x phase classifier) on two views of organ patches of every training case,
with the epoch loop, checkpoints, resume, AMP and DDP of ``dccseg.training.loop``. Under torchrun each
process computes the loss on its own shard of the batch (negatives come from the local batch).

Output, in ``RUN_DIR/pretrain/``: ``encoder.safetensors`` (the bare encoder state dict, what
``dccseg train refine --encoder RUN_DIR`` loads) and ``encoder.json``, its card: loss, form,
temperature, d scale, epochs, batch size, optimiser, the encoder's RefineConfig, the data summary
and hash, and the empty-view rate. ``metrics.jsonl`` gets one record per epoch with the train loss,
``empty_view_rate`` (the fraction of views whose mask lost the organ: < 16 px, so DCC gives their
pairs weight 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dccseg.errors import DccsegError
from dccseg.fileutil import atomic_output, ensure_writable_dir
from dccseg.losses import LOSS_NAMES, PretrainLoss, PretrainTargets, build_pretrain_loss
from dccseg.networks import ProjectionHead, build_encoder
from dccseg.organs import PHASES
from dccseg.progress import QUIET, Progress
from dccseg.store import dataset_hash
from dccseg.training import distributed
from dccseg.training.configs import OptimizerConfig
from dccseg.training.coarse import coarse_network
from dccseg.training.loop import Stage, StageStopped, run_stage
from dccseg.training.optim import build_optimizer, build_scheduler
from dccseg.training.pretrain_data import D_SCALES, PretrainCase, batch_views, gather_batch, load_pretrain_cases, patch_rows
from dccseg.training.runstate import write_json
from dccseg.training.session import Session, open_session
from dccseg.training.sources import ENCODER_FILE, CoarseModel, resolve_coarse
from dccseg.training.views import ViewConfig

STAGE = "pretrain"
CARD_FILE = "encoder.json"
FORMS = ("paper", "code")
MIN_MASK_PX = 16
CODE_OPTIMIZER = OptimizerConfig("sgd", lr=5e-4, weight_decay=1e-4, momentum=0.9, schedule="constant", grad_clip=None)


class PretrainObjective(nn.Module):
    """Encoder + projection head (contrastive losses) or pooled features (CE) + the loss, as one module for DDP."""

    def __init__(self, encoder: nn.Module, loss: PretrainLoss) -> None:
        super().__init__()
        self.encoder = encoder
        self.loss = loss
        self.head = ProjectionHead(encoder.out_channels[1]) if loss.input == "projection" else None

    def forward(self, inputs: torch.Tensor, targets: PretrainTargets) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pooled = self.encoder(inputs)["high"].mean(dim=(-2, -1))
        with torch.autocast(device_type=inputs.device.type, enabled=False):  # pitfall 2: head, norm and loss in fp32
            outputs = self.head(pooled.float()) if self.head is not None else pooled.float()
            return self.loss(outputs, targets)


def train_pretrain(
    dataset: str | Path,
    output: str | Path,
    *,
    loss: str = "dcc",
    form: str = "paper",
    d_scale: str = "fixed",
    coarse: str | Path | None = None,
    config: str = "default",
    overrides: Mapping[str, Any] | None = None,
    device: str = "auto",
    resume: bool = False,
    progress: Progress = QUIET,
) -> str:
    """``dccseg train pretrain``: pretrain the refine encoder; returns "finished" or "stopped"."""
    check_choices(loss, form, d_scale)
    request = {"command": "pretrain", "preset": config, "overrides": dict(overrides or {}), "loss": loss, "form": form, "d_scale": d_scale, "coarse": None if coarse is None else str(coarse)}
    with open_session(dataset, output, request, {"load": 0.1, STAGE: 1.0}, device, resume, progress) as session:
        try:
            coarse_model = resolve_coarse(session.request["coarse"]) if session.request.get("coarse") else None
            run_pretrain(session, session.request["loss"], coarse_model)
        except StageStopped as stopped:
            session.state.finish("stopped", f"stopped during {stopped}; continue with --resume")
            return "stopped"
        session.state.finish("finished", f"finished; encoder in {session.run_dir / STAGE / ENCODER_FILE}")
        return "finished"


def check_choices(loss: str, form: str, d_scale: str) -> None:
    if loss not in LOSS_NAMES:
        raise DccsegError(f"unknown pretraining loss '{loss}'; use one of {', '.join(LOSS_NAMES)}")
    if form not in FORMS:
        raise DccsegError(f"unknown loss form '{form}'; use paper or code")
    if d_scale not in D_SCALES:
        raise DccsegError(f"unknown d scale '{d_scale}'; use one of {', '.join(D_SCALES)}")


def run_pretrain(session: Session, loss: str, coarse: CoarseModel | None) -> dict[str, torch.Tensor]:
    """The pretraining stage of a session; returns the encoder state dict (skipped when a resumed run finished it)."""
    form, d_scale = session.request.get("form", "paper"), session.request.get("d_scale", "fixed")
    check_choices(loss, form, d_scale)
    folder = session.run_dir / STAGE
    if session.resume and (folder / ENCODER_FILE).is_file() and (folder / CARD_FILE).is_file():
        card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
        if card.get("epochs") == session.config.pretrain.epochs:
            return load_file(str(folder / ENCODER_FILE))
    ctx = session.ctx
    net = coarse_network(coarse.config, coarse.state_dict, ctx.device) if coarse is not None else None
    cases = load_pretrain_cases(session, net, d_scale)
    del net
    if not any(c.organs for c in cases):
        raise DccsegError("no organ appears in the training cases' priors, so there is nothing to pretrain on; check the labels")
    result, objective, stats = fit_pretrain(session, cases, loss, form)
    if result.state != "finished":
        raise StageStopped(STAGE)
    state = {k: v.detach().cpu().contiguous() for k, v in objective.encoder.state_dict().items()}
    if ctx.is_writer:
        write_encoder(folder, state, encoder_card(session, loss, form, d_scale, cases, stats))
    return state


def fit_pretrain(session: Session, cases: list[PretrainCase], loss_name: str, form: str) -> tuple[Any, PretrainObjective, dict[str, float]]:
    """Train (or resume) the encoder on two-view patch batches; returns the loop result, the objective and the last epoch's stats."""
    config, settings = session.config, session.config.pretrain
    ctx, device = session.ctx, session.ctx.device
    network = config.refine.network
    torch.manual_seed(config.seed)
    encoder = build_encoder(network)
    loss = build_pretrain_loss(loss_name, preset=form, temperature=settings.temperature, min_mask_px=MIN_MASK_PX, feature_dim=encoder.out_channels[1])
    objective = PretrainObjective(encoder, loss)
    model = distributed.wrap(objective, ctx)
    objective = distributed.unwrap(model)
    optimizer_config = CODE_OPTIMIZER if form == "code" else OptimizerConfig("adam", lr=settings.lr, weight_decay=settings.weight_decay, schedule="constant", grad_clip=None)
    optimizer = build_optimizer(model.parameters(), optimizer_config)
    views = ViewConfig(size=network.patch_size)
    local_batch = max(1, settings.batch_size // ctx.world_size)
    totals: dict[int, dict[str, float]] = {}
    generator = torch.Generator()

    def batches(epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([config.seed, epoch, 5])
        generator.manual_seed(int(rng.integers(2**62)) + ctx.rank)
        totals[epoch] = {"views": 0.0, "empty": torch.zeros((), device=device)}
        rows = patch_rows(cases, settings.patches_per_organ, rng)
        rows = rows[rng.permutation(len(rows))][ctx.rank :: ctx.world_size]
        count = len(rows) // local_batch  # drop_last: a batch of one patch has no negatives (pitfall 11)
        if count == 0:
            raise DccsegError(f"{len(rows)} pretraining patches do not fill one batch of {local_batch}; lower --batch-size or add cases")
        return [rows[i * local_batch : (i + 1) * local_batch] for i in range(count)]

    def loss_fn(module: nn.Module, rows: np.ndarray) -> torch.Tensor:
        epoch = max(totals)
        inputs, targets = batch_views(gather_batch(cases, rows, network.patch_size), views, network.in_channels, generator, device)
        value, _ = module(inputs, targets)
        empty = targets.mask.flatten(1).sum(1) < MIN_MASK_PX
        totals[epoch]["views"] += empty.numel()
        totals[epoch]["empty"] += empty.sum()  # stays on the device: no sync per batch
        return value

    def epoch_stats(epoch: int) -> dict[str, Any]:
        record = totals.get(epoch, {"views": 0.0, "empty": torch.zeros(())})
        rate = distributed.mean_over_ranks(float(record["empty"]) / max(record["views"], 1.0), ctx)
        return {"empty_view_rate": round(rate, 5), "loss": loss_name, "form": form}

    spec = Stage(
        name=STAGE, epochs=settings.epochs, model=model, optimizer=optimizer,
        scheduler=build_scheduler(optimizer, optimizer_config, settings.epochs), batches=batches, loss_fn=loss_fn,
        epoch_stats=epoch_stats,
    )
    result = run_stage(spec, ctx, session.state, session.stop, session.progress, session.resume)
    last = max(totals) if totals else None
    stats = epoch_stats(last) if last is not None else {}
    return result, objective.eval(), stats


def encoder_card(session: Session, loss: str, form: str, d_scale: str, cases: list[PretrainCase], stats: dict[str, Any]) -> dict[str, Any]:
    settings = session.config.pretrain
    optimizer = CODE_OPTIMIZER if form == "code" else OptimizerConfig("adam", lr=settings.lr, weight_decay=settings.weight_decay, schedule="constant", grad_clip=None)
    return {
        "part": "encoder",
        "loss": loss,
        "form": form,
        "temperature": settings.temperature,
        "d_scale": d_scale,
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "patches_per_organ": settings.patches_per_organ,
        "optimizer": {"name": optimizer.name, "lr": optimizer.lr, "weight_decay": optimizer.weight_decay},
        "encoder": session.config.refine.network.to_dict(),
        "preprocessing": session.config.preprocessing.to_card(),
        "prior": session.config.refine.prior,
        "data": {"dataset": session.dataset.name, "cases": [c.id for c in cases], "phases": sorted({PHASES[c.phase] for c in cases}), "patches_per_epoch": sum(len(c.organs) for c in cases) * settings.patches_per_organ},
        "data_hash": dataset_hash(session.dataset),
        "empty_view_rate": stats.get("empty_view_rate"),
        "seed": session.config.seed,
    }


def write_encoder(folder: Path, state: dict[str, torch.Tensor], card: dict[str, Any]) -> None:
    """Weights first, then the card, so a card always has its weights."""
    ensure_writable_dir(folder)
    with atomic_output(folder / ENCODER_FILE) as tmp:
        save_file(state, str(tmp))
    write_json(folder / CARD_FILE, card)
