"""Training runs as detached processes: ``<dataset>/runs/<timestamp>/`` with ``launch.json`` and ``train.log``.

A run survives closing the module and Slicer itself: it starts in a new session (POSIX) or a new,
detached process group (Windows), with its output going to ``train.log``. ``launch.json`` records
the pid and the parameters, so that a later Slicer session finds, follows, stops or resumes it.

In Slicer the recorded pid is that of ``PythonSlicer``, a launcher that runs the real interpreter as its
child and dies at once on SIGTERM. The trainer writes its own pid into ``status.json``: liveness, Stop
and the Resume guard follow that pid while the run says it is running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from DCCSegmentLib.engine import Engine
from DCCSegmentLib.process import IS_WINDOWS, kill_tree, pid_alive, signal_group

from .run_state import ACTIVE_STATES, read_status
from .train_parameters import TrainParameters

RUNS_FOLDER = "runs"
LAUNCH_FILE = "launch.json"
LOG_FILE = "train.log"


@dataclass(frozen=True)
class RunRecord:
    """A launched training run."""

    run_dir: Path
    pid: int
    parameters: TrainParameters
    started: str
    resumed: int = 0

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_FILE

    def engine_pid(self) -> int | None:
        """The trainer's own pid from ``status.json`` while the run says it is running (None before it wrote one)."""
        status = read_status(self.run_dir)
        return status.pid if status is not None and status.state in ACTIVE_STATES and status.pid else None

    def is_alive(self) -> bool:
        """The launched process or the trainer it started still runs."""
        engine = self.engine_pid()
        return pid_alive(self.pid) or (engine is not None and pid_alive(engine))

    def save(self) -> None:
        record = {"pid": self.pid, "parameters": self.parameters.to_dict(), "started": self.started, "resumed": self.resumed}
        tmp = self.run_dir / f".{LAUNCH_FILE}.part"
        tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")
        os.replace(tmp, self.run_dir / LAUNCH_FILE)

    @classmethod
    def load(cls, run_dir: Path) -> "RunRecord":
        data = json.loads((run_dir / LAUNCH_FILE).read_text(encoding="utf-8"))
        return cls(run_dir, int(data["pid"]), TrainParameters.from_dict(data["parameters"]), str(data["started"]), int(data.get("resumed", 0)))


def absolute_path(path: str | os.PathLike) -> Path:
    """``path`` with ``~`` expanded, made absolute against the current folder (the trainer runs elsewhere)."""
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def new_run_dir(dataset: Path) -> Path:
    """A new, empty ``runs/<timestamp>`` folder in the dataset (a suffix keeps names unique)."""
    base = dataset / RUNS_FOLDER / time.strftime("%Y%m%d-%H%M%S")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    candidate.mkdir(parents=True)
    return candidate


def list_runs(dataset: Path) -> list[RunRecord]:
    """All launched runs of a dataset, newest first."""
    root = dataset / RUNS_FOLDER
    if not root.is_dir():
        return []
    runs = []
    for launch in sorted(root.glob(f"*/{LAUNCH_FILE}"), reverse=True):
        try:
            runs.append(RunRecord.load(launch.parent))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return runs


def _detached_options() -> dict:
    if IS_WINDOWS:
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        return {"creationflags": flags}
    return {"start_new_session": True}


def launch(engine: Engine, parameters: TrainParameters, run_dir: Path, resume: bool = False) -> tuple[RunRecord, subprocess.Popen]:
    """Start ``dccseg train`` detached, logging to ``run_dir/train.log``; returns the record and the process.

    Paths are made absolute first: the process starts inside ``run_dir``.
    """
    run_dir = absolute_path(run_dir)
    parameters = replace(parameters, dataset=absolute_path(parameters.dataset))
    previous = RunRecord.load(run_dir) if resume and (run_dir / LAUNCH_FILE).is_file() else None
    if previous is not None and previous.is_alive():
        raise RuntimeError(f"the run in {run_dir} is still going (pid {previous.pid}); stop it before resuming")
    command = engine.command(*parameters.arguments(run_dir, resume=resume))
    with open(run_dir / LOG_FILE, "ab") as log:
        log.write(f"\n$ {' '.join(command)}\n".encode())
        log.flush()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=engine.environment(), cwd=run_dir, close_fds=True, **_detached_options())
    record = RunRecord(run_dir, proc.pid, parameters, time.strftime("%Y-%m-%dT%H:%M:%S"), previous.resumed + 1 if previous else 0)
    record.save()
    return record, proc


def stop(record: RunRecord, grace_seconds: float = 0.0) -> None:
    """Ask the run to stop; the trainer saves and marks it "stopped".

    POSIX: SIGTERM to the trainer's own pid, so that the launcher above it lives on and exits with the trainer;
    before the trainer has written its pid, to the whole process group. With ``grace_seconds`` > 0, whatever
    still runs after that long is killed.
    """
    engine = record.engine_pid()
    if IS_WINDOWS:
        try:
            os.kill(record.pid, signal.CTRL_BREAK_EVENT)
        except OSError:
            kill_tree(record.pid)
    elif engine is not None and pid_alive(engine):
        os.kill(engine, signal.SIGTERM)
    else:
        signal_group(record.pid, signal.SIGTERM)
    if grace_seconds > 0:
        deadline = time.monotonic() + grace_seconds
        while record.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if record.is_alive():
            kill_tree(record.pid)  # POSIX: the process group, which still holds the trainer when the launcher is gone
            if IS_WINDOWS and engine is not None:
                kill_tree(engine)
