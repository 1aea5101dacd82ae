"""Checks of one DICOM series before its pixels are read, and the slice grid they allow.

Stops (one line each): a modality other than CT, slices of different sizes or orientations, missing
position tags, two different images at one position, gantry tilt, gaps of more than
``MAX_GAP_SLICES`` slices. Repairs (reported): localizer/scout images and copies of the same file
are dropped; uneven spacing (e.g. one missing slice) is resampled onto a regular grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DccsegError
from .dicom_series import Series, SliceHeader

SAME_POSITION = 0.01
"""Slices closer than this fraction of the slice spacing are at the same position."""
EVEN_TOLERANCE = 0.01
"""Gaps within this fraction of the slice spacing count as even (scanner rounding)."""
MAX_TILT_DEGREES = 0.5
MAX_GAP_SLICES = 3
"""A gap up to this many slice spacings (two missing slices) is interpolated; a longer one is a stop."""
ORIENTATION_TOLERANCE = 1e-3


@dataclass
class SliceGrid:
    """The checked slices (files, and their frames in multi-frame files) in order along their normal, and the regular grid to put them on."""

    files: list[Path]
    frames: list[int | None]
    positions: np.ndarray
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    spacing: tuple[float, float, float]
    notes: list[str] = field(default_factory=list)

    @property
    def is_regular(self) -> bool:
        return len(self.positions) < 2 or self.regular_positions().size == self.positions.size and np.allclose(
            self.regular_positions(), self.positions, atol=EVEN_TOLERANCE * self.spacing[2]
        )

    def regular_positions(self) -> np.ndarray:
        """Slice positions (mm along the normal) of the regular grid from the first to the last slice."""
        count = int(round((self.positions[-1] - self.positions[0]) / self.spacing[2])) + 1
        return self.positions[0] + self.spacing[2] * np.arange(count)


def _stop(series: Series, folder: Path, problem: str, action: str) -> DccsegError:
    return DccsegError(f"DICOM series {series.uid} in {folder}: {problem}; {action}")


def _drop_localizers_and_copies(series: Series, notes: list[str]) -> list[SliceHeader]:
    images = series.images
    if len(images) < len(series.slices):
        notes.append(f"dropped {len(series.slices) - len(images)} localizer/scout image(s) of the series")
    unique: dict[tuple[str, int | None], SliceHeader] = {}
    for header in images:
        unique.setdefault((header.tags.get("sop_uid") or str(header.path), header.frame), header)
    if len(unique) < len(images):
        notes.append(f"ignored {len(images) - len(unique)} duplicate file(s) (same SOP Instance UID as another file)")
    return list(unique.values())


def _check_uniform(series: Series, folder: Path, images: list[SliceHeader]) -> tuple[np.ndarray, np.ndarray]:
    """Modality, size and orientation shared by all slices; returns (orientation cosines, pixel spacing)."""
    modality = series.tag("modality").upper()
    if modality and modality != "CT":
        raise _stop(series, folder, f"its modality is {modality}, not CT", "DCC Segment needs CT: pick the CT series with --series, or load a CT")
    sizes = sorted({(h.tags.get("columns", "?"), h.tags.get("rows", "?")) for h in images})
    if len(sizes) > 1:
        shown = ", ".join(f"{c}x{r}" for c, r in sizes[:3])
        raise _stop(series, folder, f"its slices have different sizes ({shown})", "export one reconstruction of the series, or split it into folders")
    cosines = [h.numbers("orientation") for h in images]
    if any(c is None or c.size != 6 for c in cosines) or any(h.numbers("position") is None for h in images):
        raise _stop(series, folder, "some slices lack their position or orientation tags", "re-export the series from the scanner or PACS")
    if any(not np.allclose(c, cosines[0], atol=ORIENTATION_TOLERANCE) for c in cosines):
        raise _stop(series, folder, "its slices have different orientations", "export one reconstruction of the series, or split it into folders")
    rescales = {(h.tags.get("rescale_slope"), h.tags.get("rescale_intercept")) for h in images if h.frame is not None}
    if len(rescales) > 1:
        raise _stop(series, folder, "the frames of its multi-frame file have different rescale slopes or intercepts", "export the series as single-frame images")
    spacing = images[0].numbers("pixel_spacing")
    if spacing is None or spacing.size != 2 or np.any(spacing <= 0):
        raise _stop(series, folder, "its Pixel Spacing tag is missing or invalid", "re-export the series from the scanner or PACS")
    return cosines[0], spacing


def _check_stacking(series: Series, folder: Path, points: np.ndarray, normal: np.ndarray, spacing: float) -> None:
    """Different images at one position, and gantry tilt (slices shifted sideways as they advance)."""
    along = points @ normal
    if np.any(np.diff(along) < SAME_POSITION * spacing):
        raise _stop(
            series, folder, "two different images lie at the same position (two reconstructions, echoes or time points mixed in one series)",
            "export one reconstruction of the series",
        )
    step = points[-1] - points[0]
    sideways = np.linalg.norm(step - (step @ normal) * normal)
    tilt = float(np.degrees(np.arctan2(sideways, abs(step @ normal))))
    if tilt > MAX_TILT_DEGREES:
        raise _stop(
            series, folder, f"it was acquired with a gantry tilt of {tilt:.1f} degrees",
            "resample it to a regular grid first (3D Slicer: DICOM module, acquisition geometry regularization) and segment the saved volume",
        )


def check_series(series: Series, folder: Path) -> SliceGrid:
    """Check a series and return its slices in order with the regular grid they go on (or raise a DccsegError)."""
    notes: list[str] = []
    images = _drop_localizers_and_copies(series, notes)
    if not images:
        raise _stop(series, folder, "it holds only localizer/scout images", "pick the axial CT series with --series")
    cosines, pixel_spacing = _check_uniform(series, folder, images)
    normal = np.cross(cosines[:3], cosines[3:])
    normal /= np.linalg.norm(normal)
    points = np.array([h.numbers("position") for h in images])
    order = np.argsort(points @ normal, kind="stable")
    images, points = [images[i] for i in order], points[order]
    along = points @ normal
    gaps = np.diff(along)
    slice_spacing = float(np.median(gaps)) if gaps.size else 1.0
    if gaps.size:
        _check_stacking(series, folder, points, normal, slice_spacing)
        if gaps.min() < 0.5 * slice_spacing:
            raise _stop(
                series, folder, f"some slices are only {gaps.min():.2f} mm apart where most are {slice_spacing:.2f} mm (reconstructions mixed in one series)",
                "export one reconstruction of the series",
            )
        slice_spacing = float(gaps.min())
        if gaps.max() > MAX_GAP_SLICES * slice_spacing * (1 + EVEN_TOLERANCE):
            where = int(np.argmax(gaps))
            raise _stop(
                series, folder, f"{gaps.max():.1f} mm lie between slices {where + 1} and {where + 2} where the others are {slice_spacing:.2f} mm apart "
                f"(about {int(round(gaps.max() / slice_spacing)) - 1} slices missing)", "copy the complete series again from the scanner or PACS",
            )
    direction = np.stack([cosines[:3], cosines[3:], normal], axis=1)
    grid = SliceGrid(
        files=[h.path for h in images], frames=[h.frame for h in images], positions=along, origin=tuple(float(v) for v in points[0]),
        direction=tuple(float(v) for v in direction.ravel()), spacing=(float(pixel_spacing[1]), float(pixel_spacing[0]), slice_spacing), notes=notes,
    )
    if not grid.is_regular:
        missing = grid.regular_positions().size - grid.positions.size
        cause = f"{missing} slice(s) missing" if missing > 0 else "uneven slice spacing"
        notes.append(
            f"slice spacing is uneven ({gaps.min():.2f} to {gaps.max():.2f} mm, {cause}): resampled by linear interpolation onto a regular "
            f"{slice_spacing:.2f} mm grid of {grid.regular_positions().size} slices"
        )
    return grid
