"""How to call the engine: ``<python> -m dccseg ...`` in a separate process, never inside Slicer's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .process import kill_tree, new_group_options
from .progress import parse_progress_line

PASSED_ENVIRONMENT = ("DCCSEG_MODEL_STORE",)


class EngineError(RuntimeError):
    """The engine refused or failed; ``message`` is its one-line explanation."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass(frozen=True)
class Engine:
    """The interpreter that runs the engine, and the environment it gets."""

    python: str = sys.executable
    env: Mapping[str, str] | None = field(default=None)

    def command(self, *args: str | os.PathLike) -> list[str]:
        """The full command line of ``dccseg ARGS``."""
        return [self.python, "-m", "dccseg", *(str(a) for a in args)]

    def python_command(self, code: str, *args: str | os.PathLike) -> list[str]:
        """A command that runs a short Python snippet with the engine's interpreter."""
        return [self.python, "-c", code, *(str(a) for a in args)]

    def environment(self) -> dict[str, str] | None:
        """The child environment: ``env`` plus the engine's own variables from this process."""
        if self.env is None:
            return None
        merged = dict(self.env)
        for name in PASSED_ENVIRONMENT:
            if name in os.environ:
                merged[name] = os.environ[name]
        return merged

    def run(self, command: Sequence[str], timeout: float = 300.0, ok_codes: tuple[int, ...] = (0,)) -> "CallResult":
        """Run a short command to completion (scripts, self-tests); raise EngineError on other exit codes or a timeout.

        The widgets never call this: they start an ``EngineCall`` and poll it from a timer.
        """
        result = EngineCall(self, command, timeout, ok_codes).start().wait()
        if result.error is not None:
            raise result.error
        return result

    def run_json(self, *args: str | os.PathLike, timeout: float = 300.0, ok_codes: tuple[int, ...] = (0,)) -> Any:
        """Run ``dccseg ARGS`` (which must include ``--json``) and return the parsed JSON it prints."""
        return self.run(self.command(*args), timeout=timeout, ok_codes=ok_codes).json()


@dataclass(frozen=True)
class CallResult:
    """How a short engine command ended: its output, and the EngineError when it failed or timed out."""

    returncode: int
    stdout: str
    stderr: str
    error: EngineError | None = None

    def json(self) -> Any:
        """The JSON the command printed; raises the call's EngineError first."""
        if self.error is not None:
            raise self.error
        return parse_json_output(self.stdout)


class EngineCall:
    """A short engine command (model list, validation, add, phase guess) in the background.

    ``start()`` returns at once; ``poll()`` (from a timer) returns None while it runs, then its CallResult.
    Output goes to anonymous temporary files, so no pipe can fill up and no reader thread is needed. Past
    ``timeout`` the whole process tree is killed (through Slicer's launcher the engine is a grandchild).
    """

    def __init__(self, engine: Engine, command: Sequence[str | os.PathLike], timeout: float = 300.0, ok_codes: tuple[int, ...] = (0,)) -> None:
        self.engine = engine
        self.command = [str(part) for part in command]
        self.timeout = timeout
        self.ok_codes = ok_codes
        self.result: CallResult | None = None
        self._proc: subprocess.Popen | None = None
        self._deadline = 0.0

    def start(self) -> "EngineCall":
        self._out, self._err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                      env=self.engine.environment(), **new_group_options())
        self._deadline = time.monotonic() + self.timeout
        return self

    def poll(self) -> CallResult | None:
        if self.result is not None or self._proc is None:
            return self.result
        code = self._proc.poll()
        if code is None and time.monotonic() < self._deadline:
            return None
        if code is None:
            self._stop()
            what = " ".join(self.command[3:5]) if self.command[1:3] == ["-m", "dccseg"] else self.command[0]
            return self._finish(-1, EngineError(f"the engine did not answer within {self.timeout:.0f} s ({what}); try again, or see the log", -1))
        error = None if code in self.ok_codes else EngineError(error_message(self._read(self._out), self._read(self._err)), code)
        return self._finish(code, error)

    def wait(self, interval: float = 0.05) -> CallResult:
        """Block until the call ends (scripts and tests only)."""
        while (result := self.poll()) is None:
            time.sleep(interval)
        return result

    def cancel(self) -> None:
        """End the command and its whole process tree; its result says it was cancelled."""
        if self.result is None and self._proc is not None:
            self._stop()
            self._finish(-1, EngineError("cancelled", -1))

    def _stop(self) -> None:
        kill_tree(self._proc.pid)  # type: ignore[union-attr]
        self._proc.wait()  # type: ignore[union-attr]

    def _finish(self, code: int, error: EngineError | None) -> CallResult:
        stdout, stderr = self._read(self._out), self._read(self._err)
        self._out.close()
        self._err.close()
        self.result = CallResult(code, stdout, stderr, error)
        return self.result

    @staticmethod
    def _read(handle) -> str:
        handle.seek(0)
        return handle.read().decode("utf-8", errors="replace")


class CallPoller:
    """Polls running EngineCalls from one timer (anything with ``start()``/``stop()``) and hands each result on."""

    def __init__(self, timer) -> None:
        self.timer = timer
        self.pending: list[tuple[EngineCall, Callable[[CallResult], None]]] = []

    def add(self, call: EngineCall, on_done: Callable[[CallResult], None]) -> EngineCall:
        """Start ``call`` and call ``on_done(result)`` once it has ended."""
        self.pending.append((call.start(), on_done))
        self.timer.start()
        return call

    def step(self) -> None:
        for entry in list(self.pending):
            result = entry[0].poll()
            if result is not None:
                self.pending.remove(entry)
                entry[1](result)
        if not self.pending:
            self.timer.stop()

    def cancel_all(self) -> None:
        for call, _ in self.pending:
            call.cancel()
        self.pending.clear()
        self.timer.stop()


def parse_json_output(stdout: str) -> Any:
    """The JSON document a ``--json`` command printed (whole output, or else its last JSON line)."""
    text = stdout.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    raise EngineError(f"the engine printed no JSON: {text[-200:]!r}", 0)


def error_message(stdout: str, stderr: str) -> str:
    """The engine's one-line error: its ``{"stage": "error"}`` line, else its ``dccseg: error:`` line."""
    for line in reversed(stdout.splitlines()):
        event = parse_progress_line(line)
        if event is not None and event.is_error and event.message:
            return event.message
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("dccseg: error:"):
            return line[len("dccseg: error:"):].strip()
    return lines[-1] if lines else "the engine stopped without saying why"
