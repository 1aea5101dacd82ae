"""What a segmented case leaves behind: its labels in the asked format, and its statistics with plausibility flags."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import DccsegError
from .fileutil import atomic_output, full_suffix, strip_suffix
from .io import write_labelmap, write_segmentation
from .io.dicom_seg import DICOM_SEG_SUFFIX, Algorithm, check_dicom_source, write_dicom_seg
from .inference.findings import CoarseFindings
from .organs import ORGAN_BY_LABEL, Organ
from .plausibility import check_case
from .progress import Progress
from .statistics import case_statistics
from .volume import Volume

STATS_SUFFIX = ".stats.json"


def statistics_path(output: Path) -> Path:
    """Where the statistics of the labels written to ``output`` go: ``<output name>.stats.json`` beside it."""
    return output.parent / f"{strip_suffix(output)}{STATS_SUFFIX}"


def check_sources_for_format(sources: Iterable[Path], outputs: Iterable[Path]) -> None:
    """Refuse DICOM SEG output for inputs that are not DICOM series, before any heavy work."""
    for source, output in zip(sources, outputs):
        if full_suffix(output) == DICOM_SEG_SUFFIX:
            check_dicom_source(source)


def write_labels(labels: Volume, output: Path, source: Path, organs: Sequence[Organ], model_name: str, model_version: str) -> None:
    """Write ``labels`` as the output's suffix asks: Slicer ``.seg.nrrd``, DICOM SEG ``.dcm`` or a label map."""
    suffix = full_suffix(output)
    if suffix == ".seg.nrrd":
        write_segmentation(labels, output, organs)
    elif suffix == DICOM_SEG_SUFFIX:
        write_dicom_seg(labels, source, output, organs, Algorithm(model_name, model_version))
    else:
        write_labelmap(labels, output)


def analyse_case(ct: Volume, labels: Volume, organs: Sequence[Organ], findings: CoarseFindings | None = None, **case: Any) -> dict[str, Any]:
    """Organ statistics of the case (:mod:`dccseg.statistics`) with its plausibility ``flags`` added.

    ``findings`` (what the coarse network said while segmenting, ``dccseg.inference.findings``): each organ present gets
    its ``coarse_confidence``, which is checked, and the case-wide flags (a mirrored scan) come first.
    """
    stats = case_statistics(ct, labels, organs, **case)
    confidence = {} if findings is None else findings.confidence
    for label, value in confidence.items():
        key = ORGAN_BY_LABEL[label].key
        if stats["organs"].get(key, {}).get("present"):
            stats["organs"][key]["coarse_confidence"] = round(value, 3)
    stats["flags"] = ([] if findings is None else findings.flags) + check_case(stats)
    return stats


def write_statistics(stats: dict[str, Any], path: str | os.PathLike) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(stats, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def read_statistics(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DccsegError(f"cannot read the statistics {path} ({exc}); delete it and segment that case again") from exc


def log_flags(stats: dict[str, Any], progress: Progress) -> None:
    """One log line per flag (JSON mode: with the flag as a ``flag`` field), or that there are none."""
    flags = stats.get("flags", [])
    for flag in flags:
        progress.log(f"check: {flag['message']}", flag=flag)
    if not flags:
        progress.log("plausibility: no flags")
