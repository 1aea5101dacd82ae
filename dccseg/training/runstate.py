"""The run folder of a training command: ``status.json``, ``metrics.jsonl`` and checkpoints.

The Slicer training module polls these files, so their format is a contract:

* ``status.json`` = {"state": "running"|"finished"|"failed"|"stopped", "stage", "epoch", "epochs",
  "fraction" (of the whole command, 0..1), "message", "pid", "updated" (ISO time),
  "best": {"metric": "val_dice_mean", "value", "epoch"} or null, "model_ref": "name@version" or null,
  "error": str or null}. Rewritten atomically, so a reader never sees half a file.
* ``metrics.jsonl``: one object per completed epoch {"stage", "epoch", "train_loss", "val_dice_mean",
  "val_dice": {organ_key: dice}, "lr", "seconds"}. Epochs count from 1.
* ``<stage>/last.pt`` and ``<stage>/best.pt``: our own checkpoints, read back with
  ``torch.load(weights_only=True)`` only.

Every checkpoint also holds the metrics record of its epoch: on resume, lines after the checkpoint's
epoch (an epoch that was killed after logging) are dropped and a missing line is restored, so the
log always matches the weights.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch

from dccseg.errors import DccsegError
from dccseg.fileutil import atomic_output, ensure_writable_dir

STATES = ("running", "finished", "failed", "stopped")
BEST_METRIC = "val_dice_mean"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="seconds")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All records of ``metrics.jsonl`` (an empty list if there is none)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_status(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / STATUS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


class StopFlag:
    """Turns SIGTERM/SIGINT into a flag that the training loop checks between batches."""

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name


class RunState:
    """Writes the run folder's status, metrics and checkpoints; only the writer process (rank 0) writes.

    ``stage_weights`` maps each stage of the command to its share of the total work, so that
    ``fraction`` in status.json is the progress of the whole command (e.g. ``train all``).
    """

    def __init__(self, run_dir: Path, stage_weights: dict[str, float], writer: bool = True, min_interval_s: float = 1.0) -> None:
        self.run_dir = Path(run_dir)
        self.writer = writer
        total = sum(stage_weights.values()) or 1.0
        self._offsets: dict[str, tuple[float, float]] = {}
        start = 0.0
        for name, weight in stage_weights.items():
            self._offsets[name] = (start / total, weight / total)
            start += weight
        self._min_interval = min_interval_s
        self._last_write = 0.0
        self.status: dict[str, Any] = {
            "state": "running", "stage": next(iter(stage_weights), ""), "epoch": 0, "epochs": 0, "fraction": 0.0,
            "message": "", "pid": os.getpid(), "updated": now_iso(), "best": None, "model_ref": None, "error": None,
        }

    # -- opening -----------------------------------------------------------------------------
    def open(self, resume: bool) -> None:
        """Start a new run in an empty folder, or (``resume``) continue the run that is there."""
        previous = read_status(self.run_dir)
        if self.writer:
            ensure_writable_dir(self.run_dir)
        if previous is not None and not resume and self.writer:  # other ranks may already see rank 0's new status
            raise DccsegError(f"{self.run_dir} already holds a training run; pass --resume to continue it or choose a new --output folder")
        if previous is not None:
            self.status["best"] = previous.get("best")
            self.status["model_ref"] = previous.get("model_ref")
        self.set(state="running", message="resuming" if previous else "starting", error=None, pid=os.getpid())

    def stage_dir(self, stage: str) -> Path:
        path = self.run_dir / stage
        if self.writer:
            ensure_writable_dir(path)
        return path

    # -- status ------------------------------------------------------------------------------
    def set(self, force: bool = True, **fields: Any) -> None:
        """Update status fields and write status.json (at most every ``min_interval_s`` unless ``force``)."""
        unknown = set(fields) - set(self.status)
        if unknown:
            raise ValueError(f"unknown status fields {sorted(unknown)}")
        self.status.update(fields)
        if not self.writer:
            return
        now = time.monotonic()
        if force or now - self._last_write >= self._min_interval:
            self.status["updated"] = now_iso()
            write_json(self.run_dir / STATUS_FILE, self.status)
            self._last_write = now

    def progress(self, stage: str, epoch_float: float, epochs: int, message: str = "", force: bool = False) -> float:
        """Record progress within ``stage`` (``epoch_float`` completed epochs of ``epochs``); return the overall fraction."""
        offset, share = self._offsets.get(stage, (0.0, 1.0))
        within = min(max(epoch_float / max(epochs, 1), 0.0), 1.0)
        fraction = round(offset + share * within, 4)
        self.set(force=force, stage=stage, epoch=int(epoch_float), epochs=epochs, fraction=fraction, message=message)
        return fraction

    def finish(self, state: str, message: str = "", error: str | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        fields: dict[str, Any] = {"state": state, "message": message, "error": error}
        if state == "finished":
            fields["fraction"] = 1.0
        self.set(**fields)

    # -- metrics -----------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        if not self.writer:
            return
        with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record) + "\n")
            stream.flush()
            os.fsync(stream.fileno())

    def reconcile_metrics(self, stage: str, epoch: int, record: dict[str, Any] | None) -> None:
        """Make ``metrics.jsonl`` end at ``epoch`` for ``stage`` (the checkpoint we resume from)."""
        if not self.writer:
            return
        records = read_metrics(self.run_dir)
        kept = [r for r in records if not (r.get("stage") == stage and int(r.get("epoch", 0)) > epoch)]
        if record is not None and not any(r.get("stage") == stage and r.get("epoch") == epoch for r in kept):
            kept.append(record)
        if kept != records:
            with atomic_output(self.run_dir / METRICS_FILE) as tmp:
                tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    def update_best(self, stage: str, epoch: int, value: float | None) -> bool:
        """Keep the best validation Dice of ``stage``; True when ``value`` is a new best."""
        best = self.status.get("best")
        if value is None:
            return False
        if best is None or best.get("stage") != stage or value > float(best["value"]):
            self.status["best"] = {"metric": BEST_METRIC, "value": float(value), "epoch": int(epoch), "stage": stage}
            return True
        return False

    # -- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, stage: str, name: str, payload: dict[str, Any]) -> None:
        if not self.writer:
            return
        with atomic_output(self.stage_dir(stage) / name) as tmp:
            torch.save(payload, tmp)

    def load_checkpoint(self, stage: str, name: str = "last.pt") -> dict[str, Any] | None:
        path = self.run_dir / stage / name
        if not path.exists():
            return None
        return torch.load(path, map_location="cpu", weights_only=True)
