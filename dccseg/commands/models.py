"""``dccseg models list|show|import|export|remove``: manage the versioned model store."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import DccsegError
from ..progress import Progress
from ..store import ModelEntry, ModelStore


def _print_json(record: object) -> None:
    print(json.dumps(record, indent=2), flush=True)


def _dice_text(entry: ModelEntry) -> str:
    value = entry.card.mean_dice
    return "-" if value is None else f"{value:.3f}"


def format_table(entries: list[ModelEntry]) -> str:
    """A plain-text table: name, version, created, mean Dice, source."""
    header = ("NAME", "VERSION", "CREATED", "MEAN DICE", "SOURCE")
    rows = [(e.name, e.version, e.card.created[:10], _dice_text(e), ("built-in" if e.builtin else "user") + (", held back" if e.card.held_back else "")) for e in entries]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])


def _scales_text(pre: dict) -> str:
    """How the coarse network reads the volume when the card names several grids (``coarse_scales``)."""
    scales = pre.get("coarse_scales") or [1.0]
    return "" if len(scales) == 1 else f", read at scales {', '.join(f'{s:g}' for s in scales)} (probabilities averaged)"


def describe(entry: ModelEntry) -> str:
    """A readable summary of one model card."""
    card = entry.card
    pre = card.preprocessing
    lines = [
        f"{entry.ref} ({'built-in' if entry.builtin else 'user'} store)",
        f"  path:          {entry.path}",
        f"  created:       {card.created} (dccseg {card.dccseg_version})",
        f"  description:   {card.description or '-'}",
        f"  organs:        {', '.join(o['key'] for o in card.organs)}",
        f"  coarse:        {json.dumps(card.architecture['coarse'])} at {pre['coarse_spacing']} mm{_scales_text(pre)}",
        f"  refine:        {json.dumps(card.architecture['refine'])} at {pre['refine_spacing']} mm, "
        f"{pre['patches_per_slice']} patches/slice ({pre['fast_patches_per_slice']} fast)",
        f"  training data: {json.dumps(card.training.get('data'))} ({card.training.get('data_hash')})",
        f"  pretraining:   {card.training.get('pretraining') or 'none'}",
        f"  mean Dice:     {_dice_text(entry)}",
    ]
    finetune = card.metrics.get("finetune")
    if finetune:
        lines.append(f"  fine-tuned:    from {finetune['from']}, {finetune['verdict']}: {finetune['summary']}")
    if card.held_back:
        lines.append(f"  held back:     {card.held_back} (never the default; use {entry.ref} explicitly)")
    per_organ = card.metrics.get("dice") or {}
    lines += [f"    {key:<26}{value:.3f}" for key, value in per_organ.items() if isinstance(value, (int, float))]
    if card.speed:
        lines.append(f"  speed:         {json.dumps(card.speed)}")
    lines.append(f"  refine skip:   {', '.join(card.refine_skip) or 'none (every organ is refined)'}")
    if card.stage_metrics:
        from ..evaluation.stages import format_stage_table

        for name, summary in card.stage_metrics.items():
            lines += ["", f"  stage-wise Dice, {name}:", *(f"    {line}" for line in format_stage_table(summary).splitlines())]
    return "\n".join(lines)


def run_list(args: argparse.Namespace, progress: Progress) -> int:
    store = ModelStore()
    entries, problems = store.scan()
    for line in problems:
        print(f"dccseg: warning: skipping damaged model {line}", file=sys.stderr)
    if args.json:
        _print_json([e.to_json() for e in entries])
    elif entries:
        print(format_table(entries))
    else:
        print(f"no models installed (user store: {store.root}); import one with `dccseg models import` or train one with `dccseg train all`")
    return 0


def run_show(args: argparse.Namespace, progress: Progress) -> int:
    entry = ModelStore().resolve(args.ref)
    if args.json:
        _print_json(entry.to_json())
    else:
        print(describe(entry))
    return 0


def run_import(args: argparse.Namespace, progress: Progress) -> int:
    progress.update("import", 0.0, f"checking {args.path}")
    entry = ModelStore().import_(args.path)
    progress.update("import", 1.0, entry.ref)
    progress.close()
    print(f"imported {entry.ref} into {entry.path}")
    return 0


def run_export(args: argparse.Namespace, progress: Progress) -> int:
    path = ModelStore().export(args.ref, args.path)
    print(f"exported {args.ref} to {path}")
    return 0


def run_remove(args: argparse.Namespace, progress: Progress) -> int:
    store = ModelStore()
    entry = store.resolve(args.ref)
    if not args.yes:
        if not sys.stdin.isatty():
            raise DccsegError(f"removing {entry.ref} deletes {entry.path}; pass --yes to confirm")
        if input(f"delete {entry.ref} ({entry.path})? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return 1
    store.remove(entry.ref)
    print(f"removed {entry.ref}")
    return 0


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, inspect, import, export and remove stored models",
        description=f"{__doc__} The user store is $DCCSEG_MODEL_STORE (default ~/.dccseg/models); "
        "built-in models ship with dccseg and are read-only. REF is NAME, NAME@VERSION or a model folder.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", parents=[common], help="list the installed model versions")
    listing.add_argument("--json", action="store_true", help="print a JSON array of {ref, name, version, path, builtin, created, description, metrics, card}")
    listing.set_defaults(func=run_list)

    show = actions.add_parser("show", parents=[common], help="print a model card")
    show.add_argument("ref", help="NAME, NAME@VERSION or a model folder")
    show.add_argument("--json", action="store_true", help="print the entry (with its card) as JSON")
    show.set_defaults(func=run_show)

    importer = actions.add_parser("import", parents=[common], help="add a model from a .zip or a model folder (never overwrites)")
    importer.add_argument("path", help="archive made by `dccseg models export`, or a folder with model.json and .safetensors weights")
    importer.set_defaults(func=run_import)

    exporter = actions.add_parser("export", parents=[common], help="write a model into a .zip archive")
    exporter.add_argument("ref", help="NAME, NAME@VERSION or a model folder")
    exporter.add_argument("path", help="archive to write (.zip; must not exist)")
    exporter.set_defaults(func=run_export)

    remover = actions.add_parser("remove", parents=[common], help="delete a model version from the user store")
    remover.add_argument("ref", help="NAME@VERSION (or NAME for its newest version)")
    remover.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    remover.set_defaults(func=run_remove)
