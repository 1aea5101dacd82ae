"""The DICOM series in a folder: one header read per file, grouped by Series Instance UID, listed, and one chosen.

A multi-frame file (Enhanced CT) gives one header per frame (``dccseg.io.dicom_frames``), so its frames are the slices.

Default choice: the axial CT series with the most slices (ties: the lowest series number). ``--series``
picks another by its UID or by its number in the listing. Files that look like DICOM (``DICM`` at byte
128) but cannot be read are a stop: a damaged file in a series folder usually means a missing slice. DICOM files
that hold no image (a DICOMDIR, reports, presentation states) are skipped and reported; a folder with a DICOMDIR
and no images is a stop that names the series folders the DICOMDIR lists (``dccseg.io.dicom_dir``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from ..errors import DccsegError
from .dicom_dir import dicomdir_stop
from .dicom_frames import frame_tags
from .library_messages import library_messages

TAGS = {
    "series_uid": "0020|000e",
    "series_number": "0020|0011",
    "description": "0008|103e",
    "modality": "0008|0060",
    "image_type": "0008|0008",
    "sop_uid": "0008|0018",
    "position": "0020|0032",
    "orientation": "0020|0037",
    "pixel_spacing": "0028|0030",
    "rows": "0028|0010",
    "columns": "0028|0011",
    "frames": "0028|0008",
}
AXIAL_MIN_COSINE = 0.8
"""A series is axial when its slice normal is within about 37 degrees of the patient's head-feet axis."""


@dataclass
class SliceHeader:
    """What the checks need from one DICOM file's header (tags as text, stripped); ``frame``: the frame's index in a multi-frame file."""

    path: Path
    tags: dict[str, str]
    frame: int | None = None

    def numbers(self, name: str) -> np.ndarray | None:
        text = self.tags.get(name, "")
        try:
            values = np.array([float(v) for v in text.split("\\")], dtype=np.float64)
        except ValueError:
            return None
        return values if values.size and np.all(np.isfinite(values)) else None

    @property
    def is_localizer(self) -> bool:
        kinds = {part.strip().upper() for part in self.tags.get("image_type", "").split("\\")}
        return bool(kinds & {"LOCALIZER", "SCOUT", "TOPOGRAM"})

    @property
    def normal(self) -> np.ndarray | None:
        cosines = self.numbers("orientation")
        if cosines is None or cosines.size != 6:
            return None
        normal = np.cross(cosines[:3], cosines[3:])
        length = np.linalg.norm(normal)
        return normal / length if length > 0.5 else None


@dataclass
class Series:
    """One series of a folder: its files' headers (localizers included) and what the listing shows."""

    uid: str
    slices: list[SliceHeader] = field(default_factory=list)

    def tag(self, name: str) -> str:
        return next((s.tags[name] for s in self.slices if s.tags.get(name)), "")

    @property
    def images(self) -> list[SliceHeader]:
        return [s for s in self.slices if not s.is_localizer]

    @property
    def is_axial_ct(self) -> bool:
        normals = [s.normal for s in self.images if s.normal is not None]
        return self.tag("modality").upper() in ("CT", "") and bool(normals) and abs(normals[0][2]) >= AXIAL_MIN_COSINE

    def summary(self) -> str:
        images = self.images
        first = images[0] if images else self.slices[0]
        size = f"{first.tags.get('columns', '?')}x{first.tags.get('rows', '?')}"
        spacing = first.numbers("pixel_spacing")
        in_plane = f"{spacing[-1]:.3g}x{spacing[0]:.3g} mm" if spacing is not None and spacing.size == 2 else "unknown spacing"
        description = self.tag("description") or "no description"
        return f"'{description}', {self.tag('modality') or 'no modality'}, {len(images)} slices of {size} at {in_plane}, UID {self.uid}"


