"""``dccseg diagnose``: does every inference stage earn its place? Per organ, the Dice of each stage.

  dccseg diagnose CT REFERENCE [--model REF] [--output table.json]
  dccseg diagnose --dataset DIR [--model REF] [--output table.json]   every labelled case
Stages: coarse (the coarse network alone, on the input grid), refined (what `dccseg segment`
writes), oracle prior (the reference resampled to the coarse grid, back on the input grid) and
oracle refined (the refine stage fed that oracle prior). The gains are refined minus its prior.
--refine-all refines every organ even where the model card skips refinement: the table to
derive a card's refine_skip from (see docs/diagnose.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterator

from ..errors import DccsegError
from ..fileutil import atomic_output, ensure_writable_dir, strip_suffix
from ..inference.body_size import OPTION_HELP as BODY_SCALE_HELP, parse_body_scale
from ..organs import parse_organ_list
from ..progress import Progress
from ..volume import Volume


def _pairs(args: argparse.Namespace) -> tuple[list[str], Iterator[tuple[Volume, Volume]]]:
    """Case ids and a generator of (CT, reference) read one case at a time."""
    from ..io import read_image, read_labelmap

    if args.dataset:
        if args.paths:
            raise DccsegError("give either CT REFERENCE or --dataset DIR, not both")
        from ..dataset import Dataset

        cases = [case for case in Dataset.load(args.dataset).cases if case.label is not None]
        if not cases:
            raise DccsegError(f"dataset {args.dataset} has no labelled cases; add labels with `dccseg dataset add`")
        return [case.id for case in cases], ((read_image(case.image), read_labelmap(case.label)) for case in cases)
    if len(args.paths) != 2:
        raise DccsegError("give CT and REFERENCE (a CT and its organ label map), or --dataset DIR")
    ct_path, reference_path = (Path(p) for p in args.paths)
    ct, reference = read_image(ct_path), read_labelmap(reference_path)
    return [strip_suffix(ct_path)], iter([(ct, reference)])


def run(args: argparse.Namespace, progress: Progress) -> int:
    if args.output is not None:
        if args.output.exists():
            raise DccsegError(f"{args.output} already exists; choose another output name or delete it")
        ensure_writable_dir(args.output.parent.resolve())
    organs = parse_organ_list(args.organs) if args.organs else None
    body_scale = parse_body_scale(args.body_scale)
    case_ids, pairs = _pairs(args)
    from ..evaluation.stages import format_stage_table, stage_table
    from ..store import load_model

    progress.update("load", 0.0, "loading the model")
    model = load_model(args.model, args.device)
    progress.update("load", 1.0, model.card.ref)
    table = stage_table(pairs, model, case_ids, organs, fast=args.fast, refine_skip=() if args.refine_all else None,
                        largest_component=not args.keep_fragments, progress=progress, body_scale=body_scale)
    for case in table["cases"]:
        if case["reference_resampled"]:
            progress.log(f"case {case['case']}: the reference is on another grid than the CT; it was resampled onto the CT (nearest neighbour)")
    progress.close()
    text = json.dumps(table, indent=2)
    if args.output is not None:
        with atomic_output(args.output) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
    print(text if args.json else f"{model.card.ref}{' (fast)' if args.fast else ''}\n\n{format_stage_table(table['summary'])}", flush=True)
    if not args.json:
        print("\n".join(_timing_line(case) for case in table["cases"]), flush=True)
    return 0


def _timing_line(case: dict) -> str:
    """Where the time of the refined stage went: coarse network, refine, fuse (and the refine share)."""
    seconds = case["seconds"]
    total = sum(seconds.values())
    share = f" (refine {100 * seconds['refine'] / total:.0f}%)" if total > 0 else ""
    return f"{case['case']}: " + ", ".join(f"{stage} {value:.1f} s" for stage, value in seconds.items()) + share


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "diagnose",
        parents=[common],
        help="stage-wise Dice: coarse alone, refined, and refine fed the reference as an oracle prior",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="dccseg diagnose CT REFERENCE | --dataset DIR [options]",
    )
    parser.add_argument("paths", nargs="*", metavar="CT REFERENCE", help="a CT (file or DICOM folder) and its organ label map")
    parser.add_argument("--dataset", help="dataset folder: diagnose every labelled case")
    parser.add_argument("--model", help="model NAME, NAME@VERSION or folder (default: newest dccseg-abdomen)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="where the model runs")
    parser.add_argument("--organs", help="comma-separated organ subset (default: the model's organs)")
    parser.add_argument("--fast", action="store_true", help="fast mode (the card's fast patches per slice)")
    parser.add_argument("--refine-all", action="store_true", help="refine every organ, also those the model card's refine_skip lists")
    parser.add_argument("--keep-fragments", action="store_true", help="keep every connected piece of an organ, as `dccseg segment --keep-fragments`")
    parser.add_argument("--body-scale", default="1", metavar="auto|F", help=BODY_SCALE_HELP)
    parser.add_argument("--output", type=Path, help="write the table (per case and summary) as JSON to this new file")
    parser.add_argument("--json", action="store_true", help="print the JSON table instead of the Markdown summary")
    parser.set_defaults(func=run)
