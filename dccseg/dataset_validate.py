"""``dccseg dataset validate``: check everything a training run relies on and report every problem."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import DATASET_FILE, LABEL_TABLE, CASE_ID_PATTERN, read_dataset_json
from .errors import DccsegError
from .io import check_label_ids, read_image, read_labelmap
from .organs import ORGAN_BY_LABEL, PHASES
from .progress import QUIET, Progress


@dataclass
class ValidationReport:
    """Problems (the dataset cannot be trained on as is), warnings, and a summary."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    phases: Counter = field(default_factory=Counter)
    organ_cases: Counter = field(default_factory=Counter)
    cases: int = 0
    labelled: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "warnings": self.warnings,
            "summary": {
                "cases": self.cases,
                "labelled": self.labelled,
                "phases": {p: self.phases[p] for p in PHASES if self.phases[p]},
                "organs": {ORGAN_BY_LABEL[i].key: self.organ_cases[i] for i in sorted(self.organ_cases)},
            },
        }

    def summary_lines(self) -> list[str]:
        phases = ", ".join(f"{p} {n}" for p, n in self.to_json()["summary"]["phases"].items()) or "none"
        organs = ", ".join(f"{k} {n}" for k, n in self.to_json()["summary"]["organs"].items()) or "none"
        return [f"{self.cases} cases ({self.labelled} labelled); phases: {phases}", f"cases per organ: {organs}"]


def _check_file(root: Path, relative: Any, what: str, prefix: str, report: ValidationReport) -> Path | None:
    if not isinstance(relative, str) or not relative:
        report.problems.append(f"{prefix}: '{what}' must be a relative path")
        return None
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        report.problems.append(f"{prefix}: {what} '{relative}' lies outside the dataset folder; copy it in with 'dccseg dataset add'")
        return None
    if not path.exists():
        report.problems.append(f"{prefix}: {what} file '{relative}' is missing; restore it or remove the case from {DATASET_FILE}")
        return None
    return path


def _check_case(root: Path, index: int, record: Any, duplicates: set[Any], report: ValidationReport) -> None:
    if not isinstance(record, dict):
        report.problems.append(f"case {index + 1}: record is not an object; fix {DATASET_FILE}")
        return
    case_id = record.get("id")
    prefix = f"case '{case_id}'" if case_id else f"case {index + 1}"
    if not isinstance(case_id, str) or not CASE_ID_PATTERN.match(case_id):
        report.problems.append(f"{prefix}: missing or invalid id; use letters, digits, '.', '_' and '-'")
    elif case_id in duplicates:
        report.problems.append(f"{prefix}: duplicate case id; give each case its own id")
    phase = record.get("phase")
    if phase not in PHASES:
        report.problems.append(f"{prefix}: unknown phase {phase!r}; use one of: {', '.join(PHASES)}")
    else:
        report.phases[phase] += 1
    report.cases += 1
    image_path = _check_file(root, record.get("image"), "image", prefix, report)
    label_rel = record.get("label")
    draft = record.get("draft")
    if isinstance(draft, dict) and isinstance(draft.get("file"), str) and not (root / draft["file"]).is_file():
        report.warnings.append(f"{prefix}: its draft '{draft['file']}' is missing; make a new one with 'dccseg dataset prefill {root} {case_id}'")
    if label_rel is None:
        report.warnings.append(f"{prefix}: no label; the case is skipped for training")
        label_path = None
    else:
        label_path = _check_file(root, label_rel, "label", prefix, report)
    image = None
    if image_path is not None:
        try:
            image = read_image(image_path)
        except DccsegError as exc:
            report.problems.append(f"{prefix}: {exc}")
    if label_path is None:
        return
    try:
        labels = read_labelmap(label_path, reference=image)
        check_label_ids(labels, f"label '{label_rel}'")
    except DccsegError as exc:
        report.problems.append(f"{prefix}: {exc}")
        return
    report.labelled += 1
    for value in np.unique(labels.array):
        if value:
            report.organ_cases[int(value)] += 1


def validate_dataset(root: str | os.PathLike, progress: Progress = QUIET) -> ValidationReport:
    """Check ``dataset.json`` and every case; collect all problems instead of stopping at the first."""
    root = Path(root).resolve()
    report = ValidationReport()
    try:
        data = read_dataset_json(root)
    except DccsegError as exc:
        report.problems.append(str(exc))
        return report
    labels = data.get("labels")
    if labels is not None and (not isinstance(labels, dict) or {str(k): v for k, v in labels.items()} != LABEL_TABLE):
        report.problems.append(f"{DATASET_FILE}: 'labels' differs from the organ table {LABEL_TABLE}; relabel the cases to our ids and fix the table")
    records = data["cases"]
    counts = Counter(r.get("id") for r in records if isinstance(r, dict))
    duplicates = {case_id for case_id, n in counts.items() if n > 1}
    for index, record in enumerate(records):
        progress.update("validate", index / max(len(records), 1), f"case {index + 1}/{len(records)}")
        _check_case(root, index, record, duplicates, report)
    progress.update("validate", 1.0, "done")
    if not records:
        report.problems.append(f"{root} has no cases; add some with 'dccseg dataset add' or 'dccseg dataset import'")
    return report
