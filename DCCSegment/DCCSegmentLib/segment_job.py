"""One Segment run: start ``dccseg segment``, fold its output into progress, explain how it ended."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .engine import Engine
from .failures import FailureAdvice, explain_failure, launcher_reported_kill
from .parameters import SegmentParameters
from .process import ProcessRunner, SubprocessRunner
from .progress import StagedProgress, parse_progress_line

LOG_TAIL_LINES = 200


@dataclass
class JobUpdate:
    """What changed since the last ``step()``: new log lines, the bar, and the outcome once finished."""

    log: list[str] = field(default_factory=list)
    fraction: float = 0.0
    stage: str = ""
    message: str = ""
    finished: bool = False
    succeeded: bool = False
    advice: FailureAdvice | None = None


class SegmentJob:
    """Drives one ``dccseg segment`` process; call ``step()`` from a timer until ``finished``."""

    def __init__(self, engine: Engine, parameters: SegmentParameters, runner: ProcessRunner | None = None) -> None:
        self.engine = engine
        self.parameters = parameters
        self.runner: ProcessRunner = runner if runner is not None else SubprocessRunner()
        self.progress = StagedProgress()
        self.error_message = ""
        self.log_tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.timings: dict[str, float] = {}
        self._cancelled = False
        self._finished = False

    def start(self) -> None:
        self.runner.start(self.engine.command(*self.parameters.arguments()), env=self.engine.environment())

    def cancel(self) -> None:
        self._cancelled = True
        self.runner.cancel()

    def step(self) -> JobUpdate:
        update = JobUpdate()
        for line in self.runner.read_lines():
            self._fold(line, update)
        update.fraction = self.progress.value
        update.stage = self.progress.stage
        exit_code = None if self._finished else self.runner.poll()
        if exit_code is None:
            return update
        self._finished = True
        update.finished = True
        update.succeeded = exit_code == 0 and not self._cancelled and self.parameters.output_path.is_file()
        if update.succeeded:
            update.fraction = 1.0
        else:
            message = self.error_message or self._last_error_line()
            if exit_code == 0 and not self._cancelled:
                message = message or f"the engine ended without writing {self.parameters.output_path}"
            killed = launcher_reported_kill(self.log_tail)
            update.advice = explain_failure("" if killed else message, exit_code, cancelled=self._cancelled, killed=killed)
        return update

    def _fold(self, line: str, update: JobUpdate) -> None:
        self.log_tail.append(line)
        event = parse_progress_line(line)
        if event is None:
            repeats_error = self.error_message and line.startswith("dccseg: error:")
            if line.strip() and not repeats_error:
                update.log.append(line)
            return
        if event.is_error:
            self.error_message = event.message
            update.log.append(f"ERROR: {event.message}")
            return
        if isinstance(event.extra.get("timings"), dict):
            self.timings = {str(k): float(v) for k, v in event.extra["timings"].items() if isinstance(v, (int, float))}
        self.progress.update(event)
        if event.message:
            update.message = event.message
            update.log.append(f"[{event.stage}] {event.message}" if event.fraction is None else f"[{event.stage} {event.fraction:.0%}] {event.message}")

    def _last_error_line(self) -> str:
        for line in reversed(self.log_tail):
            if line.startswith("dccseg: error:"):
                return line[len("dccseg: error:"):].strip()
        for line in reversed(self.log_tail):
            if "Error" in line or "error" in line:
                return line.strip()
        return ""
