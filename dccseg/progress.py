"""Progress reporting: human progress bars, or JSON lines for the Slicer modules.

JSON mode writes one object per line to stdout, flushed at once::

    {"stage": "coarse", "fraction": 0.5, "message": "sliding window 4/8"}

``fraction`` is in [0, 1] within the stage, or null for a plain log line. Errors are
reported as ``{"stage": "error", "fraction": null, "message": ...}`` before the process exits.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

MODES = ("human", "json", "none")


class Progress:
    """Reports the progress of named stages in one of ``MODES``."""

    def __init__(self, mode: str = "human", stream: TextIO | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        self._stream = stream
        self._stage: str | None = None
        self._bar: tqdm | None = None
        self._stage_start = time.perf_counter()

    def update(self, stage: str, fraction: float, message: str = "", **extra: Any) -> None:
        """Report that ``stage`` is ``fraction`` done."""
        fraction = min(max(float(fraction), 0.0), 1.0)
        if stage != self._stage:
            self._switch(stage)
        if self.mode == "json":
            self._emit({"stage": stage, "fraction": round(fraction, 4), "message": message, **extra})
        elif self.mode == "human" and self._bar is not None:
            self._bar.n = round(fraction * 1000)
            if message:
                self._bar.set_postfix_str(message, refresh=False)
            self._bar.refresh()

    def log(self, message: str, **extra: Any) -> None:
        """A plain message, outside any progress bar."""
        if self.mode == "json":
            self._emit({"stage": self._stage or "info", "fraction": None, "message": message, **extra})
        elif self.mode == "human":
            tqdm.write(message, file=self._stream or sys.stderr)

    def error(self, message: str) -> None:
        """Report a fatal error (the caller exits afterwards)."""
        self.close()
        if self.mode == "json":
            self._emit({"stage": "error", "fraction": None, "message": message})

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _switch(self, stage: str) -> None:
        self.close()
        self._stage = stage
        self._stage_start = time.perf_counter()
        if self.mode == "human":
            self._bar = tqdm(total=1000, desc=stage, file=self._stream or sys.stderr, bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}", leave=True)

    def _emit(self, record: dict[str, Any]) -> None:
        stream = self._stream or sys.stdout
        stream.write(json.dumps(record) + "\n")
        stream.flush()


QUIET = Progress("none")
