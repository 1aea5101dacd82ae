"""Training cases of the release trainer, made in worker processes straight on the working grids.

A case is a synthetic CT of one training body (``BODY_SPLIT["train"]``; a test body is never drawn) rendered at
the working spacing, a share of them with pathology (as ``phantom synth --pathology``), and put in canonical
orientation, or the bundled real non-contrast CT moved to a random phase. Its image is normalised as inference
normalises a whole volume. A coarse case carries organ voxels for foreground crops; a refine case carries a
degraded-ground-truth prior (as ``dccseg.training.priors``) and patch centres drawn in it. Nothing here needs
SimpleITK: the real CT is read with nibabel and grids change with scipy.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

from dccseg.inference.settings import InferenceSettings
from dccseg.io.nifti_direction import read_nifti_volume
from dccseg.patches import training_centers
from dccseg.phantoms import ANATOMY_PRESETS, CONTRAST_PHASES, PathologySettings
from dccseg.phantoms.synthesis import PreparedTemplate, prepared, synthesize_from_labels
from dccseg.phantoms.templates import load_template
from dccseg.preprocess import normalize_ct, to_canonical
from dccseg.training.augment import random_phase
from dccseg.training.configs import Preprocessing
from dccseg.training.priors import degraded_prior
from dccseg.volume import Volume

KINDS = ("coarse", "refine")
REAL_CASE = "real-example-ct"
REAL_PHASE = "non-contrast"


@dataclass(frozen=True)
class CaseRecipe:
    """How workers make cases (picklable, sent to every worker)."""

    preprocessing: Preprocessing
    bodies: tuple[str, ...]
    template_step: int = 1  # >1 renders from a coarser copy of each template (tests)
    real_fraction: float = 0.06
    real_phase_change: float = 0.75
    random_style: float = 0.25
    continuous_timing: float = 0.3  # share of synthetic cases in a timing between the four phases
    pathology: float = 0.3  # share of synthetic cases with lesions, masses, enlarged, shrunken or missing organs
    anatomy: str = "typical"  # how far bodies are deformed: a key of ANATOMY_PRESETS
    points_per_organ: int = 64
    patches_per_organ: int = 24


@dataclass
class ReleaseCase:
    """One case on its working grid; ``points`` are (organ, z, y, x) rows: organ voxels or patch centres."""

    id: str
    kind: str
    source: str
    phase: str
    style: str
    image: np.ndarray  # float16, normalised to [-1, 1]
    labels: np.ndarray  # uint8
    prior: np.ndarray | None  # uint8 (refine cases)
    points: np.ndarray  # int64 (N, 4)
    pathology: bool = False


def source_files(bodies: tuple[str, ...]) -> list[Path]:
    """The bundled files every case is made from: the bodies' templates and the real CT with its labels."""
    data = Path(str(resources.files("dccseg") / "data"))
    real = [data / "totalseg_example" / name for name in ("example_ct.nii.gz", "example_ct_organs.nii.gz")]
    return [data / "templates" / f"{body}.npz" for body in bodies] + real


def rescale(array: np.ndarray, spacing_zyx: np.ndarray, new_spacing_zyx: np.ndarray, shape: tuple[int, ...], is_label: bool) -> np.ndarray:
    """``array`` on a grid of the same origin and axes with another spacing (linear, or nearest for labels)."""
    scale = np.asarray(new_spacing_zyx, dtype=np.float64) / np.asarray(spacing_zyx, dtype=np.float64)
    return ndi.affine_transform(array, scale, output_shape=tuple(shape), order=0 if is_label else 1, mode="nearest")


def on_spacing(volume: Volume, spacing_xyz: tuple[float, float, float], is_label: bool) -> Volume:
    """``dccseg.preprocess.resample`` without SimpleITK: same origin and axes, the size rounded half up."""
    shape = tuple(max(1, int(np.floor(n * old / new + 0.5))) for n, old, new in zip(volume.shape, volume.spacing[::-1], spacing_xyz[::-1]))
    array = rescale(volume.array, np.asarray(volume.spacing[::-1]), np.asarray(spacing_xyz[::-1]), shape, is_label)
    return Volume(array, tuple(float(s) for s in spacing_xyz), volume.origin, volume.direction)  # type: ignore[arg-type]


def coarser_template(labels: Volume, step: int) -> Volume:
    """Every ``step``-th voxel of a template labelmap (same origin and axes): cheaper to prepare and render."""
    if step <= 1:
        return labels
    spacing = tuple(s * step for s in labels.spacing)
    return Volume(np.ascontiguousarray(labels.array[::step, ::step, ::step]), spacing, labels.origin, labels.direction)  # type: ignore[arg-type]


