"""Label-driven synthetic CT from real anatomy: deform a template labelmap and render it in any phase.

A template is prepared once (``prepare_template``: compartments such as bone marrow, kidney medulla,
stomach/bowel contents, and the distance from the body core that the body-wall layers are cut from),
then every call of ``synthesize_from_labels`` draws a new field of view (``field_of_view``), body habitus,
deformation, organ sizes, HU per tissue for the phase (with oral contrast or, in the domain-randomised style,
random HU: ``scan_styles``), texture, gas, bias, blur and an acquisition protocol (``acquisition``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import scipy.ndimage as ndi

from ..errors import DccsegError
from ..inference.body_size import whole_in_z
from ..volume import Volume
from ..organs import ORGAN_BY_KEY
from .acquisition import AcquisitionSettings, acquire
from .deformation import AnatomySettings, random_sampling_coordinates, warp_labels
from .field_of_view import FieldOfViewSettings, choose_z_range, crop_in_plane
from .hu_table import TISSUE_INDEX, TISSUES, ScanHU, sample_scan, sample_timed_scan
from .organ_swap import donor_shape
from .pathology import PathologySettings, add_pathology
from .render import add_gas, render_ct, smooth_noise
from .scan_styles import randomise_scan, with_oral_contrast
from .structures import HOLLOW, organ_label, structure_tissue

STYLES = ("realistic", "random")
"""``realistic``: HU from the phase table; ``random``: random HU per tissue (SynthSeg-style domain randomisation)."""
ORAL_CONTRAST = 0.2
SWAPPABLE = ("spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas", "adrenal_gland_right", "adrenal_gland_left")
"""Organs whose shape ``AnatomySettings.organ_swap`` may take from another body; not the tubes, whose ends must meet their neighbours'."""
INNER_MIN_DEPTH_MM = {"kidney_medulla": 6.0, "bone_cancellous": 2.5}
"""How deep inside its structure an inner compartment begins (mm); 3.5 mm for the contents of hollow organs."""

LAYERS = ("visceral_fat", "visceral_soft", "wall_muscle", "subcutaneous_fat", "skin")
_LAYER_TISSUE = {"visceral_fat": "fat", "visceral_soft": "soft_tissue", "wall_muscle": "muscle", "subcutaneous_fat": "fat", "skin": "soft_tissue"}


@dataclass(frozen=True)
class PreparedTemplate:
    """A template ready for fast repeated synthesis.

    ``codes`` indexes ``code_tissue`` / ``code_organ`` (code 0 is air outside the body); the body-wall
    layer codes are filled in per sample from ``outside_mm``, the distance outside the body core. ``inner_code``
    maps a structure's label to the code of its inner compartment (kidney medulla, bone marrow, stomach contents).
    """

    geometry: Volume
    codes: np.ndarray
    code_tissue: np.ndarray
    code_organ: np.ndarray
    layer_code: dict[str, int]
    outside_mm: np.ndarray
    core: np.ndarray
    organ_z: tuple[int, int]
    liver_z: tuple[int, int] | None
    inner_code: dict[int, int]


def _interior_depth(mask: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """Distance (mm) from each voxel of ``mask`` to its outside, computed inside the mask's bounding box."""
    depth = np.zeros(mask.shape, dtype=np.float32)
    box = ndi.find_objects(mask.astype(np.uint8))
    if box and box[0] is not None:
        padded = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box[0])
        depth[padded] = ndi.distance_transform_edt(mask[padded], sampling=spacing_zyx)
    return depth


def interior(mask: np.ndarray, spacing_zyx: np.ndarray, inner_tissue: str) -> np.ndarray:
    """The part of a structure's ``mask`` deep enough inside it to be rendered as its ``inner_tissue`` (medulla, marrow, contents)."""
    return mask & (_interior_depth(mask, spacing_zyx) > INNER_MIN_DEPTH_MM.get(inner_tissue, 3.5))


