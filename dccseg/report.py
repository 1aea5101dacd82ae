"""The batch report of a folder of segmented cases: ``report.md`` (one row per case, overlays, flags) and ``statistics.csv``.

Both are built from the ``<case>.stats.json`` files in the output folder, so a rerun that skips finished
cases still reports every case. Overlays are ``report/<case>.png``, written when each case is segmented.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .case_results import STATS_SUFFIX, read_statistics
from .fileutil import atomic_output
from .organs import ORGAN_BY_KEY
from .render import render_overlay
from .volume import Volume

REPORT_NAME = "report.md"
CSV_NAME = "statistics.csv"
OVERLAY_FOLDER = "report"
OVERLAY_DPI = 50
CSV_COLUMNS = (
    "case", "phase", "phase_confidence", "seconds", "organ", "present", "voxels", "volume_ml", "hu_mean", "hu_median", "hu_std",
    "hu_p5", "hu_p95", "hu_core_mean", "hu_core_median", "pieces", "touches_scan_border", "coarse_confidence", "flags",
)


def overlay_path(folder: Path, case_id: str) -> Path:
    return folder / OVERLAY_FOLDER / f"{case_id}.png"


def write_overlay(ct: Volume, labels: Volume, folder: Path, case_id: str) -> Path:
    """The case's axial/coronal/sagittal overlay for the report (small: the report shows hundreds)."""
    return render_overlay(ct, labels, overlay_path(folder, case_id), title=case_id, dpi=OVERLAY_DPI)


def collect(folder: Path) -> list[dict[str, Any]]:
    """The statistics of every case in ``folder``, by case id."""
    return [read_statistics(path) for path in sorted(folder.glob(f"*{STATS_SUFFIX}"))]


def _organ_rows(stats: dict[str, Any]):
    flags_by_organ: dict[str, list[str]] = {}
    for flag in stats.get("flags", []):
        flags_by_organ.setdefault(flag["organ"], []).append(flag["message"])
    for key, entry in stats["organs"].items():
        hu, core = entry.get("hu") or {}, entry.get("hu_core") or {}
        yield {
            "case": stats.get("case", ""), "phase": stats["phase"]["guess"], "phase_confidence": stats["phase"]["confidence"],
            "seconds": stats.get("seconds", ""), "organ": key, "present": entry["present"], "voxels": entry["voxels"],
            "volume_ml": entry["volume_ml"], "hu_mean": hu.get("mean", ""), "hu_median": hu.get("median", ""), "hu_std": hu.get("std", ""),
            "hu_p5": hu.get("p5", ""), "hu_p95": hu.get("p95", ""), "hu_core_mean": core.get("mean", ""), "hu_core_median": core.get("median", ""),
            "pieces": entry.get("pieces", 0), "touches_scan_border": entry.get("touches_scan_border", ""), "coarse_confidence": entry.get("coarse_confidence", ""),
            "flags": " | ".join(flags_by_organ.get(key, [])),
        }


def cohort_csv(cases: list[dict[str, Any]]) -> str:
    """One row per case and organ (long format), ready for pandas or a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for stats in cases:
        writer.writerows(_organ_rows(stats))
    return buffer.getvalue()


def _volumes(stats: dict[str, Any]) -> str:
    return ", ".join(f"{ORGAN_BY_KEY[key].name} {entry['volume_ml']:.0f}" for key, entry in stats["organs"].items() if entry["present"])


def report_markdown(cases: list[dict[str, Any]], title: str) -> str:
    """The review page: a summary table (one row per case), then each case's overlay and flags."""
    flagged = sum(1 for stats in cases if stats.get("flags"))
    models = sorted({str(stats.get("model")) for stats in cases if stats.get("model")})
    lines = [
        f"# Segmentation report: {title}",
        "",
        f"{len(cases)} cases, {flagged} with flags" + (f"; model {', '.join(models)}" if models else "") + ". Volumes in ml. "
        "A flag is a hint to look at the case, not a change to its result; units, definitions and reference ranges: "
        "`docs/statistics.md` of DCC Segment. Per-organ numbers for all cases: [statistics.csv](statistics.csv).",
        "",
        "| case | phase (confidence) | organs found | volumes (ml) | flags | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for stats in cases:
        case = stats.get("case", "?")
        found = sum(1 for entry in stats["organs"].values() if entry["present"])
        seconds = f"{stats['seconds']:.1f}" if isinstance(stats.get("seconds"), (int, float)) else "-"
        phase = f"{stats['phase']['guess']} ({stats['phase']['confidence']:.2f})"
        flags = len(stats.get("flags", []))
        lines.append(f"| [{case}](#{case.lower()}) | {phase} | {found}/{len(stats['organs'])} | {_volumes(stats)} | {flags} | {seconds} |")
    for stats in cases:
        case = stats.get("case", "?")
        lines += ["", f"## {case}", "", f"![{case}]({OVERLAY_FOLDER}/{case}.png)", ""]
        lines += [f"- **{flag['check']}**: {flag['message']}" for flag in stats.get("flags", [])] or ["No flags."]
    return "\n".join(lines) + "\n"


def write_batch_report(folder: Path, title: str | None = None) -> Path:
    """Write ``report.md`` and ``statistics.csv`` for every case in ``folder``; returns the report's path."""
    cases = collect(folder)
    with atomic_output(folder / CSV_NAME) as tmp:
        tmp.write_text(cohort_csv(cases), encoding="utf-8")
    with atomic_output(folder / REPORT_NAME) as tmp:
        tmp.write_text(report_markdown(cases, title or folder.name), encoding="utf-8")
    return folder / REPORT_NAME
