"""Random pathology for label-driven synthesis: focal lesions, exophytic masses, enlarged, shrunken and missing organs.

``add_pathology`` edits a tissue map (indices into ``hu_table.TISSUES``) and an organ map (ids 1..13) of one
synthetic case before rendering. Labels follow the BTCV convention: a lesion inside an organ keeps the organ's
label (only its tissue changes); the part of a mass outside every organ is background (label 0). Nothing ever
takes another organ's voxels: masses and grown organs only replace background soft tissue, fat and bowel.
All work is done in organ bounding boxes, so one call costs well under a second on a 3.5 mm grid.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import scipy.ndimage as ndi

from ..errors import DccsegError
from ..organs import ORGAN_BY_KEY, ORGAN_BY_LABEL
from .hu_table import TISSUE_INDEX, TISSUES
from .render import smooth_noise, upsample

LESION_KINDS: dict[str, tuple[str, str | None]] = {
    "cyst": ("cyst", None),
    "hypodense": ("lesion_hypo", None),
    "isodense": ("lesion_iso", None),
    "hyperdense": ("lesion_hyper", None),
    "necrotic": ("lesion_rim", "necrosis"),
}
"""Lesion kind -> (tissue of the lesion or its enhancing rim, tissue of its necrotic centre or None)."""

DISPLACEABLE = tuple(TISSUE_INDEX[t] for t in ("fat", "soft_tissue", "bowel_wall", "bowel_contents"))
"""Background tissues that a mass or a growing organ may push aside (never air, bone, lung, muscle or vessels)."""


@dataclass(frozen=True)
class PathologySettings:
    """How often and how large each kind of pathology is; every draw comes from the caller's generator.

    Probabilities are per candidate organ (``lesion``, ``enlarge``, ``shrink``, ``removal``) or per case
    (``mass``), so several findings can appear in one case. Diameters are those of the sphere of equal
    volume (mm); lesion shapes are ellipsoids with axis ratios up to ``elongation`` whose surface is
    perturbed by smooth noise of relative amplitude ``irregularity``. Volume factors multiply the organ's
    volume. With the defaults about five cases in six get at least one finding, most often focal lesions.
    """

    lesion_probability: float = 0.15
    lesion_organs: tuple[str, ...] = ("liver", "kidney_right", "kidney_left", "spleen", "pancreas")
    lesion_diameter_mm: tuple[float, float] = (5.0, 120.0)
    lesion_kind_weights: tuple[float, float, float, float, float] = (1.0, 1.5, 0.5, 1.0, 1.0)
    """Weights of the ``LESION_KINDS`` in their order: cyst, hypodense, isodense, hyperdense, necrotic."""
    many_lesions_probability: float = 0.35
    many_lesions_count: tuple[int, int] = (2, 15)
    many_lesions_diameter_mm: tuple[float, float] = (5.0, 35.0)
    elongation: float = 1.4
    irregularity: float = 0.25
    mass_probability: float = 0.15
    mass_hosts: tuple[str, ...] = (
        "kidney_right", "kidney_left", "liver", "spleen", "pancreas", "adrenal_gland_right", "adrenal_gland_left", "retroperitoneum"
    )
    """Organs a mass may bulge out of; ``retroperitoneum`` is a mass beside the aorta that touches no organ."""
    mass_diameter_mm: tuple[float, float] = (25.0, 120.0)
    enlarge_probability: float = 0.06
    enlarge_organs: tuple[str, ...] = ("spleen", "liver", "kidney_right", "kidney_left", "pancreas", "gallbladder")
    enlarge_volume_factor: tuple[float, float] = (1.3, 2.0)
    splenomegaly_volume_factor: tuple[float, float] = (2.0, 5.0)
    shrink_probability: float = 0.05
    shrink_organs: tuple[str, ...] = ("kidney_right", "kidney_left", "liver", "spleen", "pancreas")
    shrink_volume_factor: tuple[float, float] = (0.3, 0.8)
    removal_probability: float = 0.04
    removal_organs: tuple[str, ...] = ("kidney_right", "kidney_left", "gallbladder", "spleen")

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("probability") and not 0.0 <= value <= 1.0:
                raise DccsegError(f"pathology setting {f.name}={value} is not a probability; give a number from 0 to 1")
            if f.name.endswith(("_mm", "_factor", "_count")) and not 0 < value[0] <= value[1]:
                raise DccsegError(f"pathology setting {f.name}={value} is not a range; give (low, high) with 0 < low <= high")
            if f.name.endswith(("_organs", "_hosts")):
                unknown = [k for k in value if k not in ORGAN_BY_KEY and not (k == "retroperitoneum" and f.name == "mass_hosts")]
                if unknown:
                    raise DccsegError(f"pathology setting {f.name} names unknown organs {unknown}; use organ keys such as 'liver'")
        if self.elongation < 1.0 or not 0.0 <= self.irregularity < 1.0:
            raise DccsegError("pathology settings need elongation >= 1 and irregularity from 0 to below 1")
        if self.enlarge_volume_factor[0] < 1.0 or self.splenomegaly_volume_factor[0] < 1.0 or self.shrink_volume_factor[1] > 1.0:
            raise DccsegError("pathology volume factors must enlarge (>= 1) or shrink (<= 1) as their names say")
        if len(self.lesion_kind_weights) != len(LESION_KINDS) or min(self.lesion_kind_weights) < 0 or sum(self.lesion_kind_weights) <= 0:
            raise DccsegError(f"lesion_kind_weights needs {len(LESION_KINDS)} non-negative weights, not all zero")


def add_pathology(
    tissue: np.ndarray,
    organs: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    rng: np.random.Generator,
    settings: PathologySettings = PathologySettings(),
) -> tuple[np.ndarray, np.ndarray]:
    """Random pathology on a (tissue, organ) map pair; returns new arrays, the inputs stay untouched.

    Order: missing organs, then enlarged/shrunken organs, then focal lesions, then exophytic masses.
    """
    if tissue.shape != organs.shape or tissue.ndim != 3:
        raise DccsegError(f"tissue map {tissue.shape} and organ map {organs.shape} must be the same 3D grid")
    spacing = np.asarray(spacing_zyx, dtype=np.float64)
    if spacing.shape != (3,) or not (spacing > 0).all():
        raise DccsegError(f"spacing {spacing_zyx} must be three positive numbers (z, y, x mm)")
    if tissue.size and (tissue.min() < 0 or tissue.max() >= len(TISSUES) or organs.min() < 0 or organs.max() > max(ORGAN_BY_LABEL)):
        raise DccsegError(f"tissue map must index hu_table.TISSUES (0-{len(TISSUES) - 1}) and organ map hold ids 0-{max(ORGAN_BY_LABEL)}")
    tissue, organs = tissue.astype(np.uint8, copy=True), organs.astype(np.uint8, copy=True)
    boxes = ndi.find_objects(organs, max_label=max(ORGAN_BY_LABEL))
    labels = {key: ORGAN_BY_KEY[key].label for key in ORGAN_BY_KEY}
    for key in settings.removal_organs:
        if boxes[labels[key] - 1] is not None and rng.uniform() < settings.removal_probability:
            _remove(tissue, organs, labels[key], boxes[labels[key] - 1], spacing, rng)
            boxes[labels[key] - 1] = None
    resized = False
    for key in sorted(set(settings.enlarge_organs) | set(settings.shrink_organs)):
        draw, box = rng.uniform(), boxes[labels[key] - 1]
        if box is not None and key in settings.enlarge_organs and draw < settings.enlarge_probability:
            low, high = settings.splenomegaly_volume_factor if key == "spleen" else settings.enlarge_volume_factor
            resized |= _grow(tissue, organs, labels[key], box, rng.uniform(low, high), spacing, rng)
        elif box is not None and key in settings.shrink_organs and draw > 1.0 - settings.shrink_probability:
            _shrink(tissue, organs, labels[key], box, rng.uniform(*settings.shrink_volume_factor), spacing, rng)
    if resized:
        boxes = ndi.find_objects(organs, max_label=max(ORGAN_BY_LABEL))
    for key in settings.lesion_organs:
        box = boxes[labels[key] - 1]
        if box is not None and rng.uniform() < settings.lesion_probability:
            _add_lesions(tissue, organs, labels[key], box, spacing, rng, settings)
    if rng.uniform() < settings.mass_probability:
        _add_mass(tissue, organs, boxes, spacing, rng, settings)
    return tissue, organs


def _padded(box: tuple[slice, ...], pad_vox: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(s.start - int(p), 0), min(s.stop + int(p), n)) for s, p, n in zip(box, pad_vox, shape))


def _log_uniform(low: float, high: float, rng: np.random.Generator) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _blob(shape: tuple[int, ...], centre_vox: np.ndarray, diameter_mm: float, spacing: np.ndarray, rng: np.random.Generator,
          settings: PathologySettings) -> np.ndarray:
    """Normalised radius (1 on the surface) of a random irregular ellipsoid of equal-volume ``diameter_mm`` on a box grid."""
    axes = rng.uniform(1.0, settings.elongation, 3)
    semi = 0.5 * diameter_mm * axes / np.cbrt(np.prod(axes))
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    offsets = [(np.arange(n) - c) * s for n, c, s in zip(shape, centre_vox, spacing)]
    z, y, x = np.meshgrid(*[o.astype(np.float32) for o in offsets], indexing="ij", sparse=True)
    radius2 = sum(((rotation[i, 0] * z + rotation[i, 1] * y + rotation[i, 2] * x) / semi[i]) ** 2 for i in range(3))
    radius = np.sqrt(radius2)
    if settings.irregularity > 0 and min(shape) > 1:
        sigma = np.maximum(0.35 * diameter_mm / spacing, 0.5)
        radius = radius * (1.0 + settings.irregularity * smooth_noise(radius.shape, tuple(sigma), rng))
    return radius


def _blob_box(centre: np.ndarray, diameter_mm: float, spacing: np.ndarray, grid: tuple[int, ...], settings: PathologySettings) -> tuple[slice, ...]:
    half = np.ceil(0.5 * diameter_mm * settings.elongation * (1.0 + 2.0 * settings.irregularity) / spacing) + 1
    return tuple(slice(max(int(c - h), 0), min(int(c + h) + 1, n)) for c, h, n in zip(centre, half, grid))


def _paint_blob(tissue, organs, centre, diameter_mm, spacing, rng, settings, core_tissue, centre_tissue, host, outside) -> None:
    """Paint an irregular blob: voxels of organ ``host`` and, if ``outside``, displaceable background voxels."""
    box = _blob_box(centre, diameter_mm, spacing, organs.shape, settings)
    local_centre = tuple(int(c - s.start) for c, s in zip(centre, box))
    radius = _blob(tuple(s.stop - s.start for s in box), np.array(local_centre), diameter_mm, spacing, rng, settings)
    pieces, _ = ndi.label(radius <= 1.0)
    blob = pieces == pieces[local_centre]
    sub_organs, sub_tissue = organs[box], tissue[box]
    inside = sub_organs == host if host else np.zeros(blob.shape, dtype=bool)
    painted = blob & inside
    if outside:
        painted = _reachable(blob & (inside | ((sub_organs == 0) & np.isin(sub_tissue, DISPLACEABLE))), inside, local_centre)
    sub_tissue[painted] = TISSUE_INDEX[core_tissue]
    if centre_tissue is not None:
        sub_tissue[painted & (radius <= rng.uniform(0.4, 0.8))] = TISSUE_INDEX[centre_tissue]


def _reachable(region: np.ndarray, seeds: np.ndarray, centre: tuple[int, ...]) -> np.ndarray:
    """The parts of ``region`` connected to ``seeds`` (or, without seeds in it, to ``centre``, else its largest part).

    Keeps a mass on the host's side of muscle, bone and other organs: it never jumps through the body wall.
    """
    pieces, count = ndi.label(region)
    if count == 0:
        return region
    keep = np.unique(pieces[seeds & region])
    if not keep.size:
        keep = [pieces[centre]] if pieces[centre] else [int(np.bincount(pieces.ravel())[1:].argmax()) + 1]
    return np.isin(pieces, keep) & region


def _depth(mask: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the outside (mm) on a grid subsampled to ~3 mm, and the subsampling steps."""
    step = np.maximum(np.round(3.0 / spacing), 1).astype(int)
    coarse = np.pad(mask[:: step[0], :: step[1], :: step[2]], 1)
    return ndi.distance_transform_edt(coarse, sampling=spacing * step)[1:-1, 1:-1, 1:-1], step


