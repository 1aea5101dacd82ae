"""Follow a training run from its files: ``status.json`` (state) and ``metrics.jsonl`` (one line per epoch).

Both are read while the engine writes them: a half-written status is skipped (the previous one is
kept), and a partial last metrics line waits for the next poll.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
ACTIVE_STATES = ("running",)
FINAL_STATES = ("finished", "failed", "stopped")


@dataclass(frozen=True)
class RunStatus:
    """The fields of ``status.json`` the module shows."""

    state: str
    stage: str
    epoch: int
    epochs: int
    fraction: float
    message: str
    pid: int | None
    updated: str
    best: dict[str, Any] | None
    model_ref: str | None
    error: str | None

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def line(self) -> str:
        """One line for the status label."""
        text = f"{self.state}: {self.stage} epoch {self.epoch}/{self.epochs}"
        if self.best and isinstance(self.best.get("value"), (int, float)):
            text += f", best {self.best.get('metric', 'val')} {self.best['value']:.3f} (epoch {self.best.get('epoch')})"
        if self.model_ref:
            text += f", model {self.model_ref}"
        if self.error:
            text += f" - {self.error}"
        elif self.message:
            text += f" - {self.message}"
        return text


def read_status(run_dir: Path) -> RunStatus | None:
    """The run's status, or None while there is none or it is being rewritten."""
    try:
        data = json.loads((run_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("state"), str):
        return None
    return RunStatus(
        state=data["state"],
        stage=str(data.get("stage") or ""),
        epoch=_int(data.get("epoch")),
        epochs=_int(data.get("epochs")),
        fraction=float(data["fraction"]) if isinstance(data.get("fraction"), (int, float)) else 0.0,
        message=str(data.get("message") or ""),
        pid=data["pid"] if isinstance(data.get("pid"), int) else None,
        updated=str(data.get("updated") or ""),
        best=data["best"] if isinstance(data.get("best"), dict) else None,
        model_ref=data["model_ref"] if isinstance(data.get("model_ref"), str) else None,
        error=data["error"] if isinstance(data.get("error"), str) else None,
    )


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


@dataclass
class MetricsReader:
    """Reads ``metrics.jsonl`` incrementally: each ``read_new()`` returns only records completed since the last."""

    run_dir: Path
    records: list[dict[str, Any]] = field(default_factory=list)
    _offset: int = 0

    def read_new(self) -> list[dict[str, Any]]:
        path = self.run_dir / METRICS_FILE
        try:
            with open(path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except OSError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self._offset += end + 1
        new = []
        for raw in data[:end].split(b"\n"):
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                new.append(record)
        self.records += new
        return new


def series(records: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """(running index, value) points of a numeric metric across all stages, for plotting."""
    return [(i + 1, float(r[key])) for i, r in enumerate(records) if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)]