class CaseMaker:
    """Makes cases for one worker; templates are prepared on first use and kept."""

    def __init__(self, recipe: CaseRecipe) -> None:
        self.recipe = recipe
        self.settings = InferenceSettings.from_card(recipe.preprocessing.to_card())
        self._templates: dict[str, PreparedTemplate] = {}
        self._real: tuple[Volume, Volume] | None = None

    def template(self, body: str) -> PreparedTemplate:
        if body not in self._templates:
            labels, names = load_template(body)
            self._templates[body] = prepared(coarser_template(labels, self.recipe.template_step), names)
        return self._templates[body]

    def working_spacing(self, kind: str, rng: np.random.Generator) -> tuple[float, float, float]:
        """Coarse spacing, or the refine grid of a scan whose native slices are 0.6-5 mm (as inference picks it)."""
        if kind == "coarse":
            return self.recipe.preprocessing.coarse_spacing
        return self.settings.refine_grid_spacing(float(rng.uniform(0.6, 5.0)))

    def make(self, kind: str, bodies: tuple[str, ...], seed: tuple[int, ...], case_id: str) -> ReleaseCase:
        """One case of ``kind`` from a random one of ``bodies`` (or, now and then, the real CT)."""
        rng = np.random.default_rng(seed)
        spacing = self.working_spacing(kind, rng)
        findings = False
        if rng.uniform() < self.recipe.real_fraction:
            source, style = REAL_CASE, "real"
            original, labels = self.real_on(spacing)
            ct = random_phase(original, labels, REAL_PHASE, rng, self.recipe.real_phase_change)
            phase = REAL_PHASE if ct is original else "simulated"
        else:
            source = str(rng.choice(bodies))
            style = "random" if rng.uniform() < self.recipe.random_style else "realistic"
            phase = "timing" if rng.uniform() < self.recipe.continuous_timing else str(rng.choice(CONTRAST_PHASES))
            findings = bool(rng.uniform() < self.recipe.pathology)
            ct, labels = self.synthetic(source, phase, spacing, style, int(rng.integers(2**31)), PathologySettings() if findings else None, bodies)
        image = normalize_ct(ct.array, self.settings.intensity).astype(np.float16)
        label_array = np.ascontiguousarray(labels.array, dtype=np.uint8)
        if kind == "coarse":
            points = organ_points(label_array, self.recipe.points_per_organ, rng)
            return ReleaseCase(case_id, kind, source, phase, style, image, label_array, None, points, findings)
        prior = self.prior(labels, rng)
        return ReleaseCase(case_id, kind, source, phase, style, image, label_array, prior, patch_centres(prior, self.recipe.patches_per_organ, rng), findings)

    def synthetic(self, body: str, phase: str, spacing_xyz: tuple[float, float, float], style: str, seed: int,
                  pathology: PathologySettings | None = None, donor_bodies: tuple[str, ...] = ()) -> tuple[Volume, Volume]:
        """A synthetic CT of ``body`` rendered so that its canonical spacing is ``spacing_xyz``; organs may take the shapes of ``donor_bodies``' (``mixed`` anatomy)."""
        template = self.template(body)
        anatomy = ANATOMY_PRESETS[self.recipe.anatomy]
        donors = [self.template(other) for other in donor_bodies if other != body] if anatomy.organ_swap > 0 else []
        _, transform = to_canonical(template.geometry.with_array(np.broadcast_to(np.uint8(0), template.geometry.shape)))
        native = [0.0, 0.0, 0.0]
        for canonical_axis, input_axis in enumerate(transform.axes):
            native[input_axis] = spacing_xyz[canonical_axis]
        timed = None if phase == "timing" else phase
        ct, labels = synthesize_from_labels(template, phase=timed, seed=seed, output_spacing=tuple(native), style=style, pathology=pathology,  # type: ignore[arg-type]
                                            anatomy=anatomy, donors=donors)
        ct_canonical, transform = to_canonical(ct)
        labels_canonical = ct_canonical.with_array(np.ascontiguousarray(transform.apply(labels.array)))
        return ct_canonical, labels_canonical

    def real_on(self, spacing_xyz: tuple[float, float, float]) -> tuple[Volume, Volume]:
        """The bundled real CT and its organ labels, canonical, on ``spacing_xyz``."""
        if self._real is None:
            folder = resources.files("dccseg") / "data" / "totalseg_example"
            with resources.as_file(folder / "example_ct.nii.gz") as ct_path, resources.as_file(folder / "example_ct_organs.nii.gz") as label_path:
                ct, transform = to_canonical(read_nifti_volume(ct_path))
                labels = ct.with_array(np.ascontiguousarray(transform.apply(read_nifti_volume(label_path).array)).astype(np.uint8))
            self._real = (ct.with_array(ct.array.astype(np.float32)), labels)
        ct, labels = self._real
        return on_spacing(ct, spacing_xyz, is_label=False), on_spacing(labels, spacing_xyz, is_label=True)

    def prior(self, labels: Volume, rng: np.random.Generator) -> np.ndarray:
        """Degraded ground truth made on the coarse grid and brought back to the refine grid (nearest)."""
        coarse = on_spacing(labels, self.recipe.preprocessing.coarse_spacing, is_label=True)
        degraded = degraded_prior(coarse, rng)
        back = rescale(degraded.array, np.asarray(coarse.spacing[::-1]), np.asarray(labels.spacing[::-1]), labels.shape, is_label=True)
        return np.ascontiguousarray(back, dtype=np.uint8)


def organ_points(labels: np.ndarray, per_organ: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``per_organ`` random voxels (organ, z, y, x) of every organ present: centres of foreground crops."""
    flat = np.flatnonzero(labels)
    organs = labels.reshape(-1)[flat]
    rows = []
    for organ in np.unique(organs):
        members = flat[organs == organ]
        picks = rng.choice(members, size=min(per_organ, members.size), replace=False)
        rows.append(np.column_stack([np.full(picks.size, organ), *np.unravel_index(picks, labels.shape)]))
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 4), np.int64)


def patch_centres(prior: np.ndarray, per_organ: int, rng: np.random.Generator) -> np.ndarray:
    """``per_organ`` training centres (organ, z, y, x) in every organ of the prior (``training_centers``)."""
    rows = [np.column_stack([np.full(per_organ, organ), training_centers(prior, int(organ), per_organ, rng)])
            for organ in np.unique(prior) if organ > 0]
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 4), np.int64)