def prepare_template(labels: Volume, names: Sequence[str]) -> PreparedTemplate:
    """Split structures into rendered compartments and compute the body core (union of structures, closed per slice)."""
    if len(names) < int(labels.array.max()):
        raise DccsegError(f"the template has label {int(labels.array.max())} but only {len(names)} structure names; give a names list for every label")
    spacing = np.asarray(labels.spacing[::-1], dtype=np.float64)
    tissue_of: list[str] = ["air"] + [structure_tissue(n) for n in names]
    organ_of: list[int] = [0] + [organ_label(n) for n in names]
    codes = labels.array.astype(np.uint8 if 2 * len(names) + len(LAYERS) < 256 else np.int16, copy=True)

    def new_code(tissue: str, organ: int) -> int:
        tissue_of.append(tissue)
        organ_of.append(organ)
        return len(tissue_of) - 1

    inner_code = {}
    for label, name in enumerate(names, start=1):
        mask = labels.array == label
        if not mask.any():
            continue
        if name in HOLLOW or tissue_of[label] in ("bone_cortical", "kidney_cortex"):
            inner_tissue = HOLLOW[name][1] if name in HOLLOW else ("bone_cancellous" if tissue_of[label] == "bone_cortical" else "kidney_medulla")
            inner_code[label] = new_code(inner_tissue, organ_of[label])
            codes[interior(mask, spacing, inner_tissue)] = inner_code[label]
    layer_code = {layer: new_code(_LAYER_TISSUE[layer], 0) for layer in LAYERS}
    union = labels.array > 0
    core = ndi.gaussian_filter(union.astype(np.float32), 9.0 / spacing) > 0.2
    for z in range(core.shape[0]):
        core[z] = ndi.binary_fill_holes(core[z])
    outside = ndi.distance_transform_edt(~core, sampling=spacing).astype(np.float32)
    organ_map = np.array(organ_of, np.uint8)[codes]
    organ_z = _z_extent(organ_map > 0) or (0, codes.shape[0])
    liver_z = _z_extent(organ_map == ORGAN_BY_KEY["liver"].label)
    tissue_lut = np.array([TISSUE_INDEX[t] for t in tissue_of], np.uint8)
    return PreparedTemplate(labels, codes, tissue_lut, np.array(organ_of, np.uint8), layer_code, outside, core, organ_z, liver_z, inner_code)


def _z_extent(mask: np.ndarray) -> tuple[int, int] | None:
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    return (int(slices[0]), int(slices[-1]) + 1) if slices.size else None


def _body_layers(t: PreparedTemplate, zs: slice, rng: np.random.Generator) -> np.ndarray:
    """Template codes of the z range ``zs`` with a random body wall (muscle, fat, skin) and visceral fat."""
    codes = t.codes[zs].copy()
    outside = t.outside_mm[zs]
    spacing = np.asarray(t.geometry.spacing[::-1])
    wobble = smooth_noise(outside.shape, 40.0 / spacing, rng)
    muscle = rng.uniform(5.0, 15.0)
    fat = np.clip(rng.uniform(6.0, 45.0) * (1 + 0.35 * wobble), 3.0, None)
    empty = codes == 0
    codes[empty & (outside > 0) & (outside <= muscle)] = t.layer_code["wall_muscle"]
    codes[empty & (outside > muscle) & (outside <= muscle + fat)] = t.layer_code["subcutaneous_fat"]
    codes[empty & (outside > muscle + fat) & (outside <= muscle + fat + 2.5)] = t.layer_code["skin"]
    visceral = empty & t.core[zs]
    soft = smooth_noise(outside.shape, 6.0 / spacing, rng) > rng.uniform(-0.6, 0.6)
    codes[visceral] = np.where(soft[visceral], t.layer_code["visceral_soft"], t.layer_code["visceral_fat"])
    return codes


_PREPARED: dict[tuple, PreparedTemplate] = {}
_PREPARED_MAX = 8


def prepared(labels: Volume, names: Sequence[str]) -> PreparedTemplate:
    """``prepare_template`` with a small in-memory cache keyed by the labelmap's content and geometry."""
    array = labels.array
    key = (array.shape, str(array.dtype), hash(array[:, ::5, ::5].tobytes()), labels.spacing, labels.origin, labels.direction, tuple(names))
    if key not in _PREPARED:
        if len(_PREPARED) >= _PREPARED_MAX:
            _PREPARED.pop(next(iter(_PREPARED)))
        _PREPARED[key] = prepare_template(labels, names)
    return _PREPARED[key]


