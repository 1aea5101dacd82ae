"""``dccseg segment INPUT OUTPUT``: segment the 13 abdominal organs of one CT or of a folder/dataset of CTs.

Stages reported on the progress stream, in order: load, coarse, refine, fuse, write; their times
are printed at the end of each case (JSON mode: a "timing" log line with a ``timings`` field).
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import case_results
from ..errors import DccsegError
from ..inference import segment_volume
from ..inference.batch import OUTPUT_SUFFIXES, Job, Rank, is_batch, plan_jobs
from ..inference.body_size import OPTION_HELP as BODY_SCALE_HELP, parse_body_scale
from ..inference.findings import CoarseFindings
from ..io import read_image
from ..organs import parse_organ_list
from ..progress import Progress
from ..report import write_batch_report, write_overlay
from ..store import load_model


def register(subparsers, common) -> None:
    parser = subparsers.add_parser("segment", parents=[common], help="segment abdominal organs in a CT (file, DICOM folder, folder of CTs or dataset)", description=__doc__)
    parser.add_argument("input", type=Path, help="CT file (.nii.gz, .nrrd, .mha, ...), DICOM series folder, folder of CT files, or dataset folder")
    parser.add_argument("output", type=Path, help="output file (.seg.nrrd, or a label map .nii.gz/.nrrd/.mha with ids 1..13); a folder when INPUT holds several CTs")
    parser.add_argument("--model", default=None, help="model reference: name, name@version or a model folder (default: the newest dccseg-abdomen)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="where to run (auto: the GPU when there is one)")
    parser.add_argument("--organs", default=None, help="comma-separated organ subset, e.g. liver,spleen or 6,1 (default: all)")
    parser.add_argument("--keep-fragments", action="store_true", help="keep every connected piece of an organ (default: only the largest, for all but the pancreas and the portal/splenic vein)")
    parser.add_argument("--fast", action="store_true", help="refine one patch per organ and slice instead of the model's K: the refine stage, most of "
                        "the run time, gets about 4x faster (bundled CT on 2 CPU cores: 9.5 -> 5.5 s in all), at the cost of fewer votes per voxel, "
                        "so rougher borders (0.002 Dice on validation anatomies); `dccseg diagnose --fast` measures it on your scans (docs/diagnose.md). Organs in the card's refine_skip "
                        "are never refined")
    parser.add_argument("--body-scale", default="1", metavar="auto|F", help=BODY_SCALE_HELP)
    parser.add_argument("--format", default=".seg.nrrd", choices=OUTPUT_SUFFIXES + ("dicom-seg",), help="output format for folder/dataset input (default .seg.nrrd; dicom-seg = .dcm)")
    parser.add_argument("--statistics", action="store_true", help="also write <output>.stats.json: organ volumes, HU, pieces, contrast phase, plausibility flags (folders and datasets always get them, with statistics.csv and report.md)")
    parser.add_argument("--series", default=None, help="DICOM folder holding several series: the series to read, by its number in the listing or its UID (default: the axial CT series with the most slices)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files (otherwise an existing output is an error, or skipped in a batch)")
    parser.set_defaults(func=run)


def run(args, progress: Progress) -> int:
    organs = parse_organ_list(args.organs)
    body_scale = parse_body_scale(args.body_scale)
    rank = Rank.from_env()
    batch = is_batch(args.input)
    jobs = rank.share(plan_jobs(args.input, args.output, ".dcm" if args.format == "dicom-seg" else args.format, args.overwrite))
    case_results.check_sources_for_format([job.source for job in jobs], [job.output for job in jobs])
    if not jobs:
        progress.log(f"nothing to do: every output in {args.output} exists (pass --overwrite to redo them)")
        return 0
    start = time.perf_counter()
    progress.update("load", 0.0, "loading the model")
    model = load_model(args.model, rank.device(args.device))
    model_seconds = time.perf_counter() - start
    progress.log(f"model {model.card.ref} on {model.device} ({model_seconds:.1f} s)")
    failures = []
    for index, job in enumerate(jobs):
        if batch:
            progress.log(f"case {index + 1}/{len(jobs)}: {job.case_id}")
        try:
            segment_one(job, model, organs, args.fast, progress, extra_load=model_seconds if index == 0 else 0.0, largest_component=not args.keep_fragments,
                        statistics=args.statistics or batch, overlay_folder=args.output if batch else None, series=args.series, body_scale=body_scale)
        except DccsegError as exc:
            if not batch:
                raise
            failures.append(f"{job.case_id}: {exc}")
            progress.log(f"case {job.case_id} failed: {exc}")
    if batch:
        progress.log(f"report: {write_batch_report(args.output)}")
    if failures:
        raise DccsegError(f"{len(failures)} of {len(jobs)} cases failed ({failures[0]}{' ...' if len(failures) > 1 else ''}); fix or remove them and rerun (finished cases are kept)")
    return 0


def segment_one(job: Job, model, organs, fast: bool, progress: Progress, extra_load: float = 0.0, largest_component: bool = True,
                statistics: bool = False, overlay_folder=None, series: str | None = None, body_scale: float | str = 1.0) -> dict[str, float]:
    """Read, segment and write one case (with its statistics, and its report overlay in a batch); logs and returns the seconds of each stage."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    progress.update("load", 0.5, f"reading {job.source.name}")
    ct = read_image(job.source, log=progress.log, series=series, compact=True)
    timings["load"] = extra_load + time.perf_counter() - start
    progress.update("load", 1.0, f"{'x'.join(str(s) for s in ct.size_xyz)} voxels")
    findings = CoarseFindings()
    labels = segment_volume(ct, model, organs=organs, fast=fast, progress=progress, timings=timings, largest_component=largest_component, body_scale=body_scale,
                            findings=findings)
    start = time.perf_counter()
    progress.update("write", 0.0, f"writing {job.output.name}")
    case_results.write_labels(labels, job.output, job.source, organs, model.card.name, model.card.version)
    timings["write"] = time.perf_counter() - start
    progress.update("write", 1.0, str(job.output))
    timings = {stage: round(timings[stage], 2) for stage in ("load", "coarse", "refine", "fuse", "write")}
    text = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in timings.items())
    progress.log(f"timing: {text} (total {sum(timings.values()):.1f} s)", timings=timings)
    if statistics:
        stats = case_results.analyse_case(ct, labels, organs, case=job.case_id, image_file=str(job.source), labels_file=str(job.output),
                                          model=model.card.ref, seconds=round(sum(timings.values()), 2), findings=findings)
        case_results.write_statistics(stats, case_results.statistics_path(job.output))
        case_results.log_flags(stats, progress)
    elif findings.flags:
        case_results.log_flags({"flags": findings.flags}, progress)
    if overlay_folder is not None:
        write_overlay(ct, labels, overlay_folder, job.case_id)
    return timings
