"""Fine-tuning from a model (``dccseg train all DATASET --from REF``): start from its weights, keep its preprocessing.

A user with five curated scans must not get a model trained on five scans. With ``--from`` both networks
start from the given model; its card fixes the preprocessing and the architectures, the preset's schedule is
made gentler (a quarter of the epochs, a fifth of the learning rate, early stop on the validation Dice), and
the refine patches keep the starting model's kind of attention mask (``starting_prior``). ``world_cases`` mixes in renders of the bundled training bodies in every
phase, so a model tuned on one site's scans keeps working on the rest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from safetensors.torch import load_file

from dccseg.errors import DccsegError
from dccseg.inference.settings import Preprocessing
from dccseg.networks import CoarseConfig, RefineConfig
from dccseg.organs import ORGANS
from dccseg.store import ModelCard, ModelEntry, ModelStore
from dccseg.training.augment import KNOWN_PHASES
from dccseg.training.configs import TrainingConfig
from dccseg.training.priors import SYNTHETIC_PRIORS
from dccseg.training.sources import CoarseModel, model_coarse
from dccseg.volume import Volume

EPOCH_SHARE = 0.25
LR_SHARE = 0.2
PATIENCE = 3
WORLD_RATIO = 1.0
WORLD_SLICE_MM = 3.0
WEIGHT_SHARE = 0.6
"""The registered networks are this share of the fine-tuned weights plus the rest of the starting model's (``averaged``)."""
CROSS_VALIDATE_BELOW = 4
"""Fewer labelled cases than this (and no --held-out): before/after by leave-one-out folds (``cross_validation``)."""


@dataclass
class StartingModel:
    """The model a fine-tune starts from: its reference, card and both networks' weights."""

    ref: str
    card: ModelCard
    coarse: CoarseModel
    refine_state: dict[str, torch.Tensor]


def starting_entry(ref: str) -> ModelEntry:
    """The store entry of ``ref`` (a name, name@version or version folder), checked to be a model of the 13 organs."""
    entry = ModelStore().resolve(ref)
    if [o.key for o in entry.card.organ_objects] != [o.key for o in ORGANS]:
        raise DccsegError(f"{entry.ref} segments other organs than this dccseg's 13; fine-tune from a model of the 13 organs, or train from scratch without --from")
    return entry


def load_starting_model(ref: str) -> StartingModel:
    entry = starting_entry(ref)
    return StartingModel(entry.ref, entry.card, model_coarse(entry), load_file(str(entry.weight_path("refine"))))


def finetune_config(config: TrainingConfig, card: ModelCard) -> TrainingConfig:
    """The preset made a fine-tune of ``card``'s model: its preprocessing and networks, fewer epochs, lower learning rates."""

    def gentler(stage: Any, network: Any) -> Any:
        optimizer = dataclasses.replace(stage.optimizer, lr=stage.optimizer.lr * LR_SHARE)
        return dataclasses.replace(stage, network=network, epochs=max(2, round(stage.epochs * EPOCH_SHARE)), optimizer=optimizer, patience=PATIENCE)

    coarse = gentler(config.coarse, CoarseConfig.from_dict(card.architecture["coarse"]))
    refine = dataclasses.replace(gentler(config.refine, RefineConfig.from_dict(card.architecture["refine"])), prior=starting_prior(card))
    return dataclasses.replace(config, preprocessing=Preprocessing.from_card(card.preprocessing), coarse=coarse, refine=refine)


def starting_prior(card: ModelCard) -> str:
    """The refine prior a fine-tune keeps: the starting model's own when drawn on the ground truth (degraded, realistic), else the starting coarse model's masks.

    Measured: a refine network trained on degraded ground truth (0.2.0) and fine-tuned on the coarse model's masks of scans
    that model is weak on learnt to distrust its attention channel and fell from 0.49 to 0.14 Dice on the benchmark.
    """
    prior = ((card.training.get("stages") or {}).get("refine") or {}).get("prior")
    return prior if prior in SYNTHETIC_PRIORS else "coarse"


def world_count(ratio: float, user_cases: int) -> int:
    """How many renders of the bundled bodies join ``user_cases`` training cases."""
    if ratio < 0:
        raise DccsegError(f"--world-ratio is a number of bundled-body renders per training case (0 or more), not {ratio}")
    return int(round(ratio * user_cases))


def world_cases(count: int, refine_spacing: tuple[float, float], seed: int) -> list[tuple[str, str, Volume, Volume]]:
    """``count`` renders (id, phase, CT in HU, labels) of the bundled training bodies, phases in turn, varied fields of view."""
    from dccseg.phantoms import synthesize_from_labels
    from dccseg.phantoms.field_of_view import FieldOfViewSettings
    from dccseg.phantoms.synthesis import prepared
    from dccseg.phantoms.templates import BODY_SPLIT, load_template

    bodies = BODY_SPLIT["train"]
    rng = np.random.default_rng([seed, 11])
    spacing = (refine_spacing[0], refine_spacing[1], WORLD_SLICE_MM)
    out = []
    for index in range(count):
        body = bodies[int(rng.integers(len(bodies)))]
        phase = KNOWN_PHASES[index % len(KNOWN_PHASES)]
        ct, labels = synthesize_from_labels(prepared(*load_template(body)), phase=phase, seed=int(rng.integers(2**31)), output_spacing=spacing,
                                            field_of_view=FieldOfViewSettings())
        out.append((f"world-{index}-{body}", phase, ct.with_array(ct.array.astype(np.float32)), labels.with_array(labels.array.astype(np.uint8))))
    return out


def averaged(start: Mapping[str, torch.Tensor], tuned: Mapping[str, torch.Tensor], share: float = WEIGHT_SHARE) -> dict[str, torch.Tensor]:
    """``share`` of the fine-tuned weights plus ``1 - share`` of the starting ones (integer buffers: the fine-tuned ones).

    Weight-space ensembling of a fine-tune with its start (WiSE-FT, Wortsman et al., CVPR 2022) keeps what the start
    knew about other data and most of what the fine-tune learnt. On the new-site example (docs/training.md) the
    fine-tuned weights alone lost 0.023-0.077 Dice on the benchmark; shares of 0.5-0.6 lost at most 0.011.
    """
    return {key: (share * value.float() + (1.0 - share) * start[key].float()).to(value.dtype) if value.is_floating_point() else value
            for key, value in tuned.items()}


def unlabelled_organs(label_arrays: list[np.ndarray]) -> tuple[int, ...]:
    """Organ ids that no label map of the dataset holds: not annotated there, so unknown rather than background."""
    present: set[int] = set()
    for array in label_arrays:
        present.update(int(v) for v in np.unique(array))
    return tuple(o.label for o in ORGANS if o.label not in present)
