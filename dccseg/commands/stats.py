"""``dccseg stats CT LABELS``: organ volumes, HU statistics, contrast phase and plausibility flags of any segmentation.

The same numbers ``dccseg segment --statistics`` writes; units and definitions in docs/statistics.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..case_results import analyse_case, write_statistics
from ..errors import DccsegError
from ..fileutil import strip_suffix
from ..io import check_label_ids, read_image, read_labelmap
from ..organs import parse_organ_list
from ..progress import Progress


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("stats", parents=[common], description=__doc__,
                                   help="organ volumes, HU statistics and plausibility flags of a CT and its organ labels")
    parser.add_argument("image", type=Path, help="CT image (NIfTI, NRRD, MHA or DICOM folder)")
    parser.add_argument("labels", type=Path, help="organ label map (ids 1..13) or Slicer .seg.nrrd on the CT's grid")
    parser.add_argument("--output", type=Path, default=None, help="also write the statistics to this .json file")
    parser.add_argument("--organs", default=None, help="comma-separated organ subset (default: all 13)")
    parser.add_argument("--json", action="store_true", help="print the statistics as one JSON document instead of a table")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, progress: Progress) -> int:
    if args.output is not None and args.output.exists() and not args.overwrite:
        raise DccsegError(f"{args.output} already exists; choose another name or pass --overwrite")
    organs = parse_organ_list(args.organs)
    progress.update("stats", 0.0, "reading")
    ct = read_image(args.image)
    labels = read_labelmap(args.labels, reference=ct)
    check_label_ids(labels, str(args.labels))
    stats = analyse_case(ct, labels, organs, case=strip_suffix(args.labels), image_file=str(args.image), labels_file=str(args.labels),
                         model=None, seconds=None)
    if args.output is not None:
        write_statistics(stats, args.output)
    progress.update("stats", 1.0, "done")
    progress.close()
    print(json.dumps(stats, ensure_ascii=False) if args.json else table(stats), flush=True)
    return 0


def table(stats: dict) -> str:
    """A plain-text summary: one line per organ, then the phase and the flags."""
    lines = [f"{'organ':<24} {'volume ml':>10} {'HU mean':>8} {'HU core median':>15} {'pieces':>6}"]
    for entry in stats["organs"].values():
        if not entry["present"]:
            lines.append(f"{entry['name']:<24} {'-':>10}")
            continue
        core = entry["hu_core"]["median"] if entry["hu_core"] else float("nan")
        lines.append(f"{entry['name']:<24} {entry['volume_ml']:>10.1f} {entry['hu']['mean']:>8.1f} {core:>15.1f} {entry['pieces']:>6d}")
    phase = stats["phase"]
    lines.append(f"phase: {phase['guess']} (confidence {phase['confidence']:.2f})")
    lines += [f"check: {flag['message']}" for flag in stats["flags"]] or ["plausibility: no flags"]
    return "\n".join(lines)
