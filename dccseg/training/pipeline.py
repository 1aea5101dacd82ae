"""The training commands as Python functions: ``train_coarse``, ``train_refine``, ``train_all``.

Each opens a session on a run folder (see ``runstate`` for the files the Slicer module polls),
runs its stages and returns the final state: ``"finished"`` or ``"stopped"`` (SIGTERM/SIGINT;
``resume=True`` continues). ``train_all`` = coarse -> pretraining (when ``loss`` is not ``none``)
-> refine -> evaluation on the validation cases -> a new model version in the store.

Pretraining plugs in through ``dccseg.training.pretrain.run_pretrain(session, loss, coarse)``,
which returns the encoder's state dict (issue 4).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from dccseg.dataset import Case, Dataset
from dccseg.errors import DccsegError
from dccseg.organs import ORGAN_BY_LABEL
from dccseg.inference.body_size import AUTO, at_adult_size, labelled_body_scale, parse_body_scale, reference_volumes
from dccseg.inference.settings import InferenceSettings
from dccseg.networks import CoarseConfig, build_coarse_net
from dccseg.progress import QUIET, Progress
from dccseg.store import DEFAULT_MODEL_NAME, ModelStore, dataset_hash
from dccseg.training.augment import source_phase
from dccseg.training.cases import CaseVolumes, labelled_cases, on_grid, read_canonical
from dccseg.training.coarse import coarse_network, fit_coarse, load_start
from dccseg.training.coarse_data import synthetic_cases
from dccseg.training.configs import Preprocessing
from dccseg.training.finetune import CROSS_VALIDATE_BELOW, WEIGHT_SHARE, WORLD_RATIO, StartingModel, averaged, load_starting_model, starting_entry, unlabelled_organs, world_cases, world_count
from dccseg.training.export import MODEL_FOLDER, RUN_MODEL_VERSION, build_card, export_model, load_part, read_model_folder, save_part, write_model_folder
from dccseg.training.loop import StageStopped
from dccseg.training.priors import SYNTHETIC_PRIORS, degraded_prior, out_of_fold_priors, predicted_prior
from dccseg.training.refine import STAGE as REFINE_STAGE
from dccseg.training.refine import fit_refine
from dccseg.training.refine_data import RefineCase, refine_case
from dccseg.training.session import Session, build_config, open_session
from dccseg.training.sources import CoarseModel, resolve_coarse, resolve_encoder
from dccseg.volume import Volume

PRETRAIN_LOSSES = ("none", "dcc", "simclr", "supcon", "agcl", "ce")
LOAD_STAGE = "load"
WORLD_STAGE = "world"
COMPARE_STAGE = "compare"


# -- entry points ------------------------------------------------------------------------------
def train_coarse(dataset: str | Path, output: str | Path, *, config: str = "default", overrides: Mapping[str, Any] | None = None, device: str = "auto", resume: bool = False, progress: Progress = QUIET,
                 start: str | None = None) -> str:
    """Train the coarse 3D network on ``dataset`` (from model ``start``'s weights when given); its weights end in ``output/coarse/model.safetensors``."""
    request = {"command": "coarse", "preset": config, "overrides": dict(overrides or {}), "from": start}
    with open_session(dataset, output, request, {LOAD_STAGE: 0.05, "coarse": 1.0}, device, resume, progress) as session:
        return _run(session, lambda: coarse_stage(session, load_starting_model(session.request["from"]) if session.request.get("from") else None))


def train_refine(dataset: str | Path, output: str | Path, *, coarse: str | Path | None = None, encoder: str | Path | None = None, name: str = DEFAULT_MODEL_NAME, config: str = "default", overrides: Mapping[str, Any] | None = None, device: str = "auto", resume: bool = False, progress: Progress = QUIET,
                 start: str | None = None) -> str:
    """Train the refine network (from model ``start``'s refine weights when given); with ``coarse`` (run folder or model) also writes ``output/model/``."""
    request = {"command": "refine", "preset": config, "overrides": dict(overrides or {}), "coarse": _text(coarse), "encoder": _text(encoder), "name": name, "from": start}
    coarse_run = Path(coarse) if coarse is not None and Path(coarse).is_dir() else None
    weights = _refine_weights(request)
    with open_session(dataset, output, request, weights, device, resume, progress, split_from=coarse_run) as session:
        def body() -> None:
            coarse_model = resolve_coarse(session.request["coarse"]) if session.request.get("coarse") else None
            _adopt_coarse(session, coarse_model)
            encoder_state = resolve_encoder(session.request["encoder"]) if session.request.get("encoder") else None
            refine_stage(session, coarse_model, encoder_state, initial_state=load_starting_model(session.request["from"]).refine_state if session.request.get("from") else None)
            if coarse_model is not None:
                write_run_model(session, coarse_model, session.request.get("name") or name)
        return _run(session, body)


def train_all(dataset: str | Path, output: str | Path, *, name: str = DEFAULT_MODEL_NAME, loss: str = "none", config: str = "default", overrides: Mapping[str, Any] | None = None, device: str = "auto", resume: bool = False, progress: Progress = QUIET, store: ModelStore | None = None,
              from_model: str | None = None, world_ratio: float = WORLD_RATIO, held_out: list[str] | None = None, benchmark: bool = True,
              body_scale: float | str = 1.0) -> str:
    """Coarse -> pretraining (``loss`` != none) -> refine -> evaluation -> a new version of ``name`` in the store.

    ``from_model``: fine-tune that model (``dccseg.training.finetune``) with ``world_ratio`` renders of the bundled bodies per
    training case, then compare it with the new one on the held-out cases (and the benchmark); a worse result is registered held back.
    ``body_scale``: the dataset's cases are children of that size (``AUTO``: each measured by its labels against the starting
    model's organ volumes); they train at an adult's size and are evaluated as ``dccseg segment --body-scale`` reads them.
    """
    if loss not in PRETRAIN_LOSSES:
        raise DccsegError(f"unknown pretraining loss '{loss}'; use one of {', '.join(PRETRAIN_LOSSES)}")
    if loss != "none" and importlib.util.find_spec("dccseg.training.pretrain") is None:
        raise DccsegError("pretraining is not available yet in this dccseg; use --loss none")
    if from_model and loss != "none":
        raise DccsegError("a fine-tune keeps its starting model's refine encoder; drop --loss, or train from scratch without --from")
    world_count(world_ratio, 0)
    body_scale = _checked_body_scale(body_scale, from_model)
    request = {"command": "all", "preset": config, "overrides": dict(overrides or {}), "name": name, "loss": loss, "held_out": held_out}
    if body_scale != 1.0:
        request["body_scale"] = body_scale
    if from_model:
        request.update({"from": starting_entry(from_model).ref, "world_ratio": world_ratio, "benchmark": benchmark})
        if not held_out and 2 <= len(labelled_cases(Dataset.load(dataset))) < CROSS_VALIDATE_BELOW:
            request.update(cross_validate=True, overrides={**request["overrides"], "val_fraction": 0.0})
    weights = {LOAD_STAGE: 0.05, "coarse": 1.0, **_refine_weights(request), "evaluate": 0.1}
    if loss != "none":
        weights["pretrain"] = 1.0
    if from_model:
        weights.update({WORLD_STAGE: 0.1, COMPARE_STAGE: 0.4})
    if request.get("cross_validate"):
        weights["cross-validation"] = 2.0
    with open_session(dataset, output, request, weights, device, resume, progress) as session:
        def body() -> None:
            start = load_starting_model(session.request["from"]) if session.request.get("from") else None
            world = world_volumes(session) if start is not None else []
            coarse_model = coarse_stage(session, start, world)
            _adopt_coarse(session, coarse_model)
            encoder_state = None
            if session.request.get("loss", "none") != "none":
                pretrain = importlib.import_module("dccseg.training.pretrain")
                encoder_state = pretrain.run_pretrain(session, session.request["loss"], coarse_model)
            if start is None:
                refine_stage(session, coarse_model, encoder_state)
            else:
                refine_stage(session, start.coarse, None, initial_state=start.refine_state, world=world)
            if session.state.status.get("model_ref") is None:
                write_run_model(session, coarse_model, session.request["name"], pretraining=session.request.get("loss"), start=start)
                held_out_dice = evaluate_stage(session)
                if start is not None:
                    compare_stage(session, start, world, held_out_dice)
                if session.ctx.is_writer:
                    entry = export_model(session.run_dir, session.request["name"], store=store)
                    session.state.set(model_ref=entry.ref, message=f"registered {entry.ref}")
                    session.log(f"registered model {entry.ref}" + (f", held back: {entry.card.held_back}" if entry.card.held_back else ""))
        return _run(session, body)


def _run(session: Session, body) -> str:
    try:
        body()
    except StageStopped as stopped:
        session.state.finish("stopped", f"stopped during {stopped}; continue with --resume")
        session.log(f"stopped during {stopped}; continue with --resume")
        return "stopped"
    ref = session.state.status.get("model_ref")
    session.state.finish("finished", f"finished; model {ref}" if ref else "finished")
    return "finished"


def _checked_body_scale(body_scale: float | str, from_model: str | None) -> float | str:
    """``train all --body-scale``, refused where it cannot work: ``AUTO`` needs a starting model whose card holds organ volumes."""
    body_scale = parse_body_scale(str(body_scale))
    if body_scale == AUTO:
        if not from_model:
            raise DccsegError("--body-scale auto measures your cases against a model's organ volumes: fine-tune one with --from (e.g. --from dccseg-abdomen), or give the children's size as a number, e.g. --body-scale 0.6")
        entry = starting_entry(from_model)
        if not entry.card.preprocessing.get("size_reference_ml"):
            raise DccsegError(f"{entry.ref} has no organ volumes in its card to measure your cases by; give the children's size as a number, e.g. --body-scale 0.6")
    return body_scale


def read_case(session: Session, case: Case, log: bool = False) -> tuple[Volume, Volume]:
    """The case's CT and labels in canonical orientation; at an adult's size when the run's cases are children (``train all --body-scale``)."""
    ct, labels = read_canonical(case)
    wanted = session.body_scale
    if wanted == 1.0:
        return ct, labels
    scale = labelled_body_scale(labels, wanted, session.config.preprocessing.size_reference_ml or {})
    if log:
        session.log(f"{case.id}: body scale {scale:.2f}, trained at an adult's size")
    return at_adult_size(ct, scale), at_adult_size(labels, scale)


def _text(value: str | Path | None) -> str | None:
    return None if value is None else str(value)


def _refine_weights(request: dict[str, Any]) -> dict[str, float]:
    """Shares of the overall progress: loading, the out-of-fold coarse models, refine."""
    refine = build_config(request).refine
    weights: dict[str, float] = {LOAD_STAGE: 0.05}
    if refine.prior == "oof":
        weights.update({f"coarse-fold{k + 1}": 0.5 for k in range(refine.folds)})
    weights[REFINE_STAGE] = 1.0
    return weights


# -- stages ------------------------------------------------------------------------------------
def load_coarse_cases(session: Session, ids: list[str]) -> list[CaseVolumes]:
    """The cases on the coarse grid; organs that no case of the dataset labels are marked unlabelled (unknown in the loss)."""
    spacing = session.config.preprocessing.coarse_spacing
    out, labelmaps = [], []
    for i, case in enumerate(session.cases(ids)):
        session.state.set(force=False, stage=LOAD_STAGE, message=f"loading {case.id} ({i + 1}/{len(ids)})")
        ct, labels = read_case(session, case, log=True)
        labelmaps.append(labels.array)
        ct, labels = on_grid(ct, labels, spacing)
        out.append(CaseVolumes(case.id, source_phase(ct, labels, case.phase), ct, labels))
    missing = unlabelled_organs(labelmaps)
    if missing and ids:
        session.log(f"no case labels organ(s) {', '.join(ORGAN_BY_LABEL[o].key for o in missing)}: they are left out of the loss, not taught as background")
    return [dataclasses.replace(c, unlabelled=missing) for c in out]


def world_volumes(session: Session) -> list[tuple[str, str, Volume, Volume]]:
    """Renders of the bundled training bodies that join a fine-tune's training cases (``--world-ratio`` per case)."""
    count = world_count(float(session.request.get("world_ratio", WORLD_RATIO)), len(session.train_ids))
    session.state.progress(WORLD_STAGE, 0.0, 1, f"rendering {count} case(s) of the bundled bodies", force=True)
    world = world_cases(count, session.config.preprocessing.refine_spacing, session.config.seed)
    session.state.progress(WORLD_STAGE, 1.0, 1, f"{count} bundled-body case(s) ready", force=True)
    return world


def coarse_stage(session: Session, start: StartingModel | None = None, world: list[tuple[str, str, Volume, Volume]] = ()) -> CoarseModel:
    """Train the coarse model (skipped when a resumed run already finished it); a fine-tune starts from ``start``'s."""
    folder = session.run_dir / "coarse"
    part = load_part(folder) if session.resume else None
    if part is None:
        config = session.config
        if start is not None:  # a start of another shape stops here, not after minutes of reading cases
            load_start(build_coarse_net(config.coarse.network), start.coarse.state_dict, config.coarse.network)
        loaded = load_coarse_cases(session, session.train_ids + session.val_ids)
        train, val = loaded[: len(session.train_ids)], loaded[len(session.train_ids):]
        if start is None:  # from scratch: its own cases are the bodies --body-scale auto measures by (a fine-tune keeps its start's)
            config = dataclasses.replace(config, preprocessing=dataclasses.replace(config.preprocessing, size_reference_ml=reference_volumes(c.labels for c in train) or None))
        pool = synthetic_cases(train, config.phase.synthetic_cases, config.seed)
        pool += [CaseVolumes(case_id, phase, *on_grid(ct, labels, config.preprocessing.coarse_spacing)) for case_id, phase, ct, labels in world]
        initial = start.coarse.state_dict if start is not None else None
        result, net = fit_coarse(session, "coarse", train + pool, val, config.coarse, config.coarse.epochs, initial_state=initial)
        if result.state != "finished":
            raise StageStopped("coarse")
        info = {
            "part": "coarse", "architecture": config.coarse.network.to_dict(), "preprocessing": config.preprocessing.to_card(),
            "epochs": config.coarse.epochs, "best": session.state.status.get("best"), "synthetic_cases": len(pool),
            "data": data_summary(session), "data_hash": dataset_hash(session.dataset), "source": start.ref if start is not None else None,
        }
        if session.ctx.is_writer:
            save_part(folder, net.state_dict(), info)
        part = (net.state_dict(), info)
    state, info = part
    return CoarseModel(CoarseConfig.from_dict(info["architecture"]), state, info)


def _adopt_coarse(session: Session, coarse: CoarseModel | None) -> None:
    """Refine must see the coarse model's intensity scaling and coarse grid, whatever the preset says, and the card gets its organ volumes."""
    if coarse is None:
        return
    given = Preprocessing.from_card(coarse.preprocessing)
    preprocessing = dataclasses.replace(session.config.preprocessing, intensity=given.intensity, coarse_spacing=given.coarse_spacing, size_reference_ml=given.size_reference_ml)
    session.config = dataclasses.replace(
        session.config, preprocessing=preprocessing, coarse=dataclasses.replace(session.config.coarse, network=coarse.config)
    )


def refine_stage(session: Session, coarse: CoarseModel | None, encoder_state: Mapping[str, torch.Tensor] | None,
                 initial_state: Mapping[str, torch.Tensor] | None = None, world: list[tuple[str, str, Volume, Volume]] = ()) -> None:
    """Train the refine model on organ patches (skipped when a resumed run already finished it).

    ``initial_state``: a whole refine network to start from (a fine-tune); ``world``: extra training volumes (id, phase, CT, labels).
    """
    folder = session.run_dir / REFINE_STAGE
    if session.resume and load_part(folder) is not None:
        return
    config = session.config
    mode = config.refine.prior
    if mode == "coarse" and coarse is None:
        raise DccsegError("--prior coarse needs --coarse RUN_DIR_OR_MODEL")
    settings = InferenceSettings.from_card(config.preprocessing.to_card())
    device = session.ctx.device
    net = coarse_network(coarse.config, coarse.state_dict, device) if coarse is not None else None
    divisor = config.coarse.network.size_divisor

    small: dict[str, CaseVolumes] = {}
    fine: dict[str, tuple[Volume, Volume]] = {}
    labelmaps = []
    for case in session.cases(session.train_ids + session.val_ids):
        session.state.set(force=False, stage=LOAD_STAGE, message=f"loading {case.id}")
        ct, labels = read_case(session, case)
        labelmaps.append(labels.array)
        ct_c, labels_c = on_grid(ct, labels, config.preprocessing.coarse_spacing)
        small[case.id] = CaseVolumes(case.id, source_phase(ct_c, labels_c, case.phase), ct_c, labels_c)
        fine[case.id] = on_grid(ct, labels, settings.refine_grid_spacing(ct.spacing[2]))
    unlabelled = set(unlabelled_organs(labelmaps))
    for case_id, phase, ct, labels in world:
        small[case_id] = CaseVolumes(case_id, phase, *on_grid(ct, labels, config.preprocessing.coarse_spacing))
        fine[case_id] = on_grid(ct, labels, settings.refine_grid_spacing(ct.spacing[2]))
    train_ids = session.train_ids + [case_id for case_id, *_ in world]

    train_priors = out_of_fold_priors(session, [small[i] for i in session.train_ids]) if mode == "oof" else {}

    def prior_for(index: int, case_id: str) -> Volume:
        """Training cases: the chosen prior; validation cases: a coarse model's masks when there is one."""
        is_train = case_id in train_ids
        if is_train and mode == "oof" and case_id in train_priors:
            return train_priors[case_id]
        if net is not None and not (is_train and mode in SYNTHETIC_PRIORS):
            return predicted_prior(net, small[case_id], config.preprocessing.intensity, divisor, device)
        return SYNTHETIC_PRIORS.get(mode, degraded_prior)(small[case_id].labels, np.random.default_rng([config.seed, index, 3]))

    cases: dict[str, RefineCase] = {}
    for index, case_id in enumerate(train_ids + session.val_ids):
        variants = config.refine.phase_variants if case_id in train_ids else 0
        ct_r, labels_r = fine[case_id]
        case = refine_case(case_id, small[case_id].phase, ct_r, labels_r, prior_for(index, case_id), settings, variants, np.random.default_rng([config.seed, index, 4]))
        if case_id in session.train_ids or case_id in session.val_ids:
            case.organs = [o for o in case.organs if o not in unlabelled]
        cases[case_id] = case
    del fine, small
    result, refine_net = fit_refine(session, [cases[i] for i in train_ids], [cases[i] for i in session.val_ids], encoder_state, initial_state)
    if result.state != "finished":
        raise StageStopped(REFINE_STAGE)
    info = {
        "part": "refine", "architecture": config.refine.network.to_dict(), "preprocessing": config.preprocessing.to_card(),
        "epochs": config.refine.epochs, "prior": mode, "encoder": session.request.get("encoder"), "best": session.state.status.get("best"),
        "data": data_summary(session), "data_hash": dataset_hash(session.dataset), "source": session.request.get("from"),
    }
    if session.ctx.is_writer:
        save_part(folder, refine_net.state_dict(), info)


def write_run_model(session: Session, coarse: CoarseModel, name: str, pretraining: str | None = None, metrics: dict[str, Any] | None = None,
                    start: StartingModel | None = None) -> None:
    """``RUN_DIR/model/``: the finished coarse + refine pair as a model version folder.

    A fine-tune (``start``) is registered averaged with its starting model's weights (``finetune.averaged``) and keeps its ``refine_skip``.
    """
    if not session.ctx.is_writer:
        return
    refine = load_part(session.run_dir / REFINE_STAGE)
    if refine is None:
        raise DccsegError(f"{session.run_dir} has no finished refine stage")
    refine_state, refine_info = refine
    coarse_state = coarse.state_dict
    if start is not None:
        coarse_state, refine_state = averaged(start.coarse.state_dict, coarse_state), averaged(start.refine_state, refine_state)
    training = {
        "data": data_summary(session), "data_hash": dataset_hash(session.dataset), "preset": session.config.name,
        "config": session.config.to_dict(), "pretraining": None if pretraining in (None, "none") else pretraining,
        "stages": {"coarse": _stage_summary(coarse.info), "refine": _stage_summary(refine_info)},
    }
    if start is not None:
        training["fine_tune"] = {"from": start.ref, "world_ratio": session.request.get("world_ratio"), "weight_share": WEIGHT_SHARE}
    if session.body_scale != 1.0:
        training["body_scale"] = session.body_scale
    validation = {"coarse_val_dice": (coarse.info.get("best") or {}).get("value"), "refine_val_patch_dice": (refine_info.get("best") or {}).get("value")}
    card = build_card(name, RUN_MODEL_VERSION, coarse.info, refine_info, training, metrics or {"validation": validation},
                      description=f"trained by 'dccseg train' ({session.config.name} preset) on {session.dataset.name}")
    card.refine_skip = list(start.card.refine_skip) if start is not None else []
    write_model_folder(session.run_dir / MODEL_FOLDER, card, {"coarse": coarse_state, "refine": refine_state})


def evaluate_stage(session: Session) -> dict[str, float]:
    """Segment the validation cases with the run's model, put the Dice into its card, and return each case's mean Dice."""
    from dccseg.training.evaluate import card_metrics, case_dice, evaluate_cases  # segmenting needs SimpleITK; training alone does not

    if not session.val_ids or not session.ctx.is_writer:
        return {}
    session.state.progress("evaluate", 0.0, 1, f"evaluating on {len(session.val_ids)} validation cases", force=True)
    folder = session.run_dir / MODEL_FOLDER
    results = evaluate_cases(str(folder.resolve()), session.cases(session.val_ids), session.ctx.device, session.progress, body_scale=session.body_scale)
    metrics = card_metrics(results)
    card, weights = read_model_folder(session.run_dir)
    card.metrics = {**metrics, "validation": card.metrics.get("validation")}
    write_model_folder(folder, card, weights)
    session.state.progress("evaluate", 1.0, 1, f"validation Dice {metrics.get('dice_mean')}", force=True)
    return case_dice(results)


def compare_stage(session: Session, start: StartingModel, world: list[tuple[str, str, Volume, Volume]], held_out_dice: dict[str, float]) -> None:
    """Before/after: the starting model and the new one on the held-out cases (or cross-validated) and the benchmark, into ``metrics.finetune``.

    ``held_out_dice``: the new model's Dice on the held-out cases, as ``evaluate_stage`` measured it.
    """
    from dccseg.training.cross_validation import cross_validated
    from dccseg.training.finetune_report import benchmark_cases, case_scores, compare, summary_line, verdict

    if not session.ctx.is_writer:
        return
    folder = str((session.run_dir / MODEL_FOLDER).resolve())
    if session.request.get("cross_validate"):
        held_out = cross_validated(session, start, world)
    else:
        held = session.cases(session.val_ids)
        session.state.progress(COMPARE_STAGE, 0.0, 1, f"{start.ref} against the new model on {len(held)} held-out case(s)", force=True)
        held_out = compare(case_scores(start.ref, held, session.ctx.device, session.progress, session.body_scale), held_out_dice)
        held_out["method"] = "held-out"
    if session.body_scale != 1.0:
        held_out["body_scale"] = session.body_scale
    bench = None
    if session.request.get("benchmark", True):
        cases = benchmark_cases(session.run_dir)
        bench = compare(case_scores(start.ref, cases, session.ctx.device, session.progress), case_scores(folder, cases, session.ctx.device, session.progress))
    word, reason = verdict(held_out, bench)
    report = {"from": start.ref, "held_out": held_out, "benchmark": bench, "verdict": word}
    report["summary"] = summary_line(report)
    card, weights = read_model_folder(session.run_dir)
    card.metrics = {**card.metrics, "finetune": report}
    card.held_back = reason
    write_model_folder(session.run_dir / MODEL_FOLDER, card, weights)
    session.log(f"fine-tuned from {start.ref}: {report['summary']} ({word})")
    session.state.progress(COMPARE_STAGE, 1.0, 1, report["summary"], force=True)


def data_summary(session: Session) -> dict[str, Any]:
    cases = session.cases(session.train_ids + session.val_ids)
    return {
        "dataset": session.dataset.name, "cases": len(cases), "train": session.train_ids, "val": session.val_ids,
        "phases": dict(Counter(c.phase for c in cases)), "sources": dict(Counter(c.source or "unknown" for c in cases)),
        "phase_augmentation": session.config.phase.probability, "synthetic_cases": session.config.phase.synthetic_cases,
    }


def _stage_summary(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info.get(k) for k in ("epochs", "best", "prior", "encoder", "synthetic_cases", "source") if info.get(k) is not None}
