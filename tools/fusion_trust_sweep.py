"""Choose a model's ``fusion_trust`` on validation cases: refinement gain over its own coarse masks and over the oracle prior, per band.

    python tools/fusion_trust_sweep.py MODEL VALIDATION_DATASET [--output sweep.json] [--write]

For every labelled case the refine network runs twice, once on the model's coarse masks (own) and once on the
reference resampled to the coarse grid (oracle); the votes are then fused with each band of ``TRUSTS`` (None is the
plain majority vote), keeping the prior as inference does (``fusion_prior``). Dice is measured on the refine grid,
without the largest-piece step, so the network runs only twice per case. The rule the shipped model was chosen by
(docs/diagnose.md): the card's band changes only for one whose mean gain over the model's own coarse masks is
``MIN_GAIN`` larger; ``--write`` puts that choice into MODEL's card (MODEL a model folder, such as ``dccseg train release`` writes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dccseg.dataset import Dataset
from dccseg.fusion import fuse
from dccseg.inference.pipeline import RefineImage, coarse_labels, fusion_prior, refine_votes
from dccseg.inference.settings import InferenceSettings
from dccseg.inference.stages import oracle_prior
from dccseg.io import read_image, read_labelmap
from dccseg.organs import ORGANS
from dccseg.preprocess import attention_labels, resample_like, to_canonical
from dccseg.store import load_model
from dccseg.training.export import set_preprocessing

TRUSTS = (None, 0.4, 0.3, 0.2, 0.1, 0.05)
MIN_GAIN = 0.005


def choose(gains: dict[float | None, float], current: float | None) -> float | None:
    """The band the rule picks from {band: mean own-prior gain}: the best, if it beats the card's ``current`` band by ``MIN_GAIN``."""
    best = max(gains, key=lambda band: gains[band])
    return best if gains[best] >= gains[current] + MIN_GAIN else current


def case_scores(case, model, settings: InferenceSettings, trusts: tuple[float | None, ...] = TRUSTS) -> dict[str, dict[str, float]]:
    """{"own|oracle PRIOR-OR-BAND": {organ key: Dice}} of one case."""
    ct = read_image(case.image)
    reference = read_labelmap(case.label, reference=ct)
    canonical, _ = to_canonical(ct)
    coarse = coarse_labels(canonical, model, settings)
    image = RefineImage.of(canonical, settings)
    truth = resample_like(to_canonical(reference)[0], image.grid, is_label=True).array
    scores: dict[str, dict[str, float]] = {}
    for source, prior in (("own", coarse), ("oracle", oracle_prior(reference, coarse))):
        attention, kept = attention_labels(prior, image.grid).array, fusion_prior(prior, image.grid)
        votes = refine_votes(image.image, attention, [o.label for o in ORGANS], model, settings)
        results = {f"{source} prior": kept}
        results.update({f"{source} {trust}": fuse(image.grid.shape, votes, torch.from_numpy(kept), trust).numpy() for trust in trusts})
        for name, result in results.items():
            scores[name] = {o.key: 2.0 * float(((truth == o.label) & (result == o.label)).sum()) / float((truth == o.label).sum() + (result == o.label).sum())
                            for o in ORGANS if (truth == o.label).any()}
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--write", action="store_true", help="put the chosen band into MODEL's card (MODEL: a model folder)")
    args = parser.parse_args()
    if args.write and not (Path(args.model) / "model.json").is_file():
        parser.error(f"--write needs MODEL to be a model folder (with model.json), not {args.model}")
    model = load_model(args.model, device="cpu")
    settings = InferenceSettings.from_card(model.card.preprocessing)
    trusts = tuple(dict.fromkeys((*TRUSTS, settings.fusion_trust)))  # the card's own band is always measured
    pooled: dict[str, dict[str, list[float]]] = {}
    for case in (c for c in Dataset.load(args.dataset).cases if c.label is not None):
        for name, organs in case_scores(case, model, settings, trusts).items():
            for organ, value in organs.items():
                pooled.setdefault(name, {}).setdefault(organ, []).append(value)
        print(f"{case.id} done", flush=True)
    summary = {name: {organ: float(np.mean(v)) for organ, v in organs.items()} for name, organs in pooled.items()}
    own_gains = {}
    for source in ("own", "oracle"):
        prior = summary[f"{source} prior"]
        for trust in trusts:
            gains = [summary[f"{source} {trust}"][organ] - prior[organ] for organ in prior]
            print(f"{source:6s} trust {str(trust):4s}: mean gain {np.mean(gains):+.3f}, {sum(g > 0 for g in gains)}/{len(gains)} organs gain, worst {min(gains):+.3f}")
            if source == "own":
                own_gains[trust] = float(np.mean(gains))
    chosen = choose(own_gains, settings.fusion_trust)
    print(f"chosen: {chosen}")
    if args.output:
        args.output.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if args.write:
        set_preprocessing(Path(args.model), fusion_trust=chosen)
        print(f"wrote fusion_trust into {Path(args.model) / 'model.json'}")


if __name__ == "__main__":
    main()
