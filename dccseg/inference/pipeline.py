"""``segment_volume``: coarse 3D network -> organ patches per slice -> refine network -> fusion -> input grid.

The steps (method.md §1.8) run on two working grids in canonical orientation: the coarse grid
(``coarse_spacing``) and the refine grid (in-plane ``refine_spacing``, slices at
``refine_slice_thickness`` or native). Only uint8 labels and one normalised float32 image per grid
are held at once; the refine votes live in per-organ bounding boxes (dccseg.fusion).
Organs in the card's ``refine_skip`` are not refined: their coarse labels are restored to the
input grid directly. ``labels_from_prior`` runs everything after the coarse network from any
coarse-grid label map (``dccseg.inference.stages`` feeds it a reference for the oracle prior).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import torch
from monai.inferers import sliding_window_inference

from ..errors import DccsegError
from ..fusion import VoteAccumulator, fuse, vote_ambiguity
from ..networks import CoarseConfig, RefineConfig, make_refine_input, pad_to_multiple
from ..organs import ORGAN_BY_LABEL, Organ
from ..patches import extract_patches, organ_slice_centers
from ..preprocess import attention_labels, normalize_ct, resample, to_canonical
from ..progress import QUIET, Progress
from ..postprocess import keep_largest_components
from ..volume import Volume
from .body_size import AUTO, size_factor, within_range
from .device import BatchRunner, autocast
from .findings import CoarseFindings, organ_confidence
from .memory import check_memory
from .orientation import confident_organ_voxels, mirror_flag
from .optimize import inference_network
from .restore import restore_labels
from .settings import MAX_COARSE_ROI, InferenceSettings


def segment_volume(
    ct: Volume,
    model: Any,
    organs: Iterable[Organ] | None = None,
    fast: bool = False,
    progress: Progress = QUIET,
    batch_size: int | None = None,
    timings: dict[str, float] | None = None,
    largest_component: bool = True,
    refine_skip: Iterable[int] | None = None,
    body_scale: float | str = 1.0,
    findings: CoarseFindings | None = None,
) -> Volume:
    """Segment ``ct`` (HU) with a loaded model; returns a uint8 label map (ids 1..13) on ``ct``'s exact grid.

    ``organs`` limits refinement and output to those organs (default: all the model has);
    ``fast`` uses the card's ``fast_patches_per_slice``; ``timings`` (if given) receives the
    seconds of the "coarse", "refine" and "fuse" stages; ``largest_component`` keeps one
    connected piece per organ (``dccseg.postprocess``); ``refine_skip`` (organ ids, default the
    card's ``refine_skip``) are not refined: their coarse labels go straight to the input grid;
    ``body_scale`` reads a child's body on grids scaled to its size (``dccseg.inference.body_size``; 1: an adult);
    ``findings`` (if given) receives what the coarse network says beside its labels: case-wide flags, such as a scan read
    as a left-right mirror image (``dccseg.inference.orientation``), and each organ's confidence (``dccseg.inference.findings``).
    """
    settings = InferenceSettings.from_card(model.card.preprocessing, fast)
    wanted = wanted_organ_labels(model, organs)
    skip = model.card.refine_skip_labels if refine_skip is None else set(refine_skip)
    times = timings if timings is not None else {}
    start = time.perf_counter()

    check_memory(ct, 1.0 if body_scale == AUTO else float(body_scale))
    canonical, orientation = to_canonical(ct, copy=False)  # a view: the resampling copies only slabs of large CTs
    progress.update("coarse", 0.0, "coarse network")
    coarse, settings = coarse_for_body(canonical, model, settings, progress, body_scale, findings)
    times["coarse"] = time.perf_counter() - start

    start = time.perf_counter()
    image = RefineImage.of(canonical, settings) if set(wanted) - skip else None
    canonical = geometry_only(canonical)  # frees the full-resolution copy; only its grid is needed below
    image_seconds = time.perf_counter() - start
    on_canonical = labels_from_prior(coarse, canonical, image, wanted, skip, model, settings, progress, batch_size, times, largest_component)
    times["refine"] += image_seconds
    return orientation.restore(on_canonical)


@dataclass(frozen=True)
class RefineImage:
    """The normalised image (Z, H, W) float32 on the refine grid, and that grid (geometry only)."""

    image: torch.Tensor
    grid: Volume

    @classmethod
    def of(cls, canonical: Volume, settings: InferenceSettings) -> "RefineImage":
        spacing = settings.refine_grid_spacing(canonical.spacing[2])
        on_grid = resample(canonical, spacing, is_label=False)
        return cls(torch.from_numpy(normalize_ct(on_grid.array, settings.intensity)), geometry_only(on_grid))


def labels_from_prior(
    prior: Volume,
    target: Volume,
    image: RefineImage | None,
    wanted: list[int],
    skip: set[int],
    model: Any,
    settings: InferenceSettings,
    progress: Progress = QUIET,
    batch_size: int | None = None,
    timings: dict[str, float] | None = None,
    largest_component: bool = True,
    ambiguity: dict[int, float | None] | None = None,
) -> Volume:
    """Refine -> fusion -> ``target``'s grid (canonical), starting from a coarse-grid label map ``prior``.

    The organs of ``wanted`` not in ``skip`` are refined with ``prior`` as their attention channel
    (``image`` is needed only for them); the skipped ones are ``prior``'s own labels, restored to
    ``target`` the same way (both after ``largest_component``, competing voxel by voxel).
    ``timings`` receives the "refine" and "fuse" seconds; ``ambiguity`` the refined organs' patch vote
    ambiguity (``dccseg.fusion.vote_ambiguity``), by organ id.
    """
    times = timings if timings is not None else {}
    refined_organs = [label for label in wanted if label not in skip]
    kept_organs = [label for label in wanted if label in skip]
    start = time.perf_counter()
    sources = []
    if refined_organs:
        if image is None:
            raise ValueError("refining organs needs the refine image")
        labels = attention_labels(prior, image.grid).array
        accumulators = refine_votes(image.image, labels, refined_organs, model, settings, progress, batch_size)
        if ambiguity is not None:
            ambiguity.update({acc.label: vote_ambiguity(acc) for acc in accumulators})
        times["refine"] = time.perf_counter() - start
        start = time.perf_counter()
        progress.update("fuse", 0.0, "majority vote")
        prior_on_grid = torch.from_numpy(fusion_prior(prior, image.grid)).to(accumulators[0].buffer.device) if accumulators and settings.fusion_trust else None
        refined = fuse(image.grid.shape, accumulators, prior_on_grid, settings.fusion_trust).cpu().numpy() if accumulators else np.zeros(image.grid.shape, dtype=np.uint8)
        del accumulators, labels, prior_on_grid
        sources.append(image.grid.with_array(refined))
    else:
        progress.update("refine", 1.0, "refinement skipped for every organ (refine_skip)")
        times["refine"] = 0.0
    if kept_organs:
        sources.append(prior.with_array(np.where(np.isin(prior.array, kept_organs), prior.array, 0).astype(np.uint8)))
    if largest_component:
        for source in sources:
            keep_largest_components(source.array)
    progress.update("fuse", 0.5, "back to the input grid")
    result = restore_labels(sources, target)
    progress.update("fuse", 1.0, "done")
    times["fuse"] = time.perf_counter() - start
    return result


def fusion_prior(prior: Volume, grid: Volume) -> np.ndarray:
    """The coarse labels the fusion keeps where the patches are unsure, on the refine grid.

    Restored as skipped organs are (linear per organ), not the blocky nearest-neighbour copy the attention channel gets.
    """
    return restore_labels(prior, grid).array


def wanted_organ_labels(model: Any, organs: Iterable[Organ] | None) -> list[int]:
    """The sorted ids of ``organs`` (default: all the model segments); one the model lacks is a DccsegError."""
    available = {o.label for o in model.card.organ_objects}
    if organs is None:
        return sorted(available)
    labels = sorted({o.label for o in organs})
    missing = [ORGAN_BY_LABEL[label].key for label in labels if label not in available]
    if missing:
        raise DccsegError(f"model {model.card.ref} does not segment {', '.join(missing)}; choose organs among {', '.join(o.key for o in model.card.organ_objects)}")
    return labels


def coarse_for_body(canonical: Volume, model: Any, settings: InferenceSettings, progress: Progress = QUIET, body_scale: float | str = 1.0,
                    findings: CoarseFindings | None = None) -> tuple[Volume, InferenceSettings]:
    """The coarse labels and the settings for the rest of the run, for a body ``body_scale`` times an adult's size (``AUTO``: measured on a first pass; ``dccseg.inference.body_size``).

    ``findings`` receives the mirror reading of the first pass (a scan's orientation does not depend on its size) and the organ
    confidence of the last (``coarse_labels``).
    """
    if body_scale == AUTO:
        if not settings.size_reference_ml:
            raise DccsegError(f"model {model.card.ref} has no organ volumes in its card to measure a body by; give the child's size instead, e.g. --body-scale 0.6")
        coarse = coarse_labels(canonical, model, settings, progress, findings)
        factor = size_factor(coarse, settings.size_reference_ml)
        if factor is None:
            progress.log("body scale: fewer than two of liver, spleen and kidneys lie whole in the scan, so its size cannot be measured; read at the model's grids")
            return coarse, settings
        body_scale = within_range(factor)
        progress.log(f"body scale {body_scale:.2f}: its organs measure {factor:.2f} of the training bodies' size on the model's grids")
        if body_scale == 1.0:
            return coarse, settings
        check_memory(canonical, body_scale)
    if body_scale != 1.0:
        settings = settings.scaled(float(body_scale))
    return coarse_labels(canonical, model, settings, progress, findings), settings


def coarse_labels(canonical: Volume, model: Any, settings: InferenceSettings, progress: Progress = QUIET, findings: CoarseFindings | None = None) -> Volume:
    """The coarse network's argmax labels (uint8) on the coarse grid.

    With several ``settings.coarse_scales`` the network also reads the volume on grids of the coarse spacing times
    each scale; their class probabilities, moved onto the coarse grid, are averaged before the argmax. ``findings`` receives
    each organ's confidence on the coarse grid and, unless an earlier pass read it, whether the scan mirrored left to
    right reads clearly better (then a flag).
    """
    grid = resample(canonical, settings.coarse_spacing, is_label=False)
    total = None
    for done, scale in enumerate(settings.coarse_scales):
        on_scale = grid if scale == 1.0 else resample(canonical, tuple(s * scale for s in settings.coarse_spacing), is_label=False)
        scores = _coarse_scores(on_scale, model, settings, progress, softmax=len(settings.coarse_scales) > 1)
        if findings is not None and on_scale is grid:
            probabilities = scores if len(settings.coarse_scales) > 1 else torch.softmax(scores, dim=0)
            findings.confidence = organ_confidence(probabilities)
            if not findings.mirror_read:
                findings.flags += mirror_flags(grid, probabilities, model, settings, progress)
                findings.mirror_read = True
        scores = scores if on_scale is grid else onto_grid(scores, on_scale, grid)
        total = scores if total is None else total.add_(scores.to(total.device))  # a later grid may have fallen back to the CPU
        progress.update("coarse", (done + 1) / len(settings.coarse_scales), f"coarse network, scale {scale:g}")
    labels = total.argmax(0).to(torch.uint8).cpu().numpy()
    return grid.with_array(labels)


def mirror_flags(grid: Volume, probabilities: torch.Tensor, model: Any, settings: InferenceSettings, progress: Progress = QUIET) -> list[dict[str, Any]]:
    """The mirrored-scan flag, if the coarse network is sure of clearly more organ voxels in ``grid`` mirrored left to right than in
    ``grid`` itself (its class ``probabilities``); the canonical grid's last axis runs from the patient's right to left."""
    mirrored = _coarse_scores(grid.with_array(np.ascontiguousarray(grid.array[:, :, ::-1])), model, settings, progress, softmax=True)
    flag = mirror_flag(confident_organ_voxels(probabilities), confident_organ_voxels(mirrored), grid.voxel_ml)
    return [flag] if flag else []


def _coarse_scores(small: Volume, model: Any, settings: InferenceSettings, progress: Progress, softmax: bool) -> torch.Tensor:
    """The coarse network's logits (or class probabilities) on ``small``'s grid, (C, D, H, W) float32."""
    x = torch.from_numpy(normalize_ct(small.array, settings.intensity))[None, None]
    divisor = CoarseConfig.from_dict(model.card.architecture["coarse"]).size_divisor
    shape = x.shape[-3:]
    try:
        logits = _coarse_logits(model.coarse, x, divisor)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        progress.log("GPU out of memory in the coarse network: running it on the CPU")
        model.coarse.to("cpu")
        logits = _coarse_logits(model.coarse, x, divisor)
    logits = logits[0, :, : shape[0], : shape[1], : shape[2]]
    return torch.softmax(logits, dim=0) if softmax else logits


def onto_grid(scores: torch.Tensor, source: Volume, target: Volume) -> torch.Tensor:
    """Per-class ``scores`` (C, D, H, W) on ``source``'s grid, linearly interpolated onto ``target``'s.

    Both grids come from ``resample`` of one volume: same origin and direction, so target voxel i lies at
    source index i * target spacing / source spacing along each axis (edges clamped).
    """
    axes = []
    for n_target, n_source, t, s in zip(target.shape, source.shape, target.spacing[::-1], source.spacing[::-1]):
        index = torch.arange(n_target, dtype=torch.float32, device=scores.device) * (t / s)
        axes.append(index * (2.0 / max(n_source - 1, 1)) - 1.0)
    z, y, x = torch.meshgrid(*axes, indexing="ij")
    where = torch.stack((x, y, z), dim=-1)[None]
    return torch.nn.functional.grid_sample(scores[None], where, mode="bilinear", padding_mode="border", align_corners=True)[0]


def _coarse_logits(net: torch.nn.Module, x: torch.Tensor, divisor: int) -> torch.Tensor:
    """Logits of the padded volume: in one pass, or by sliding window when a side exceeds MAX_COARSE_ROI."""
    device = next(net.parameters()).device
    padded = pad_to_multiple(x, divisor, value=-1.0).to(device)
    roi = tuple(min(MAX_COARSE_ROI, s) for s in padded.shape[-3:])
    with torch.inference_mode(), autocast(device):
        if roi == tuple(padded.shape[-3:]):
            return net(padded).float()
        return sliding_window_inference(padded, roi, 1, lambda t: net(t).float(), overlap=0.25, mode="gaussian")


def geometry_only(volume: Volume) -> Volume:
    """The same grid holding a zero-memory placeholder array (a broadcast uint8 zero)."""
    return volume.with_array(np.broadcast_to(np.zeros((), dtype=np.uint8), volume.shape))


def refine_votes(
    image: torch.Tensor,
    labels: np.ndarray,
    wanted: list[int],
    model: Any,
    settings: InferenceSettings,
    progress: Progress = QUIET,
    batch_size: int | None = None,
) -> list[VoteAccumulator]:
    """Run the refine network on every organ patch of every slice and collect the votes per organ.

    The patches of all organs form one stream cut into full batches, so small organs do not
    leave the network running on small batches.
    """
    device = model.device
    size = settings.patch_size
    in_channels = RefineConfig.from_dict(model.card.architecture["refine"]).in_channels
    accumulators, centers, organs = [], [], []
    for label in wanted:
        found = torch.from_numpy(organ_slice_centers(labels == label, settings.patches_per_slice, seed=label))
        if found.shape[0]:
            accumulators.append(VoteAccumulator(label, found, size, tuple(labels.shape), device))
            centers.append(found)
            organs.append(torch.full((found.shape[0],), label, dtype=torch.uint8))
    if not accumulators:
        return []
    all_centers, all_organs = torch.cat(centers), torch.cat(organs)
    total = all_centers.shape[0]
    progress.update("refine", 0.0, f"{total} patches, {len(accumulators)} organs")
    image = image.to(device)
    label_map = torch.from_numpy(labels).to(device)
    runner = BatchRunner(inference_network(model.refine, in_channels, size, device), device, batch_size, progress, size)
    by_label = {acc.label: acc for acc in accumulators}
    first = 0
    while first < total:
        last = min(first + runner.batch_size * 4, total)
        chunk, chunk_organs = all_centers[first:last], all_organs[first:last]
        image_patches, mask_patches = extract_patches(image, label_map, chunk, size, organ_labels=chunk_organs)
        probs = runner(make_refine_input(image_patches, mask_patches, in_channels), post=lambda logits: torch.softmax(logits, dim=1)[:, 1])
        for label in torch.unique(chunk_organs).tolist():
            chosen = (chunk_organs == label).to(probs.device)
            by_label[label].add(chunk[chosen.cpu()], probs[chosen])
        first = last
        progress.update("refine", first / total, f"{first}/{total} patches")
    return accumulators
