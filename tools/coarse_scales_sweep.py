"""Choose a model's ``coarse_scales`` on validation cases: coarse and refined Dice with the coarse network read at each set of grid scales.

    python tools/coarse_scales_sweep.py MODEL VALIDATION_DATASET [--sets 1 0.9,1 0.8,0.9,1 ...] [--output sweep.json] [--write]

Each set runs the whole pipeline as ``dccseg segment`` does (every organ refined): the coarse network reads the
volume on grids of the card's coarse spacing times each scale, their class probabilities are averaged on the coarse
grid. The rule the shipped model was chosen by (docs/networks.md): the best refined mean Dice, and among sets within
``TIE`` of it the one with the fewest scales (the cheapest); it replaces one scale only if it gains ``MIN_GAIN``.
``--write`` puts the chosen set into MODEL's card (MODEL a model folder, such as ``dccseg train release`` writes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from dccseg.dataset import Dataset
from dccseg.evaluation.stages import case_stage_dice
from dccseg.inference.stages import stage_predictions
from dccseg.io import read_image, read_labelmap
from dccseg.store import ModelCard, load_model
from dccseg.training.export import set_preprocessing

SETS = ("1", "0.9,1", "0.8,0.9,1", "0.9,1,1.1", "0.8,0.9,1,1.1,1.2")
TIE, MIN_GAIN = 0.002, 0.005


def with_scales(model, scales: tuple[float, ...]):
    """The loaded ``model`` with its card's ``coarse_scales`` replaced (the networks are shared)."""
    card = model.card.to_dict()
    return dataclasses.replace(model, card=ModelCard.from_dict({**card, "preprocessing": {**card["preprocessing"], "coarse_scales": list(scales)}}))


def choose(means: dict[tuple[float, ...], float]) -> tuple[float, ...]:
    """The scale set the rule picks from {scales: refined mean Dice}; one scale (1,) is the baseline when measured."""
    best = max(means.values())
    pick = min((scales for scales, value in means.items() if value >= best - TIE), key=lambda scales: (len(scales), -means[scales]))
    return pick if (1.0,) not in means or means[pick] >= means[(1.0,)] + MIN_GAIN else (1.0,)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--sets", nargs="+", default=list(SETS), help="comma-separated scale sets, each including 1")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--write", action="store_true", help="put the chosen set into MODEL's card (MODEL: a model folder)")
    args = parser.parse_args()
    if args.write and not (Path(args.model) / "model.json").is_file():
        parser.error(f"--write needs MODEL to be a model folder (with model.json), not {args.model}")
    model = load_model(args.model, device="cpu")
    variants = {scales: with_scales(model, scales) for scales in (tuple(float(v) for v in name.split(",")) for name in args.sets)}
    pooled: dict[tuple[float, ...], dict[str, list[float]]] = {scales: {"coarse": [], "refined": []} for scales in variants}
    for case in (c for c in Dataset.load(args.dataset).cases if c.label is not None):
        ct = read_image(case.image)
        reference = read_labelmap(case.label, reference=ct)
        for scales, variant in variants.items():
            rows = case_stage_dice(stage_predictions(ct, None, variant, refine_skip=()), reference, variant.card.organ_objects)
            for stage, values in pooled[scales].items():
                values.append(float(np.mean([row[stage] for row in rows.values()])))
        print(f"{case.id} done", flush=True)
    summary = {",".join(f"{v:g}" for v in scales): {stage: float(np.mean(values)) for stage, values in stages.items()} for scales, stages in pooled.items()}
    for name, means in summary.items():
        print(f"scales {name:18s}: coarse {means['coarse']:.4f}, refined {means['refined']:.4f}")
    chosen = choose({scales: float(np.mean(stages["refined"])) for scales, stages in pooled.items()})
    print("chosen: " + ",".join(f"{v:g}" for v in chosen))
    if args.output:
        args.output.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if args.write:
        set_preprocessing(Path(args.model), coarse_scales=list(chosen))
        print(f"wrote coarse_scales into {Path(args.model) / 'model.json'}")


if __name__ == "__main__":
    main()
