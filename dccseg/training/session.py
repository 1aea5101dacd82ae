"""One training command's session: device, run folder, stop handling, dataset split, failure reporting.

``run.json`` in the run folder records what the command was asked for (dataset, preset,
overrides), so ``--resume`` rebuilds the very same configuration.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from dccseg.dataset import Case, Dataset
from dccseg.errors import DccsegError
from dccseg.progress import QUIET, Progress
from dccseg.training import distributed
from dccseg.training.cases import labelled_cases, load_or_make_split, save_split
from dccseg.training.configs import TrainingConfig, preset, with_overrides
from dccseg.training.distributed import DeviceContext
from dccseg.training.runstate import RunState, StopFlag, write_json

RUN_FILE = "run.json"


@dataclass
class Session:
    run_dir: Path
    dataset: Dataset
    config: TrainingConfig
    state: RunState
    ctx: DeviceContext
    stop: StopFlag
    progress: Progress
    resume: bool
    train_ids: list[str]
    val_ids: list[str]
    request: dict[str, Any] = field(default_factory=dict)

    @property
    def body_scale(self) -> float | str:
        """The size of the dataset's bodies relative to an adult (``train all --body-scale``): 1, a number, or "auto" (measured per case)."""
        return self.request.get("body_scale", 1.0)

    def cases(self, ids: list[str]) -> list[Case]:
        by_id = {c.id: c for c in self.dataset.cases}
        return [by_id[i] for i in ids]

    def log(self, message: str) -> None:
        if self.ctx.is_writer:
            self.progress.log(message)


def resolve_request(run_dir: Path, request: dict[str, Any], resume: bool) -> dict[str, Any]:
    """The command's request; on resume the recorded one, with a new epoch count applied on top."""
    path = run_dir / RUN_FILE
    if not resume or not path.is_file():
        return request
    recorded = json.loads(path.read_text(encoding="utf-8"))
    for key, value in request.get("overrides", {}).items():
        if key.endswith("__epochs") and value is not None:
            recorded.setdefault("overrides", {})[key] = value
    return recorded


def build_config(request: dict[str, Any]) -> TrainingConfig:
    """The preset, made a fine-tune of the ``from`` model when there is one, with the command's overrides on top."""
    config = preset(request.get("preset", "default"))
    if request.get("from"):
        from dccseg.training.finetune import finetune_config, starting_entry

        config = finetune_config(config, starting_entry(request["from"]).card)
    return with_overrides(config, **request.get("overrides", {}))


@contextlib.contextmanager
def open_session(
    dataset_dir: str | Path,
    run_dir: str | Path,
    request: dict[str, Any],
    stage_weights: dict[str, float],
    device: str = "auto",
    resume: bool = False,
    progress: Progress = QUIET,
    split_from: Path | None = None,
) -> Iterator[Session]:
    """Open the run folder and yield the session; a failure is written to status.json, then re-raised."""
    run_dir = Path(run_dir)
    request = resolve_request(run_dir, request, resume)
    config = build_config(request)
    ctx = distributed.setup(device)
    state = RunState(run_dir, stage_weights, writer=ctx.is_writer)
    stop = StopFlag().install()
    opened = False
    try:
        dataset = Dataset.load(dataset_dir)
        cases = labelled_cases(dataset)
        state.open(resume)
        opened = True
        train_ids, val_ids = load_or_make_split(run_dir, cases, config.val_fraction, config.seed, reuse_from=split_from, held_out=request.get("held_out"))
        if ctx.is_writer:
            write_json(run_dir / RUN_FILE, {**request, "dataset": str(dataset.root)})
            write_json(run_dir / "config.json", config.to_dict())
            save_split(run_dir, train_ids, val_ids)
        if not train_ids:
            raise DccsegError(f"dataset {dataset.root} has no training cases left after the validation split; add cases")
        yield Session(run_dir, dataset, config, state, ctx, stop, progress, resume, train_ids, val_ids, request)
    except BaseException as exc:
        if opened and state.status["state"] == "running":
            message = str(exc) or type(exc).__name__
            state.finish("stopped" if isinstance(exc, KeyboardInterrupt) else "failed", message=message, error=message)
        raise
    finally:
        stop.restore()
        distributed.teardown(ctx)