def _add_lesions(tissue, organs, label, box, spacing, rng, settings: PathologySettings) -> None:
    """One lesion up to ``lesion_diameter_mm`` or many small ones (metastases), each clipped to fit the organ."""
    mask = organs[box] == label
    depth, step = _depth(mask, spacing)
    if depth.max() <= 0:
        return
    many = rng.uniform() < settings.many_lesions_probability
    count = int(rng.integers(settings.many_lesions_count[0], settings.many_lesions_count[1] + 1)) if many else 1
    low, high = settings.many_lesions_diameter_mm if many else settings.lesion_diameter_mm
    weights = np.asarray(settings.lesion_kind_weights) / sum(settings.lesion_kind_weights)
    kind = list(LESION_KINDS)[rng.choice(len(LESION_KINDS), p=weights)]
    offset = np.array([s.start for s in box])
    for _ in range(count):
        diameter = min(_log_uniform(low, high, rng), 1.8 * float(depth.max()))
        inside = np.argwhere(depth >= 0.3 * diameter)
        centre = offset + inside[rng.integers(len(inside))] * step + rng.integers(0, step)
        centre = np.minimum(centre, np.array(organs.shape) - 1)
        _paint_blob(tissue, organs, centre, diameter, spacing, rng, settings, *LESION_KINDS[kind], host=label, outside=False)
        if many and rng.uniform() < 0.2:
            kind = list(LESION_KINDS)[rng.choice(len(LESION_KINDS), p=weights)]


