"""``dccseg dataset validate|add|import|rank|prefill``: build and check training datasets, and choose what to label next."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..dataset import Dataset
from ..dataset_validate import validate_dataset
from ..errors import DccsegError
from ..fileutil import atomic_output, ensure_writable_dir
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


def _check_ranking_output(path: Path) -> None:
    """``--json-out`` may replace an earlier ranking, never any other file."""
    if path.is_dir():
        raise DccsegError(f"{path} is a folder; give a file name for the ranking, e.g. {path / 'ranking.json'}")
    if path.exists():
        try:
            earlier = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = None
        if not isinstance(earlier, list) or not all(isinstance(e, dict) and "case" in e and "score" in e for e in earlier):
            raise DccsegError(f"{path} exists and is not an earlier ranking; choose another --json-out name or delete it")
    ensure_writable_dir(path.parent.resolve())


def _write_ranking(path: Path, records: list[dict]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")


def run_rank(args: argparse.Namespace, progress: Progress) -> int:
    from ..drafts import prefill_ranked
    from ..ranking import NoUnlabelledCases, format_ranking, rank_dataset, unlabelled_cases
    from ..store import load_model

    for value, flag in ((args.limit, "--limit"), (args.prefill, "--prefill")):
        if value is not None and value < (1 if flag == "--limit" else 0):
            raise DccsegError(f"{flag} must be {'at least 1' if flag == '--limit' else '0 or more'}, not {value}")
    if args.json_out is not None:
        _check_ranking_output(args.json_out)
    dataset = Dataset.load(args.dir)
    try:
        unlabelled_cases(dataset)
    except NoUnlabelledCases as nothing:
        if args.json_out is not None:
            _write_ranking(args.json_out, [])
        print(nothing, flush=True)
        return 0
    progress.update("load", 0.0, "loading the model")
    model = load_model(args.model, args.device)
    progress.update("load", 1.0, model.card.ref)
    ranked = rank_dataset(dataset, model, args.fast, keep_labels=args.prefill or 0, progress=progress)
    if args.prefill:
        drafted = prefill_ranked(dataset, ranked, args.prefill, model, progress)
        progress.log(f"drafts written for {', '.join(drafted) if drafted else 'no case (the top cases have theirs)'}")
    progress.close()
    shown = ranked[: args.limit] if args.limit else ranked
    if args.json_out is not None:
        _write_ranking(args.json_out, [entry.to_json() for entry in shown])
    print(f"{len(ranked)} unlabelled case(s) of {dataset.root}, most useful to label first ({model.card.ref}{', fast' if args.fast else ''}):\n", flush=True)
    print(format_ranking(shown), flush=True)
    return 0


def run_prefill(args: argparse.Namespace, progress: Progress) -> int:
    from ..drafts import prefill_cases
    from ..store import load_model

    dataset = Dataset.load(args.dir)
    for case_id in args.case_ids:
        dataset.draftable_case(case_id, args.replace)
    progress.update("load", 0.0, "loading the model")
    model = load_model(args.model, args.device)
    progress.update("load", 1.0, model.card.ref)
    cases = prefill_cases(dataset, args.case_ids, model, args.fast, args.replace, progress)
    progress.close()
    records = [case.to_record(dataset.root) for case in cases]
    if args.json:
        _print_json(records)
    else:
        for record in records:
            print(f"case '{record['id']}': draft {record['draft']['file']} by {record['draft']['model']}; correct it and add it as the label "
                  f"(DCC Train, or 'dccseg dataset add {dataset.root} --id {record['id']} --image ... --label ... --replace')")
    return 0


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model NAME, NAME@VERSION or folder (default: newest dccseg-abdomen)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="where the model runs")
    parser.add_argument("--fast", action="store_true", help="fast mode (the card's fast patches per slice)")


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

    rank = actions.add_parser("rank", parents=[common], help="rank the unlabelled cases by how unsure the model is: which to label next",
                              description="Segment every unlabelled case once and rank them, most useful to label first, with the reasons. "
                                          "score = (D + A + P) / 3 in [0, 1]: D coarse-refine disagreement, A patch vote ambiguity, "
                                          "P implausibility (see docs/training.md, 'Which case to label next').")
    rank.add_argument("dir", help="dataset folder")
    _add_model_options(rank)
    rank.add_argument("--json-out", type=Path, help="write the ranking as JSON: a list of {case, score, reasons, signals, organs, draft} (replaces only an earlier ranking)")
    rank.add_argument("--limit", type=int, help="show and write only the N most useful cases (all are measured)")
    rank.add_argument("--prefill", type=int, metavar="K", help="store the model's segmentation of the K most useful cases as drafts to correct (cases with a draft keep it)")
    rank.set_defaults(func=run_rank)

    prefill = actions.add_parser("prefill", parents=[common], help="store the model's segmentation of unlabelled cases as drafts to correct (never as labels)")
    prefill.add_argument("dir", help="dataset folder")
    prefill.add_argument("case_ids", nargs="+", metavar="CASE_ID", help="unlabelled case(s) to pre-fill")
    _add_model_options(prefill)
    prefill.add_argument("--replace", action="store_true", help="replace an existing draft (drafts are model output; labels are never touched)")
    prefill.add_argument("--json", action="store_true", help="print the updated case records as JSON")
    prefill.set_defaults(func=run_prefill)
