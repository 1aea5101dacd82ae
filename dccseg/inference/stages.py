"""The label maps of each inference stage of one CT, for stage-wise evaluation (``dccseg diagnose``).

The coarse network runs once; ``labels_from_prior`` then turns a coarse-grid label map into a
label map on the input grid, either by restoring it directly (every organ skipped) or by
refining it. Fed the model's own coarse labels that gives "coarse" and "refined" (what
``dccseg segment`` writes); fed the reference resampled (nearest neighbour) to the coarse grid,
the oracle prior, it gives "oracle_prior" and "oracle_refined". Without a reference only "coarse" and
"refined" are made (``dccseg dataset rank`` measures how far they disagree on unlabelled cases).
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from ..organs import Organ
from ..preprocess import resample_like, to_canonical
from ..progress import QUIET, Progress
from ..store.card import STAGE_COLUMNS
from ..volume import Volume
from .findings import CoarseFindings
from .pipeline import RefineImage, coarse_for_body, geometry_only, labels_from_prior, wanted_organ_labels
from .settings import InferenceSettings

STAGES = STAGE_COLUMNS
MODEL_STAGES = ("coarse", "refined")
"""The stages that need no reference."""


def oracle_prior(reference: Volume, coarse: Volume) -> Volume:
    """``reference`` (labels, any grid) on the canonical coarse grid of ``coarse``, nearest neighbour."""
    return resample_like(to_canonical(reference)[0], coarse, is_label=True)


def stage_predictions(
    ct: Volume,
    reference: Volume | None,
    model: Any,
    organs: Iterable[Organ] | None = None,
    fast: bool = False,
    refine_skip: Iterable[int] | None = None,
    largest_component: bool = True,
    progress: Progress = QUIET,
    timings: dict[str, float] | None = None,
    ambiguity: dict[int, float | None] | None = None,
    body_scale: float | str = 1.0,
    findings: CoarseFindings | None = None,
) -> dict[str, Volume]:
    """{stage: label map on ``ct``'s grid} for the STAGES (MODEL_STAGES when ``reference`` is None), all from one coarse pass.

    ``refine_skip`` (organ ids, default the card's) applies to both refined stages, as in
    ``segment_volume``. ``timings`` receives the seconds of the "coarse" network and of the
    "refine" and "fuse" steps of the "refined" stage; ``ambiguity`` the refined organs' patch vote ambiguity
    of the "refined" stage, by organ id; ``body_scale`` and ``findings`` as in ``segment_volume``.
    """
    settings = InferenceSettings.from_card(model.card.preprocessing, fast)
    wanted = wanted_organ_labels(model, organs)
    skip = model.card.refine_skip_labels if refine_skip is None else set(refine_skip)
    times = timings if timings is not None else {}
    start = time.perf_counter()
    canonical, orientation = to_canonical(ct)
    progress.update("coarse", 0.0, "coarse network")
    coarse, settings = coarse_for_body(canonical, model, settings, progress, body_scale, findings)
    times["coarse"] = time.perf_counter() - start
    start = time.perf_counter()
    image = RefineImage.of(canonical, settings) if set(wanted) - skip else None
    image_seconds = time.perf_counter() - start
    target = geometry_only(canonical)
    runs = {"coarse": (coarse, set(wanted)), "refined": (coarse, skip)}
    if reference is not None:
        oracle = oracle_prior(reference, coarse)
        runs.update(oracle_prior=(oracle, set(wanted)), oracle_refined=(oracle, skip))
    results = {}
    for stage in STAGES if reference is not None else MODEL_STAGES:
        prior, skipped = runs[stage]
        progress.log(f"stage {stage}")
        stage_times: dict[str, float] = {}
        on_canonical = labels_from_prior(prior, target, image, wanted, skipped, model, settings, progress, timings=stage_times,
                                         largest_component=largest_component, ambiguity=ambiguity if stage == "refined" else None)
        results[stage] = orientation.restore(on_canonical)
        if stage == "refined":
            times.update(refine=stage_times["refine"] + image_seconds, fuse=stage_times["fuse"])
    return results
