"""DICOM Segmentation objects (SEG) for PACS: an organ label map written against its source CT series (highdicom).

The SEG is binary, one segment per organ present, with the organ table's SNOMED CT codes, laterality and
colour, the algorithm that made it, and references to every source slice (SOP instance, or frame of a multi-frame
Enhanced CT) and the series' frame of reference. The label map must lie on the grid of a DICOM series in the folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import highdicom as hd
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes

from .. import __version__
from ..errors import DccsegError
from ..fileutil import atomic_output, full_suffix
from ..organs import ORGANS, Code, Organ
from ..volume import Volume
from .dicom_frames import dataset_frame_tags

DICOM_SEG_SUFFIX = ".dcm"
SEG_SERIES_NUMBER = 990
REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID")
POSITION_TOLERANCE = 0.01
"""How far (in voxels) a slice's position may lie from the label grid and still count as that slice."""


@dataclass(frozen=True)
class Algorithm:
    """Who made the segmentation: a model (name, version) and how ("AUTOMATIC", "SEMIAUTOMATIC" or "MANUAL")."""

    name: str
    version: str
    kind: str = "AUTOMATIC"


def dicom_series_folder(source: Path) -> Path | None:
    """The folder of a DICOM input (a folder of files, or one ``.dcm`` file of it); None for image files."""
    if source.is_dir():
        return source
    return source.parent if full_suffix(source) == ".dcm" else None


def check_dicom_source(source: Path) -> Path:
    """The series folder of ``source``, or a DccsegError when DICOM SEG output is asked for a non-DICOM input."""
    folder = dicom_series_folder(source)
    if folder is None:
        raise DccsegError(
            f"{source.name} is not a DICOM series, and a DICOM SEG must reference its source DICOM images; "
            "segment the DICOM series folder, or write .seg.nrrd or a label map (.nii.gz) instead"
        )
    return folder


def _read_headers(folder: Path) -> list[pydicom.Dataset]:
    headers = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError):
            continue
        if "SpecificCharacterSet" in header and not header.SpecificCharacterSet:
            del header.SpecificCharacterSet  # empty means the default repertoire, which highdicom wants unstated
        headers.append(header)
    return headers


def _frame_geometry(header: pydicom.Dataset) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(position, orientation cosines) of each frame of ``header`` (one for a single-frame image); None if one lacks them."""
    if int(header.get("NumberOfFrames", 1) or 1) == 1:
        if "ImagePositionPatient" not in header or "ImageOrientationPatient" not in header:
            return None
        return [(np.asarray(header.ImagePositionPatient, dtype=np.float64), np.asarray(header.ImageOrientationPatient, dtype=np.float64))]
    frames = dataset_frame_tags(header)
    if any("position" not in frame or "orientation" not in frame for frame in frames):
        return None
    return [(np.array(frame["position"].split("\\"), dtype=np.float64), np.array(frame["orientation"].split("\\"), dtype=np.float64)) for frame in frames]


def _slice_indices(headers: Sequence[pydicom.Dataset], grid: Volume) -> list[int] | None:
    """The slice index in ``grid`` of each frame of ``headers`` (in file and frame order), or None unless the frames are exactly the grid's slices."""
    depth, rows, columns = grid.shape
    axes = np.asarray(grid.direction, dtype=np.float64).reshape(3, 3)
    to_index = np.linalg.inv(axes * np.asarray(grid.spacing))
    indices = []
    for header in headers:
        frames = _frame_geometry(header)
        if frames is None or (header.get("Rows"), header.get("Columns")) != (rows, columns):
            return None
        for position, orientation in frames:
            if not np.allclose(orientation, np.concatenate([axes[:, 0], axes[:, 1]]), atol=1e-3):
                return None
            index = to_index @ (position - np.asarray(grid.origin))
            k = int(round(index[2]))
            if np.abs(index - [0.0, 0.0, k]).max() > POSITION_TOLERANCE:
                return None
            indices.append(k)
    return indices if sorted(indices) == list(range(depth)) else None


