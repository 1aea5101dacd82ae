"""Run an engine command as a background process whose output is read without blocking.

The widget polls ``read_lines()`` and ``poll()`` from a ``qt.QTimer``; nothing here waits on the
process, so Slicer's GUI never freezes. The process starts in its own process group (POSIX session /
Windows process group) so that ``cancel()`` ends the whole tree, including workers the engine spawns.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from .progress import LineSplitter

IS_WINDOWS = sys.platform == "win32"


class ProcessRunner(Protocol):
    """What the widgets need from a background process."""

    @property
    def pid(self) -> int | None: ...

    def start(self, command: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None) -> None: ...

    def read_lines(self) -> list[str]: ...

    def poll(self) -> int | None: ...

    def cancel(self, grace_seconds: float = 3.0) -> None: ...


def new_group_options() -> dict:
    """Popen keyword arguments that put the child into a new process group of its own."""
    if IS_WINDOWS:
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {"start_new_session": True}


def signal_group(pid: int, sig: int) -> bool:
    """Send ``sig`` to the process group led by ``pid`` (POSIX); False when the group is already gone."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _no_window() -> dict:
    """Popen keyword arguments that keep Windows from flashing a console window for a helper command."""
    return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)} if IS_WINDOWS else {}


def kill_tree(pid: int) -> None:
    """Forcefully end ``pid`` and every process it started."""
    if IS_WINDOWS:
        subprocess.run(["taskkill", "/PID", str(pid), "/T", "/F"], capture_output=True, check=False, **_no_window())
    else:
        signal_group(pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (a zombie counts as ended)."""
    if IS_WINDOWS:
        out = subprocess.run(["tasklist", "/FI", f"PID eq {pid}", "/NH"], capture_output=True, text=True, encoding="utf-8", check=False, **_no_window()).stdout
        return str(pid) in out
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class SubprocessRunner:
    """``ProcessRunner`` on ``subprocess.Popen``; stdout and stderr are merged into one line stream."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader: threading.Thread | None = None
        self.cancelled = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, command: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None) -> None:
        if self._proc is not None and self._proc.poll() is None:
            raise RuntimeError("a process is already running")
        self.cancelled = False
        self._lines = queue.Queue()
        self._proc = subprocess.Popen(
            [str(part) for part in command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            **new_group_options(),
        )
        self._reader = threading.Thread(target=self._pump, args=(self._proc, self._lines), daemon=True)
        self._reader.start()

    @staticmethod
    def _pump(proc: subprocess.Popen, lines: queue.Queue[str]) -> None:
        splitter = LineSplitter()
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        while chunk := os.read(fd, 65536):
            for line in splitter.feed(chunk):
                lines.put(line)
        for line in splitter.flush():
            lines.put(line)
        proc.stdout.close()  # type: ignore[union-attr]

    def read_lines(self) -> list[str]:
        """All complete lines printed since the last call."""
        out: list[str] = []
        while True:
            try:
                out.append(self._lines.get_nowait())
            except queue.Empty:
                return out

    def poll(self) -> int | None:
        """The exit code once the process has ended and all its output has been read, else None."""
        if self._proc is None or self._proc.poll() is None:
            return None
        if self._reader is not None and self._reader.is_alive():
            self._reader.join(timeout=0.05)
            if self._reader.is_alive():
                return None
        return self._proc.returncode

    def cancel(self, grace_seconds: float = 3.0) -> None:
        """Ask the whole process tree to stop, then kill what is left after ``grace_seconds``."""
        if self._proc is None:
            return
        self.cancelled = True
        pid = self._proc.pid
        if IS_WINDOWS:
            kill_tree(pid)
        else:
            signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_seconds
            while self._proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            kill_tree(pid)
        self._proc.wait()
