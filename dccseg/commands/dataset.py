"""``dccseg dataset validate|add|import``: build and check training datasets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..dataset import Dataset
from ..dataset_validate import validate_dataset
from ..importers import FORMATS, import_dataset, parse_label_map
from ..organs import PHASES
from ..progress import Progress


def _print_json(record: object) -> None:
    """One JSON line on stdout (the Slicer modules read the last line)."""
    print(json.dumps(record), flush=True)


def run_validate(args: argparse.Namespace, progress: Progress) -> int:
    report = validate_dataset(args.dir, progress)
    progress.close()
    if args.json:
        _print_json(report.to_json())
    else:
        for line in report.problems:
            print(f"problem: {line}", file=sys.stderr)
        for line in report.warnings:
            print(f"warning: {line}", file=sys.stderr)
        status = "OK" if report.ok else f"{len(report.problems)} problem(s)"
        print(f"dataset {args.dir}: {status}")
        for line in report.summary_lines():
            print(f"  {line}")
    return 0 if report.ok else 1


def run_add(args: argparse.Namespace, progress: Progress) -> int:
    progress.update("add", 0.0, "reading the image and label")
    dataset = Dataset.open_or_new(args.dir)
    case = dataset.add_case(
        args.image, args.label, args.phase, case_id=args.id, source=args.source or "", notes=args.notes or "",
        reviewer=args.reviewer or "", replace=args.replace, log=progress.log, subject=args.subject or "", series=args.series,
    )
    progress.update("add", 1.0, f"case {case.id} stored")
    progress.close()
    record = case.to_record(dataset.root)
    if args.json:
        _print_json(record)
    else:
        print(f"added case '{case.id}' ({case.phase}) to {dataset.root}")
    return 0


def run_import(args: argparse.Namespace, progress: Progress) -> int:
    cases = import_dataset(
        args.format, args.src, args.dir, phase=args.phase, label_map=parse_label_map(args.label_map), replace=args.replace, progress=progress
    )
    progress.close()
    root = Path(args.dir).resolve()
    if args.json:
        _print_json({"imported": [c.to_record(root) for c in cases]})
    else:
        print(f"imported {len(cases)} {args.format} cases into {root}")
    return 0


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("dataset", help="create, import and validate training datasets", description=__doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    validate = actions.add_parser("validate", parents=[common], help="check a dataset and report every problem")
    validate.add_argument("dir", help="dataset folder (holds dataset.json)")
    validate.add_argument("--json", action="store_true", help="print the report as one JSON object")
    validate.set_defaults(func=run_validate)

    add = actions.add_parser("add", parents=[common], help="copy an image and its label into a dataset (created if missing)")
    add.add_argument("dir", help="dataset folder")
    add.add_argument("--image", required=True, help="CT image file or DICOM series folder")
    add.add_argument("--label", help="label map (NIfTI/NRRD/MHA or Slicer .seg.nrrd) on the image's grid; omit for an unlabelled case")
    add.add_argument("--series", help="DICOM folder holding several series: the series to read, by its number in the listing or its UID (default: the axial CT series with the most slices)")
    add.add_argument("--phase", required=True, choices=PHASES, help="contrast phase")
    add.add_argument("--id", help="case id (default: the image file name)")
    add.add_argument("--reviewer", help="who checked the label")
    add.add_argument("--subject", help="patient or body the scan shows (phases of one patient share it; evaluation reports per subject)")
    add.add_argument("--notes", help="free text")
    add.add_argument("--source", help="where the case comes from (default: the image path)")
    add.add_argument("--replace", action="store_true", help="replace an existing case; the old one is kept under replaced/<id>/")
    add.add_argument("--json", action="store_true", help="print the stored case record as JSON")
    add.set_defaults(func=run_add)

    importer = actions.add_parser("import", parents=[common], help="convert nnU-Net, Decathlon, BTCV or TotalSegmentator data")
    importer.add_argument("format", choices=FORMATS, help="source layout")
    importer.add_argument("src", help="source folder (never modified)")
    importer.add_argument("dir", help="dataset folder: new, empty, or an existing dataset")
    importer.add_argument("--phase", choices=PHASES, help="contrast phase of all cases (default: portal-venous for btcv, else unknown)")
    importer.add_argument("--label-map", help="'srcid:ourid,...' for nnunet/msd label ids (ourid 1-13 or organ name, 0 = background; unlisted ids become background)")
    importer.add_argument("--replace", action="store_true", help="replace cases whose ids already exist (old versions kept under replaced/)")
    importer.add_argument("--json", action="store_true", help="print the imported case records as JSON")
    importer.set_defaults(func=run_import)