def _read_headers(path: Path) -> list[SliceHeader] | None:
    """The file's slice header, one per frame of a multi-frame file; None if it cannot be read."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    keys = set(reader.GetMetaDataKeys())
    tags = {name: reader.GetMetaData(tag).strip() for name, tag in TAGS.items() if tag in keys}
    if int(tags.get("frames") or 1) < 2:
        return [SliceHeader(path, tags)]
    frames = frame_tags(path, tags)
    return None if frames is None else [SliceHeader(path, frame, index) for index, frame in enumerate(frames)]


def _looks_like_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            stream.seek(128)
            return stream.read(4) == b"DICM"
    except OSError:
        return False


def _holds_no_image(path: Path) -> bool:
    """A readable DICOM file without image rows (DICOMDIR, structured report, presentation state, ...)."""
    try:
        return "Rows" not in pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return False


def scan_folder(folder: Path, notes: list[str] | None = None) -> list[Series]:
    """Every series in ``folder`` (files directly in it), in series-number order; ``notes`` receives what was skipped."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files and not any(folder.iterdir()):
        raise DccsegError(f"folder {folder} is empty; point to a folder holding a DICOM series or to an image file")
    groups: dict[str, Series] = {}
    damaged, without_image = [], []
    with library_messages():
        headers = [(path, _read_headers(path)) for path in files]
    for path, slices in headers:
        if slices is None:
            if _holds_no_image(path):
                without_image.append(path.name)
            elif _looks_like_dicom(path):
                damaged.append(path.name)
            continue
        uid = slices[0].tags.get("series_uid", "") or "(no series UID)"
        groups.setdefault(uid, Series(uid)).slices.extend(slices)
    if damaged:
        raise DccsegError(
            f"{len(damaged)} DICOM file(s) in {folder} cannot be read ({', '.join(damaged[:3])}{' ...' if len(damaged) > 3 else ''}): "
            "truncated or damaged; copy the series again from the scanner or PACS, or remove those files"
        )
    if without_image and notes is not None:
        notes.append(f"skipped {len(without_image)} DICOM file(s) that hold no image ({', '.join(without_image[:3])}{' ...' if len(without_image) > 3 else ''})")
    dicomdir = next((path for path in files if path.name.upper() == "DICOMDIR"), None)
    if not groups and dicomdir is not None:
        raise DccsegError(dicomdir_stop(dicomdir))
    if not groups:
        raise DccsegError(
            f"no DICOM series found in {folder}; point to the folder that directly holds the .dcm files (sub-folders are not searched) or to an image file"
        )
    return sorted(groups.values(), key=lambda s: (_series_number(s), s.uid))


def _series_number(series: Series) -> float:
    try:
        return float(series.tag("series_number"))
    except ValueError:
        return float("inf")


def choose_series(series: list[Series], wanted: str | None, folder: Path, containing: Path | None = None) -> tuple[Series, str]:
    """The series to read and why: ``wanted`` (UID or 1-based number in the listing), the one holding ``containing``, or the default."""
    if wanted:
        by_uid = [s for s in series if s.uid == wanted]
        if by_uid:
            return by_uid[0], "chosen with --series"
        if wanted.isdigit() and 1 <= int(wanted) <= len(series):
            return series[int(wanted) - 1], "chosen with --series"
        raise DccsegError(
            f"--series {wanted}: no such series in {folder}; give a number from 1 to {len(series)} or a series UID from the listing "
            f"({'; '.join(f'{i}: {s.uid}' for i, s in enumerate(series, 1))})"
        )
    if containing is not None:
        holder = next((s for s in series if any(h.path.samefile(containing) for h in s.slices)), None)
        if holder is None:
            raise DccsegError(f"{containing} is not part of a readable DICOM series; check that it is a DICOM image file")
        return holder, f"the series of {containing.name}"
    candidates = [s for s in series if s.is_axial_ct] or series
    best = max(candidates, key=lambda s: (len(s.images), -_series_number(s)))
    return best, "the axial CT series with the most slices" if best.is_axial_ct else "the series with the most slices"


def listing(series: list[Series]) -> list[str]:
    """One line per series, numbered as ``--series`` accepts them."""
    return [f"  {index}: {s.summary()}" for index, s in enumerate(series, 1)]
