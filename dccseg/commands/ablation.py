"""``dccseg ablation run|report``: does DCC pretraining beat no pretraining, SimCLR and AGCL on multi-phase CT?

``run`` builds the multi-phase benchmark (synthetic CT of the training bodies to train on, of the
unseen test bodies and the real scans given with ``--real-test`` to test on), trains every arm with
the same data, budget and seeds (pretrain -> finetune refine), evaluates each on the test cases and
writes the report (``report.md`` + PNG plots) into the output folder; rerunning it continues an
interrupted run. ``report`` re-renders the report of a finished run, optionally into another folder.
"""

from __future__ import annotations

import argparse
import shlex

import torch

from ..ablation import build_plan, run_ablation, write_report
from ..ablation.plan import CONFIGS, OPTIONAL_ARMS, PHASE_CODES, real_scan
from ..progress import Progress
from ..training.distributed import DEVICE_CHOICES


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("ablation", help="pretraining ablation: none vs SimCLR vs AGCL vs DCC", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    run = actions.add_parser("run", parents=[common], help="run an ablation configuration and write its report")
    run.add_argument("--config", choices=CONFIGS, default="small", help="tiny (tests, seconds), small (2-core CPU, <= 30 min idle), large (GPU)")
    run.add_argument("--output", "-o", required=True, metavar="DIR", help="ablation folder (data, runs, results.json, report.md)")
    run.add_argument("--extra-arms", nargs="*", default=[], choices=sorted(OPTIONAL_ARMS), help="optional arms besides none/simclr/agcl/dcc")
    run.add_argument("--real-test", nargs=3, action="append", default=[], metavar=("CT", "LABELS", "PHASE"),
                     help=f"add a real scan of an unseen patient to the test set: CT file or DICOM folder, its organ label map, its phase "
                          f"({', '.join(PHASE_CODES)}); repeatable")
    run.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="auto picks CUDA when present")
    run.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    run.add_argument("--report-dir", metavar="DIR", help="write report.md and the plots here instead of the ablation folder")
    run.set_defaults(func=run_command)

    report = actions.add_parser("report", parents=[common], help="write report.md and the plots of a finished ablation")
    report.add_argument("folder", metavar="DIR", help="ablation folder (with results.json)")
    report.add_argument("--out", metavar="DIR", help="output folder for report.md and the plots (default: DIR)")
    report.set_defaults(func=report_command)


def run_command(args: argparse.Namespace, progress: Progress) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = build_plan(args.config, tuple(args.extra_arms), tuple(real_scan(*scan) for scan in args.real_test))
    command = f"dccseg ablation run --config {args.config} --output {args.output}"
    if args.extra_arms:
        command += " --extra-arms " + " ".join(args.extra_arms)
    for scan in args.real_test:
        command += " --real-test " + shlex.join(scan)
    if args.threads:
        command += f" --threads {args.threads}"
    run_ablation(plan, args.output, args.device, progress, command)
    path = write_report(args.output, args.report_dir)
    progress.log(f"report written to {path}")
    return 0


def report_command(args: argparse.Namespace, progress: Progress) -> int:
    path = write_report(args.folder, args.out)
    progress.log(f"report written to {path}")
    return 0
