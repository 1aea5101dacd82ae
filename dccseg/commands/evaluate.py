"""``dccseg evaluate``: per-organ Dice and HD95 of predictions, per case, organ and phase.

Three forms:
  dccseg evaluate PRED REF                      label map files, or folders matched by case id
  dccseg evaluate --dataset DIR [--model REF]   segment every labelled case, then evaluate
  dccseg evaluate compare A.json B.json         paired Wilcoxon test between two --json-out results
Organs absent from both prediction and reference are left out of every mean; means over
organs use the organs present in the reference (false positives are counted separately).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import DccsegError
from ..evaluation import evaluate_dataset, evaluate_files, format_summary, paired_values, result_document, wilcoxon_compare
from ..evaluation.stats import format_comparison
from ..fileutil import atomic_output
from ..organs import PHASES, organ_from_name, parse_organ_list
from ..progress import Progress


def _emit(document: Any, args: argparse.Namespace) -> None:
    """Write ``--json-out`` atomically and print the JSON when asked (one line in JSON progress mode)."""
    text = json.dumps(document, indent=None if args.progress == "json" else 2)
    if args.json_out:
        with atomic_output(args.json_out) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text, flush=True)


def _read_result(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DccsegError(f"{path} does not exist; write results with `dccseg evaluate ... --json-out FILE`") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DccsegError(f"cannot read {path} as JSON ({exc}); give a file written by `dccseg evaluate --json-out`") from None


def run_compare(args: argparse.Namespace, paths: list[str]) -> int:
    if len(paths) != 2:
        raise DccsegError("usage: dccseg evaluate compare RESULT_A.json RESULT_B.json")
    organ = organ_from_name(args.organ).key if args.organ else None
    metric = args.metric if organ else f"{args.metric}_mean"
    cases, a, b = paired_values(_read_result(paths[0]), _read_result(paths[1]), metric, organ, sources=(paths[0], paths[1]))
    result = wilcoxon_compare(a, b)
    label = f"{organ} {args.metric}" if organ else f"per-case mean {args.metric}"
    _emit({"a": paths[0], "b": paths[1], "metric": metric, "organ": organ, "cases": cases, **result}, args)
    if not args.json:
        print(format_comparison(result, label))
    return 0


def run(args: argparse.Namespace, progress: Progress) -> int:
    paths = list(args.paths)
    if paths[:1] == ["compare"]:
        return run_compare(args, paths[1:])
    organs = parse_organ_list(args.organs) if args.organs else None
    if args.dataset:
        if paths:
            raise DccsegError("give either PRED REF or --dataset DIR, not both")
        from ..store import load_model

        progress.update("load", 0.0, "loading the model")
        model = load_model(args.model, args.device)
        progress.update("load", 1.0, model.card.ref)
        results = evaluate_dataset(args.dataset, model, organs, fast=args.fast, save_predictions=args.save_predictions, progress=progress)
        context = {"model": model.card.ref, "dataset": str(Path(args.dataset).resolve()), "fast": args.fast}
    else:
        if len(paths) != 2:
            raise DccsegError("give PRED and REF (files or folders), or --dataset DIR, or `compare A.json B.json`")
        if args.model or args.save_predictions:
            raise DccsegError("--model and --save-predictions only apply with --dataset")
        results = evaluate_files(paths[0], paths[1], organs or parse_organ_list(None), phase=args.phase, progress=progress)
        context = {"prediction": str(Path(paths[0]).resolve()), "reference": str(Path(paths[1]).resolve())}
    progress.close()
    document = result_document(results, **context)
    _emit(document, args)
    if not args.json:
        print(format_summary(document["summary"]))
    return 0


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        parents=[common],
        help="Dice/HD95 of predictions, a model on a dataset, or a Wilcoxon comparison",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="dccseg evaluate PRED REF | --dataset DIR [--model REF] | compare A.json B.json [options]",
    )
    parser.add_argument("paths", nargs="*", metavar="PRED REF", help="prediction and reference label maps (files or folders)")
    parser.add_argument("--dataset", help="dataset folder: segment every labelled case with --model and evaluate it")
    parser.add_argument("--model", help="model NAME, NAME@VERSION or folder (default: newest dccseg-abdomen)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"), help="where the model runs (with --dataset)")
    parser.add_argument("--fast", action="store_true", help="fast mode segmentation (with --dataset)")
    parser.add_argument("--save-predictions", metavar="DIR", help="also write the predicted label maps as DIR/<case>.nii.gz (with --dataset)")
    parser.add_argument("--organs", help="comma-separated organ subset (default: all, or the model's organs)")
    parser.add_argument("--phase", default="unknown", choices=PHASES, help="contrast phase of PRED/REF cases (dataset cases carry their own)")
    parser.add_argument("--metric", default="dice", choices=("dice", "hd95"), help="compared quantity (compare)")
    parser.add_argument("--organ", help="compare one organ's values instead of the per-case means (compare)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--json-out", metavar="FILE", help="also write the results as JSON to FILE")
    parser.set_defaults(func=run)
