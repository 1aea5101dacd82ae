"""Before/after of a fine-tune on a dataset too small to hold cases out: leave one case out, fine-tune, compare, for every case.

With fewer than ``finetune.CROSS_VALIDATE_BELOW`` labelled cases (and no ``--held-out``) the model that is registered trains on
every case, and its before/after on "your cases" comes from one fold per case instead: a fine-tune on the other
cases, evaluated on the left-out one against the starting model. Each fold is a run folder of its own under
``RUN_DIR/cross-validation/<case>/``, so a stopped run resumes fold by fold.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dccseg.training.export import MODEL_FOLDER
from dccseg.training.finetune import StartingModel
from dccseg.training.finetune_report import case_scores, compare
from dccseg.training.runstate import RunState, read_status
from dccseg.training.session import Session
from dccseg.volume import Volume

FOLDER = "cross-validation"
FOLD_STAGES = {"load": 0.05, "coarse": 1.0, "refine": 1.0}


def cross_validated(session: Session, start: StartingModel, world: list[tuple[str, str, Volume, Volume]]) -> dict[str, Any]:
    """The ``held_out`` part of ``metrics.finetune``: per case, the starting model and the fold model that never saw it."""
    from dccseg.training.pipeline import coarse_stage, refine_stage, write_run_model

    cases = list(session.train_ids)
    before = case_scores(start.ref, session.cases(cases), session.ctx.device, session.progress, session.body_scale)
    after: dict[str, float] = {}
    for index, case_id in enumerate(cases):
        folder = session.run_dir / FOLDER / case_id
        session.state.progress("cross-validation", index, len(cases), f"fold {index + 1}/{len(cases)}: fine-tuning without {case_id}", force=True)
        resume = session.resume and read_status(folder) is not None
        state = RunState(folder, FOLD_STAGES, writer=session.ctx.is_writer)
        state.open(resume)
        fold = dataclasses.replace(session, run_dir=folder, state=state, resume=resume, train_ids=[i for i in cases if i != case_id], val_ids=[case_id])
        if not (folder / MODEL_FOLDER / "model.json").is_file():
            coarse = coarse_stage(fold, start, world)
            refine_stage(fold, start.coarse, None, initial_state=start.refine_state, world=world)
            write_run_model(fold, coarse, "cross-validation-fold", start=start)
        state.finish("finished", "fold finished")
        after.update(case_scores(str((folder / MODEL_FOLDER).resolve()), session.cases([case_id]), session.ctx.device, session.progress, session.body_scale))
    session.state.progress("cross-validation", len(cases), len(cases), f"{len(cases)} folds done", force=True)
    return {**compare(before, after), "method": "cross-validation"}
