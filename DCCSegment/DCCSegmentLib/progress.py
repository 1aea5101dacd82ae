"""Parse the engine's ``--progress json`` lines and turn them into one overall fraction."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ERROR_STAGE = "error"
SEGMENT_STAGES: tuple[tuple[str, float], ...] = (
    ("load", 0.10),
    ("coarse", 0.25),
    ("refine", 0.50),
    ("fuse", 0.10),
    ("write", 0.05),
)


@dataclass(frozen=True)
class ProgressEvent:
    """One JSON line of the engine: a stage update (fraction set), a log line (fraction None) or an error."""

    stage: str
    fraction: float | None
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.stage == ERROR_STAGE


def parse_progress_line(line: str) -> ProgressEvent | None:
    """Return the event a line holds, or None for anything that is not one (plain text, broken JSON)."""
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("stage"), str):
        return None
    fraction = record.get("fraction")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        fraction = None
    else:
        fraction = min(max(float(fraction), 0.0), 1.0)
    message = record.get("message")
    extra = {k: v for k, v in record.items() if k not in ("stage", "fraction", "message")}
    return ProgressEvent(record["stage"], fraction, message if isinstance(message, str) else "", extra)


class LineSplitter:
    """Cut a byte stream into complete text lines, keeping a partial last line until it is finished."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        return [_decode(line) for line in lines]

    def flush(self) -> list[str]:
        """The unfinished last line, if any (call at end of stream)."""
        rest, self._pending = self._pending, b""
        return [_decode(rest)] if rest.strip() else []


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r")


class StagedProgress:
    """Map per-stage fractions onto one 0..1 bar using fixed stage weights; never moves backwards."""

    def __init__(self, stages: tuple[tuple[str, float], ...] = SEGMENT_STAGES) -> None:
        total = sum(weight for _, weight in stages)
        self._start: dict[str, float] = {}
        self._weight: dict[str, float] = {}
        acc = 0.0
        for name, weight in stages:
            self._start[name] = acc / total
            self._weight[name] = weight / total
            acc += weight
        self.value = 0.0
        self.stage = ""

    def update(self, event: ProgressEvent) -> float:
        """Fold an event in and return the overall fraction."""
        if event.stage in self._start:
            self.stage = event.stage
            within = event.fraction if event.fraction is not None else 0.0
            self.value = max(self.value, self._start[event.stage] + self._weight[event.stage] * within)
        return self.value
