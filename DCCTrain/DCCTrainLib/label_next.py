"""Which case to label next: ``dccseg dataset rank`` and ``dataset prefill`` run in the background, their answers read.

The ranking is written to ``<dataset>/ranking.json`` (the engine replaces only an earlier ranking), so the list
survives closing Slicer. Cases labelled since then drop out of the list; drafts are read from ``dataset.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from DCCSegmentLib.engine import CallResult, Engine, EngineCall

from .dataset_client import read_case_records, read_json_file

RANKING_FILE = "ranking.json"
RANK_TIMEOUT_S = 6 * 3600.0
PREFILL_TIMEOUT_S = 1800.0
PREFILL_TOP = 3
"""Ranking stores drafts for this many top cases (their segmentations are at hand), so they load at once."""
REASONS_SHOWN = 2


@dataclass(frozen=True)
class NextCase:
    """One unlabelled case in ranking order."""

    case: str
    score: float | None
    reasons: tuple[str, ...]
    image: Path
    phase: str
    draft: Path | None

    def score_text(self) -> str:
        return "-" if self.score is None else f"{self.score:.2f}"

    def reason_text(self, shown: int = REASONS_SHOWN) -> str:
        text = "; ".join(self.reasons[:shown])
        more = len(self.reasons) - shown
        return (text + (f" (+{more} more)" if more > 0 else "")) or "no warning signs"


def ranking_path(dataset: Path) -> Path:
    return dataset / RANKING_FILE


def rank_call(engine: Engine, dataset: Path, model: str = "", device: str = "auto", prefill: int = PREFILL_TOP) -> EngineCall:
    """The background ``dccseg dataset rank`` (one segmentation per unlabelled case: minutes each on a CPU)."""
    args: list[Any] = ["dataset", "rank", dataset, "--json-out", ranking_path(dataset), "--device", device, "--prefill", str(prefill)]
    if model:
        args += ["--model", model]
    return EngineCall(engine, engine.command(*args, "--progress", "none"), timeout=RANK_TIMEOUT_S)


def prefill_call(engine: Engine, dataset: Path, case_id: str, model: str = "", device: str = "auto") -> EngineCall:
    """The background ``dccseg dataset prefill`` of one case; ``drafted_file(result, dataset)`` reads where the draft went."""
    args: list[Any] = ["dataset", "prefill", dataset, case_id, "--device", device]
    if model:
        args += ["--model", model]
    return EngineCall(engine, engine.command(*args, "--json"), timeout=PREFILL_TIMEOUT_S)


def drafted_file(result: CallResult, dataset: Path) -> Path:
    """The draft the prefill call wrote (its EngineError when it failed)."""
    records = result.json()
    record = records[0] if isinstance(records, list) and records else {}
    draft = record.get("draft") if isinstance(record, dict) else None
    if not isinstance(draft, dict) or not isinstance(draft.get("file"), str):
        raise ValueError("the engine reported no draft; run 'dccseg dataset prefill' by hand to see why")
    return dataset / draft["file"]


def next_cases(dataset: Path) -> list[NextCase]:
    """The last ranking of ``dataset`` in its order, without the cases labelled (or removed) since; empty when none was made.

    Image, phase and draft come from ``dataset.json`` as it is now.
    """
    path = ranking_path(dataset)
    if not path.is_file():
        return []
    ranking = read_json_file(path, "rank the cases again")
    records = {str(r.get("id")): r for r in read_case_records(dataset)}
    cases = []
    for entry in ranking if isinstance(ranking, list) else []:
        record = records.get(str(entry.get("case"))) if isinstance(entry, dict) else None
        if record is None or record.get("label") or not isinstance(record.get("image"), str):
            continue
        draft = record.get("draft")
        draft_file = dataset / draft["file"] if isinstance(draft, dict) and isinstance(draft.get("file"), str) else None
        score = entry.get("score")
        reasons = entry.get("reasons") if isinstance(entry.get("reasons"), list) else []
        cases.append(NextCase(str(entry["case"]), float(score) if isinstance(score, (int, float)) else None, tuple(str(r) for r in reasons),
                              dataset / record["image"], str(record.get("phase", "unknown")), draft_file))
    return cases
