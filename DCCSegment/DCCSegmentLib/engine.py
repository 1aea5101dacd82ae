"""How to call the engine: ``<python> -m dccseg ...`` in a separate process, never inside Slicer's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .process import new_group_options
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

    def run(self, command: Sequence[str], timeout: float = 300.0, ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        """Run a short command to completion (model listing, validation); raise EngineError on other exit codes."""
        proc = subprocess.run(
            list(command),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True, encoding="utf-8",
            env=self.environment(),
            timeout=timeout,
            check=False,
            **new_group_options(),
        )
        if proc.returncode not in ok_codes:
            raise EngineError(error_message(proc.stdout, proc.stderr), proc.returncode)
        return proc

    def run_json(self, *args: str | os.PathLike, timeout: float = 300.0, ok_codes: tuple[int, ...] = (0,)) -> Any:
        """Run ``dccseg ARGS`` (which must include ``--json``) and return the parsed JSON it prints."""
        proc = self.run(self.command(*args), timeout=timeout, ok_codes=ok_codes)
        return parse_json_output(proc.stdout)


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