def _add_mass(tissue, organs, boxes, spacing, rng, settings: PathologySettings) -> None:
    """An exophytic mass bulging out of a host organ, or a retroperitoneal mass beside the aorta.

    The retroperitoneal mass is placed to one side of the aorta along x and a little towards +y (posterior in
    the LPS-aligned axial grids synthesis uses).
    """
    aorta = ORGAN_BY_KEY["aorta"].label
    hosts = [h for h in settings.mass_hosts if boxes[(aorta if h == "retroperitoneum" else ORGAN_BY_KEY[h].label) - 1] is not None]
    if not hosts:
        return
    host = hosts[rng.integers(len(hosts))]
    diameter = _log_uniform(*settings.mass_diameter_mm, rng)
    core = "mass" if rng.uniform() < 0.7 else "lesion_hyper"
    necrotic = "necrosis" if diameter > 50.0 and rng.uniform() < 0.5 else None
    label = aorta if host == "retroperitoneum" else ORGAN_BY_KEY[host].label
    box = boxes[label - 1]
    points = np.argwhere(organs[box] == label) + [s.start for s in box]
    anchor = points[rng.integers(len(points))]
    if host == "retroperitoneum":
        side = rng.choice([-1.0, 1.0])
        centre = anchor + np.array([0.0, rng.uniform(0.0, 20.0), side * (0.5 * diameter + rng.uniform(10.0, 30.0))]) / spacing
    else:
        outward = (anchor - points.mean(axis=0)) * spacing
        outward /= max(float(np.linalg.norm(outward)), 1e-6)
        surface = points[np.argmax((points * spacing) @ outward)]
        centre = surface + outward * rng.uniform(0.0, 0.4) * diameter / spacing
    centre = np.clip(np.round(centre), 0, np.array(organs.shape) - 1).astype(int)
    host_label = 0 if host == "retroperitoneum" else label
    _paint_blob(tissue, organs, centre, diameter, spacing, rng, settings, core, necrotic, host=host_label, outside=True)


