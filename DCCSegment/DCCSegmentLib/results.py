"""The engine's per-case statistics as the panel shows them: organ rows, plausibility flags, DICOM SEG export arguments."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

STATS_SUFFIX = ".stats.json"
DOUBLE_SUFFIXES = (".seg.nrrd", ".nii.gz")


@dataclass(frozen=True)
class OrganRow:
    """One line of the statistics table (present organs only); ``confidence`` is the coarse network's (None from ``dccseg stats``)."""

    name: str
    volume_ml: float
    hu_mean: float
    hu_core_median: float | None
    pieces: int
    confidence: float | None = None


@dataclass(frozen=True)
class Flag:
    """A plausibility hint; ``organ_name`` is the segment name to jump to (empty for case-wide hints)."""

    organ_name: str
    check: str
    message: str


@dataclass(frozen=True)
class CaseResults:
    model: str | None
    phase: str
    rows: list[OrganRow]
    flags: list[Flag]


def statistics_path(output_path: Path) -> Path:
    """Where ``dccseg segment --statistics`` puts the statistics of ``output_path``: ``<name>.stats.json`` beside it."""
    name = output_path.name
    stem = next((name[: -len(s)] for s in DOUBLE_SUFFIXES if name.lower().endswith(s)), Path(name).stem)
    return output_path.with_name(stem + STATS_SUFFIX)


def load_case_results(path: Path) -> CaseResults:
    """Read a ``.stats.json``; raises OSError or ValueError when it is missing or damaged."""
    stats = json.loads(path.read_text(encoding="utf-8"))
    organs = stats["organs"]
    rows = [
        OrganRow(entry["name"], float(entry["volume_ml"]), float(entry["hu"]["mean"]), (entry.get("hu_core") or {}).get("median"), int(entry["pieces"]),
                 entry.get("coarse_confidence"))
        for entry in organs.values()
        if entry.get("present")
    ]
    flags = [Flag(organs.get(f.get("organ") or "", {}).get("name", ""), str(f["check"]), str(f["message"])) for f in stats.get("flags", [])]
    phase = stats.get("phase", {})
    return CaseResults(stats.get("model"), f"{phase.get('guess', 'unknown')} (confidence {float(phase.get('confidence', 0.0)):.2f})", rows, flags)


def summary_text(results: CaseResults) -> str:
    """The line above the table: the phase, a warning about the whole scan first, then the organs to review first and the flag count."""
    parts = [f"Phase: {results.phase}."]
    parts += [f"Whole scan: {flag.message}." for flag in results.flags if not flag.organ_name]
    unsure = [flag.organ_name for flag in results.flags if flag.check == "confidence"]
    if unsure:
        parts.append(f"Review first, the model is unsure of: {', '.join(unsure)}.")
    count = len(results.flags)
    parts.append(f"{count} plausibility flag(s): click one to see the organ." if count else "No plausibility flags.")
    return " ".join(parts)


def dicom_instance_uids(attribute: str | None) -> list[str]:
    """The SOP instance UIDs Slicer stores on a volume loaded from the DICOM database (``DICOM.instanceUIDs``)."""
    return (attribute or "").split()


def dicom_seg_arguments(series_dir: Path, labels: Path, output: Path, model_ref: str | None) -> list[str | os.PathLike]:
    """Arguments after ``dccseg`` that write ``labels`` as a DICOM SEG of the series in ``series_dir``."""
    args: list[str | os.PathLike] = ["dicom-seg", series_dir, labels, output, "--overwrite", "--progress", "none"]
    return args + (["--model", model_ref] if model_ref else [])
