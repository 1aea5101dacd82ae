"""Reading a DICOM series folder: list and choose the series, check its slices, read the pixels, repair the grid.

The series is chosen by :mod:`dccseg.io.dicom_series`, checked by :mod:`dccseg.io.dicom_checks`; the
pixels are read by SimpleITK (GDCM) in the checked slice order, with ITK's messages captured. The frames of
a multi-frame file are taken in that order too, on the checked grid. A series with uneven spacing is put on a
regular grid by linear interpolation between its two nearest slices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from ..errors import DccsegError
from .dicom_checks import SliceGrid, check_series
from .dicom_series import choose_series, listing, scan_folder
from .library_messages import library_messages

Log = Callable[[str], None]


def _ignore(message: str) -> None:
    """Default log: messages are dropped."""


def read_dicom_series(folder: Path, log: Log | None = None, containing: Path | None = None, series: str | None = None) -> sitk.Image:
    """Read one checked series of ``folder``: ``series`` (UID or listing number), the one holding ``containing``, or the default."""
    log = log or _ignore
    skipped: list[str] = []
    found = scan_folder(folder, skipped)
    for note in skipped:
        log(f"{folder.name}: {note}")
    chosen, reason = choose_series(found, series, folder, containing)
    if len(found) > 1:
        log(f"{folder} holds {len(found)} DICOM series:")
        for line in listing(found):
            log(line)
        log(f"reading series {found.index(chosen) + 1}, {reason}; pass --series NUMBER or --series UID to read another")
    grid = check_series(chosen, folder)
    for note in grid.notes:
        log(f"{folder.name}: {note}")
    image = _read_pixels(grid, folder, log)
    return image if grid.is_regular else _regularised(image, grid)


def _read_pixels(grid: SliceGrid, folder: Path, log: Log) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames([str(p) for p in grid.files])
    try:
        with library_messages() as messages:
            image = reader.Execute() if all(frame is None for frame in grid.frames) else _read_frames(grid)
    except RuntimeError as exc:
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        raise DccsegError(
            f"cannot read the DICOM series in {folder} ({lines[-1] if lines else 'unknown error'}); check that the files are complete CT images"
        ) from exc
    for message in messages:
        log(f"reading {folder.name}: {message}")
    return image


def _read_frames(grid: SliceGrid) -> sitk.Image:
    """The checked slices of multi-frame files (and any single-frame ones beside them) stacked on the grid's geometry."""
    paths = list(dict.fromkeys(grid.files))
    if len(paths) == 1 and grid.frames == list(range(len(grid.frames))):  # one file, frames already in order: no copy of a large scan
        image = sitk.ReadImage(str(paths[0]), imageIO="GDCMImageIO")
    else:
        read = {path: sitk.ReadImage(str(path), imageIO="GDCMImageIO") for path in paths}  # kept alive while their array views are stacked
        frames = {path: sitk.GetArrayViewFromImage(image) for path, image in read.items()}
        image = sitk.GetImageFromArray(np.stack([frames[path][frame or 0] for path, frame in zip(grid.files, grid.frames)]))
    image.SetOrigin(grid.origin)
    image.SetDirection(grid.direction)
    image.SetSpacing(grid.spacing)
    return image


def _regularised(image: sitk.Image, grid: SliceGrid) -> sitk.Image:
    """The slices linearly interpolated onto the regular grid from the first to the last slice."""
    source = sitk.GetArrayViewFromImage(image)
    targets = grid.regular_positions()
    upper = np.clip(np.searchsorted(grid.positions, targets, side="left"), 1, len(grid.positions) - 1)
    lower = upper - 1
    weight = ((targets - grid.positions[lower]) / (grid.positions[upper] - grid.positions[lower])).astype(np.float32)
    out = np.empty((targets.size, *source.shape[1:]), dtype=np.float32)
    for k in range(targets.size):
        out[k] = (1 - weight[k]) * source[lower[k]] + weight[k] * source[upper[k]]
    if np.issubdtype(source.dtype, np.integer):
        out = np.round(out)
    regular = sitk.GetImageFromArray(out)
    regular.SetOrigin(grid.origin)
    regular.SetDirection(grid.direction)
    regular.SetSpacing(grid.spacing)
    return regular