def _distance_mm(mask: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from each True voxel of ``mask`` to the nearest False one, computed at ~3 mm and interpolated."""
    step = np.maximum(np.round(3.0 / spacing), 1).astype(int)
    if (step == 1).all():
        return ndi.distance_transform_edt(mask, sampling=spacing).astype(np.float32)
    full = tuple(int(np.ceil((n - 1) / s)) * s + 1 for n, s in zip(mask.shape, step))
    padded = np.pad(mask, [(0, f - n) for f, n in zip(full, mask.shape)], mode="edge")
    coarse = ndi.distance_transform_edt(padded[:: step[0], :: step[1], :: step[2]], sampling=spacing * step)
    return upsample(coarse.astype(np.float32), full)[: mask.shape[0], : mask.shape[1], : mask.shape[2]]


def _border_tissue(sub_tissue: np.ndarray, mask: np.ndarray) -> int:
    """The commonest tissue on the surface of ``mask`` (the cortex of a kidney, the parenchyma of a liver)."""
    border = mask & ~ndi.binary_erosion(mask)
    return int(np.bincount(sub_tissue[border if border.any() else mask]).argmax())


def _grow(tissue, organs, label, box, factor, spacing, rng) -> bool:
    """Grow organ ``label`` to ``factor`` times its volume into connected displaceable background only; True if it grew."""
    extent_mm = np.array([s.stop - s.start for s in box]) * spacing
    pad = np.ceil(((np.cbrt(factor) - 1.0) * 0.75 * extent_mm.max() + 10.0) / spacing)
    big = _padded(box, pad, organs.shape)
    sub_organs, sub_tissue = organs[big], tissue[big]
    mask = sub_organs == label
    free = (sub_organs == 0) & np.isin(sub_tissue, DISPLACEABLE)
    components, _ = ndi.label(free | mask)
    reachable = free & np.isin(components, np.unique(components[mask]))
    wanted = int(round(mask.sum() * (factor - 1.0)))
    if wanted <= 0 or not reachable.any():
        return False
    distance = _distance_mm(~mask, spacing)
    distance += 3.0 * smooth_noise(mask.shape, tuple(np.maximum(15.0 / spacing, 0.5)), rng)
    candidates = np.flatnonzero(reachable)
    if wanted < len(candidates):
        candidates = candidates[np.argpartition(distance.ravel()[candidates], wanted - 1)[:wanted]]
    grown = np.zeros(mask.shape, dtype=bool)
    grown.ravel()[candidates] = True
    sub_tissue[grown] = _border_tissue(sub_tissue, mask)
    sub_organs[grown] = label
    return True


def _shrink(tissue, organs, label, box, factor, spacing, rng) -> None:
    """Shrink organ ``label`` to ``factor`` times its volume by turning its outer layer into fat."""
    big = _padded(box, np.ones(3), organs.shape)
    sub_organs, sub_tissue = organs[big], tissue[big]
    mask = sub_organs == label
    outer = _border_tissue(sub_tissue, mask)
    depth = _distance_mm(mask, spacing)
    depth += 1.5 * smooth_noise(mask.shape, tuple(np.maximum(10.0 / spacing, 0.5)), rng)
    values = depth[mask]
    cut = float(np.quantile(values, 1.0 - factor))
    removed = mask & (depth <= cut)
    sub_organs[removed] = 0
    sub_tissue[removed] = TISSUE_INDEX["fat"]
    sub_tissue[mask & ~removed & (depth <= cut + 3.0)] = outer


def _remove(tissue, organs, label, box, spacing, rng) -> None:
    """Surgical absence: the organ's voxels become background fat, scar tissue or bowel filling the empty fossa."""
    sub = organs[box] == label
    organs[box][sub] = 0
    filling = rng.choice(["fat", "soft_tissue", "bowel"], p=[0.5, 0.2, 0.3])
    if filling != "bowel":
        tissue[box][sub] = TISSUE_INDEX[filling]
        return
    loops = np.abs(smooth_noise(sub.shape, tuple(np.maximum(6.0 / spacing, 0.5)), rng))
    tissue[box][sub] = np.where(loops[sub] < 0.4, TISSUE_INDEX["bowel_wall"], TISSUE_INDEX["bowel_contents"])