def source_images(folder: Path, grid: Volume) -> tuple[list[pydicom.Dataset], list[int]]:
    """The headers of the DICOM series in ``folder`` whose slices (or frames) form ``grid``, and the grid's slice index of each of their frames.

    Single-frame images come in slice order; a multi-frame file's frames keep their order in the file.
    """
    by_series: dict[str, list[pydicom.Dataset]] = {}
    for header in _read_headers(folder):
        by_series.setdefault(str(header.get("SeriesInstanceUID", "")), []).append(header)
    for headers in by_series.values():
        indices = _slice_indices(headers, grid)
        if indices is not None:
            if len(indices) == len(headers):  # one frame each: put the images in slice order
                headers = [header for _, header in sorted(zip(indices, headers), key=lambda pair: pair[0])]
                indices = sorted(indices)
            _check_uids(headers, folder)
            return headers, indices
    raise DccsegError(
        f"no DICOM series in {folder} has the label map's grid ({'x'.join(map(str, grid.size_xyz))} voxels); "
        "give the folder of the very series that was segmented, with all its slices"
    )


def _check_uids(headers: Sequence[pydicom.Dataset], folder: Path) -> None:
    for name in REQUIRED_UIDS:
        if any(not str(header.get(name, "")).strip() for header in headers):
            raise DccsegError(
                f"the DICOM files in {folder} have no {name} (removed by anonymisation?), so a DICOM SEG cannot reference them; "
                "export the series again with its UIDs kept, or write .seg.nrrd instead"
            )


def _concept(code: Code) -> hd.sr.CodedConcept:
    scheme, value, meaning = code
    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _description(number: int, organ: Organ, algorithm: Algorithm | None) -> hd.seg.SegmentDescription:
    identification = None
    if algorithm is not None:
        identification = hd.AlgorithmIdentificationSequence(name=algorithm.name, family=codes.cid7162.ArtificialIntelligence, version=algorithm.version)
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=organ.name,
        segmented_property_category=_concept(organ.category),
        segmented_property_type=_concept(organ.type),
        algorithm_type=algorithm.kind if algorithm is not None else "MANUAL",
        algorithm_identification=identification,
        tracking_uid=hd.UID(),
        tracking_id=organ.key,
        display_color=hd.color.CIELabColor.from_rgb(*organ.color),
    )
    if organ.modifier is not None:
        description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [_concept(organ.modifier)]
    return description


def write_dicom_seg(
    labels: Volume,
    source: str | os.PathLike,
    path: str | os.PathLike,
    organs: Sequence[Organ] = ORGANS,
    algorithm: Algorithm | None = None,
) -> list[Organ]:
    """Write ``labels`` (organ ids on the grid of the DICOM series in ``source``) as a binary DICOM SEG.

    One segment per organ of ``organs`` present in ``labels``, numbered 1.. in organ-id order;
    returns those organs. Without ``algorithm`` the segments are marked MANUAL.
    """
    folder = check_dicom_source(Path(source))
    headers, frame_slices = source_images(folder, labels)
    present = [organ for organ in organs if np.any(labels.array == organ.label)]
    if not present:
        raise DccsegError("the segmentation holds no organ, and a DICOM SEG needs at least one segment; write .seg.nrrd or a label map instead")
    lookup = np.zeros(max(256, int(labels.array.max()) + 1), dtype=np.uint8)
    for number, organ in enumerate(present, start=1):
        lookup[organ.label] = number
    try:
        segmentation = _segmentation(headers, lookup[labels.array][frame_slices], present, algorithm)
    except ValueError as exc:
        raise DccsegError(f"cannot build a DICOM SEG on the series in {folder} ({exc}); write .seg.nrrd instead and report this series") from exc
    with atomic_output(path) as tmp:
        segmentation.save_as(tmp)
    return present


def _segmentation(headers: list[pydicom.Dataset], segments: np.ndarray, present: list[Organ], algorithm: Algorithm | None) -> hd.seg.Segmentation:
    return hd.seg.Segmentation(
        source_images=headers,
        pixel_array=segments,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_description(number, organ, algorithm) for number, organ in enumerate(present, start=1)],
        series_instance_uid=hd.UID(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="DCC Segment",
        manufacturer_model_name=algorithm.name if algorithm is not None else "dccseg",
        software_versions=f"dccseg {__version__}",
        device_serial_number="none",
        content_label="ORGANS",
        content_description=f"{len(present)} abdominal organs" + (f" by {algorithm.name}@{algorithm.version}" if algorithm else ""),
        series_description="DCC Segment organs",
    )