def _organ_blobs(codes: np.ndarray, code_organ: np.ndarray, spacing: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """(centre in mm from the grid centre, radius mm) of every organ present, for local size jitter."""
    organs = code_organ[codes]
    blobs = []
    centre = (np.asarray(codes.shape) - 1) / 2.0
    for label, box in enumerate(ndi.find_objects(organs), start=1):
        if box is None:
            continue
        lo = np.array([s.start for s in box])
        hi = np.array([s.stop for s in box])
        extent = (hi - lo) * spacing
        blobs.append((((lo + hi - 1) / 2.0 - centre) * spacing, float(max(np.cbrt(np.prod(extent)) / 2.0, 6.0))))
    return blobs


def swap_organs(template: PreparedTemplate, donors: Sequence[PreparedTemplate], rng: np.random.Generator, probability: float) -> PreparedTemplate:
    """``template`` with each organ of ``SWAPPABLE``, with ``probability``, shaped as the same organ of a random one of ``donors``.

    The donor's shape takes the host organ's size and place (``donor_shape``) and fills only the host organ's voxels and
    unlabelled voxels inside the host's body core; host voxels it leaves become visceral fat. Organs cut by either grid's
    z range keep the host's shape.
    """
    codes = template.codes.copy()
    spacing = np.asarray(template.geometry.spacing[::-1], dtype=np.float64)
    donor_organs = [donor.code_organ[donor.codes] for donor in donors]
    for key in SWAPPABLE:
        if rng.uniform() >= probability:
            continue
        organ = ORGAN_BY_KEY[key].label
        host_mask = template.code_organ[codes] == organ
        whole = [k for k, organs in enumerate(donor_organs) if whole_in_z(organs == organ)]
        if not (whole and whole_in_z(host_mask)):
            continue
        chosen = whole[int(rng.integers(len(whole)))]
        donor, donor_mask = donors[chosen], donor_organs[chosen] == organ
        label = int(np.flatnonzero(template.code_organ == organ)[0])  # the organ's own structure: organs come before their parts and compartments
        shape = donor_shape(template.geometry, host_mask, donor.geometry, donor_mask)
        codes[host_mask] = 0
        placed = shape & (codes == 0) & template.core
        codes[placed] = label
        if label in template.inner_code:
            inner = template.inner_code[label]
            codes[interior(placed, spacing, TISSUES[int(template.code_tissue[inner])].name)] = inner
    organ_map = template.code_organ[codes]
    return replace(template, codes=codes, organ_z=_z_extent(organ_map > 0) or template.organ_z, liver_z=_z_extent(organ_map == ORGAN_BY_KEY["liver"].label))


def synthesize_from_labels(
    template: Volume | PreparedTemplate,
    structure_names: Sequence[str] | None = None,
    phase: str | None = "portal-venous",
    seed: int = 0,
    output_spacing: tuple[float, float, float] | None = None,
    deform: bool = True,
    style: str = "realistic",
    field_of_view: FieldOfViewSettings | None = FieldOfViewSettings(),
    acquisition: AcquisitionSettings = AcquisitionSettings(),
    pathology: PathologySettings | None = None,
    anatomy: AnatomySettings = AnatomySettings(),
    donors: Sequence[PreparedTemplate] = (),
) -> tuple[Volume, Volume]:
    """One synthetic CT of ``phase`` from template anatomy; returns (CT in HU, organ labels 1..13).

    ``template`` is a structure labelmap (with ``structure_names``; prepared once and cached) or a
    ``prepare_template`` result. ``phase`` None draws a continuous timing between the four phases.
    ``output_spacing`` (x, y, z mm) defaults to the template's. ``field_of_view`` None keeps the organs' whole
    z range and the whole axial plane; ``style`` is one of ``STYLES``; ``pathology`` adds lesions, masses and
    enlarged, shrunken or missing organs (``dccseg.phantoms.pathology``); ``anatomy`` sets how far the body is deformed
    and, with ``donors`` (other prepared bodies), how often an organ takes the shape of theirs (``swap_organs``).
    """
    if style not in STYLES:
        raise DccsegError(f"unknown synthesis style '{style}'; use one of {', '.join(STYLES)}")
    template = template if isinstance(template, PreparedTemplate) else prepared(template, structure_names or [])
    if anatomy.organ_swap > 0 and donors:
        template = swap_organs(template, donors, np.random.default_rng([seed, 7]), anatomy.organ_swap)  # its own stream: every other draw stays the seed's
    rng = np.random.default_rng(seed)
    geometry = template.geometry
    slice_mm = float(geometry.spacing[2])
    if field_of_view is None:
        zs = slice(*template.organ_z)
    else:
        zs = choose_z_range(template.codes.shape[0], template.organ_z, template.liver_z, slice_mm, rng, field_of_view)
    codes = _body_layers(template, zs, rng)
    spacing = np.asarray(geometry.spacing[::-1], dtype=np.float64)
    out_spacing = spacing if output_spacing is None else np.asarray(output_spacing[::-1], dtype=np.float64)
    out_shape = tuple(max(2, int(round(n * s / o))) for n, s, o in zip(codes.shape, spacing, out_spacing))
    if deform:
        coords = random_sampling_coordinates(codes.shape, spacing, out_shape, out_spacing, rng, _organ_blobs(codes, template.code_organ, spacing), anatomy)
        codes = warp_labels(codes, coords)
    elif out_shape != codes.shape:
        codes = warp_labels(codes, np.indices(out_shape, dtype=np.float32) * (out_spacing / spacing)[:, None, None, None])
    tissue = add_gas(template.code_tissue[codes], rng, rng.uniform(0.05, 0.3))
    labels = template.code_organ[codes]
    if pathology is not None:
        tissue, labels = add_pathology(tissue, labels, tuple(out_spacing), rng, pathology)
    scan: ScanHU = sample_timed_scan(rng) if phase is None else sample_scan(phase, rng)
    if rng.uniform() < ORAL_CONTRAST:
        scan = with_oral_contrast(scan, rng)
    if style == "random":
        scan = randomise_scan(scan, rng)
    image = acquire(render_ct(tissue, scan, tuple(out_spacing), rng, noise_sd=0.0), out_spacing, rng, acquisition)
    start = (0, 0)
    if field_of_view is not None:
        image, labels, start = crop_in_plane(image, labels, out_spacing, rng, field_of_view)
    out = _output_geometry(geometry, zs.start, zs.stop - zs.start, codes.shape, out_spacing, start, image.shape)
    return out.with_array(image), out.with_array(labels)


def _output_geometry(source: Volume, z0: int, keep: int, out_shape: tuple[int, int, int], out_spacing_zyx: np.ndarray,
                     start_yx: tuple[int, int] = (0, 0), crop_shape: tuple[int, int, int] | None = None) -> Volume:
    """The output grid: same axes and centre as the z-cropped source grid, ``out_spacing`` voxels, then cut in-plane at ``start_yx``."""
    matrix = np.asarray(source.direction).reshape(3, 3)
    src_size = np.array([source.shape[2], source.shape[1], keep], dtype=np.float64)
    src_spacing = np.asarray(source.spacing)
    crop_origin = np.asarray(source.origin) + matrix @ (np.array([0, 0, z0]) * src_spacing)
    centre = crop_origin + matrix @ ((src_size - 1) / 2 * src_spacing)
    spacing_xyz = out_spacing_zyx[::-1]
    origin = centre - matrix @ ((np.asarray(out_shape[::-1], dtype=np.float64) - 1) / 2 * spacing_xyz)
    origin = origin + matrix @ (np.array([start_yx[1], start_yx[0], 0]) * spacing_xyz)
    shape = crop_shape or out_shape
    return Volume(np.zeros(shape, np.uint8), tuple(float(s) for s in spacing_xyz), tuple(float(o) for o in origin), source.direction)
