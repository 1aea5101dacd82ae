"""Training datasets through the engine: case table, adding a case (never overwriting), phase guess."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from DCCSegmentLib.engine import CallResult, Engine, EngineCall, EngineError

DATASET_FILE = "dataset.json"
_EXISTS = re.compile(r"already exists", re.I)


class CaseExists(Exception):
    """The case id is taken; ask the user before passing ``replace=True``."""

    def __init__(self, case_id: str) -> None:
        super().__init__(f"case '{case_id}' already exists")
        self.case_id = case_id


@dataclass(frozen=True)
class CaseRow:
    """One line of the case table."""

    id: str
    phase: str
    reviewer: str
    added: str
    status: str


@dataclass(frozen=True)
class NewCase:
    """A case to add: files written by the module, and what the user chose."""

    dataset: Path
    case_id: str
    image: Path
    label: Path
    phase: str
    reviewer: str = ""
    notes: str = ""
    source: str = ""


@dataclass(frozen=True)
class PhaseGuess:
    phase: str
    confidence: float | None
    evidence: str


def suggest_case_id(name: str) -> str:
    """A valid case id from a volume name (letters, digits, '.', '_', '-', starting with a letter or digit)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._-")
    return cleaned or "case"


def read_json_file(path: Path, advice: str) -> Any:
    """The JSON document in ``path``; a ValueError that ends with ``advice`` when it is not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); {advice}") from exc


def read_case_records(dataset: Path) -> list[dict[str, Any]]:
    """The case records of ``dataset.json`` (empty when the folder is not a dataset yet)."""
    path = dataset / DATASET_FILE
    if not path.is_file():
        return []
    document = read_json_file(path, "fix it or choose another dataset folder")
    cases = document.get("cases", []) if isinstance(document, dict) else []
    return [c for c in cases if isinstance(c, dict)]


def case_ids(dataset: Path) -> set[str]:
    return {str(c.get("id")) for c in read_case_records(dataset)}


def case_rows(dataset: Path, report: dict[str, Any] | None, checked_ids: set[str] | None = None) -> list[CaseRow]:
    """The case table: records from ``dataset.json``, status from a ``dataset validate --json`` report.

    ``checked_ids``: the cases the report covered (cases added since then show "not checked").
    """
    problems = list(report.get("problems", [])) if report else []
    warnings = list(report.get("warnings", [])) if report else []
    rows = []
    for record in read_case_records(dataset):
        case_id = str(record.get("id", ""))
        prefix = f"case '{case_id}'"
        own_problems = [p[len(prefix):].lstrip(": ") for p in problems if p.startswith(prefix)]
        own_warnings = [w[len(prefix):].lstrip(": ") for w in warnings if w.startswith(prefix)]
        if report is None or (checked_ids is not None and case_id not in checked_ids):
            status = "not checked"
        elif own_problems:
            status = "; ".join(own_problems)
        elif own_warnings:
            status = "ok (" + "; ".join(own_warnings) + ")"
        else:
            status = "ok" if record.get("label") else "ok (no label)"
        rows.append(CaseRow(case_id, str(record.get("phase", "")), str(record.get("reviewer", "")), str(record.get("added", "")), status))
    return rows


VALIDATE_TIMEOUT_S = 1800.0
ADD_TIMEOUT_S = 600.0
GUESS_TIMEOUT_S = 300.0


def validate_call(engine: Engine, dataset: Path) -> EngineCall:
    """The background ``dataset validate`` (it reads every image: minutes for a large dataset)."""
    return EngineCall(engine, engine.command("dataset", "validate", dataset, "--json"), timeout=VALIDATE_TIMEOUT_S, ok_codes=(0, 1))


def validate(engine: Engine, dataset: Path) -> dict[str, Any]:
    """The engine's validation report (``ok``, ``problems``, ``warnings``, ``summary``); blocking."""
    return validate_call(engine, dataset).start().wait().json()


def add_case_call(engine: Engine, case: NewCase, replace: bool = False) -> EngineCall:
    """The background ``dccseg dataset add``; raises CaseExists at once when the id is taken and not ``replace``."""
    if not replace and case.case_id in case_ids(case.dataset):
        raise CaseExists(case.case_id)
    args: list[Any] = ["dataset", "add", case.dataset, "--image", case.image, "--label", case.label, "--phase", case.phase, "--id", case.case_id]
    for flag, value in (("--reviewer", case.reviewer), ("--notes", case.notes), ("--source", case.source)):
        if value:
            args += [flag, value]
    if replace:
        args.append("--replace")
    return EngineCall(engine, engine.command(*args, "--json"), timeout=ADD_TIMEOUT_S)


def added_case(result: CallResult, case: NewCase, replace: bool = False) -> dict[str, Any]:
    """The record ``dataset add`` printed; CaseExists when the engine refused an existing id, else its EngineError."""
    try:
        return result.json()
    except EngineError as exc:
        if not replace and _EXISTS.search(exc.message):
            raise CaseExists(case.case_id) from exc
        raise


def add_case(engine: Engine, case: NewCase, replace: bool = False) -> dict[str, Any]:
    """Add ``case`` through ``dccseg dataset add``; raise CaseExists instead of overwriting. Blocking."""
    return added_case(add_case_call(engine, case, replace).start().wait(), case, replace)


def guess_phase_call(engine: Engine, image: Path, label: Path | None) -> EngineCall:
    """The background ``dccseg phase guess``; ``phase_guess(result)`` reads its answer."""
    args: list[Any] = ["phase", "guess", image]
    if label is not None:
        args += ["--label", label]
    return EngineCall(engine, engine.command(*args, "--json"), timeout=GUESS_TIMEOUT_S)


def phase_guess(result: CallResult) -> PhaseGuess | None:
    """The engine's contrast-phase guess for the default of the phase selector (None if it cannot tell)."""
    try:
        answer = result.json()
    except EngineError:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("phase"), str):
        return None
    confidence = answer.get("confidence")
    return PhaseGuess(answer["phase"], float(confidence) if isinstance(confidence, (int, float)) else None, _evidence_text(answer.get("evidence")))


def guess_phase(engine: Engine, image: Path, label: Path | None) -> PhaseGuess | None:
    """Blocking ``phase_guess`` (scripts and tests)."""
    return phase_guess(guess_phase_call(engine, image, label).start().wait())


def _evidence_text(evidence: Any) -> str:
    """The guess's evidence as short text (the engine gives a dict such as mean HU per organ)."""
    if isinstance(evidence, str):
        return evidence
    if isinstance(evidence, dict):
        return ", ".join(f"{k} {_short(v)}" for k, v in evidence.items())
    return ""


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k} {_short(v)}" for k, v in value.items()) + ")"
    return str(value)
