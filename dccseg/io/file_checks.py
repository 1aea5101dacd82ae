"""Checks SimpleITK does not make: a compressed file read to its end, a NIfTI file as long as its header says,
NIfTI qform/sform that agree, and no negative voxel spacing (NIfTI and MetaImage headers).

SimpleITK fills the missing part of a truncated ``.nii``/``.nii.gz`` with zeros without a word, and
silently prefers one of two disagreeing NIfTI orientations; both give a plausible-looking, wrong result.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DccsegError
from .nifti_direction import nearest_orthonormal

CHUNK = 1 << 22
NIFTI1_HEADER, NIFTI2_HEADER = 348, 540
QFORM_SFORM_TOLERANCE_MM = 1.0
"""The two NIfTI orientations may place a corner of the volume at most this far apart (after squaring a slightly sheared sform)."""


FLOAT_TYPES = {16: "f4", 64: "f8"}
"""NIfTI datatype codes of float voxels, whose NaN/Inf the NIfTI reader silently turns into 0 (water)."""


class _NonFinite:
    """Collects the positions of NaN/Inf voxels from consecutive chunks of raw voxel bytes."""

    def __init__(self, dtype: str, count: int) -> None:
        self.dtype, self.count = np.dtype(dtype), count
        self.pending = b""
        self.index = 0
        self.mask: np.ndarray | None = None

    def add(self, data: bytes) -> None:
        data = self.pending + data
        usable = len(data) - len(data) % self.dtype.itemsize
        values = np.frombuffer(data[:usable], self.dtype)[: max(self.count - self.index, 0)]
        self.pending = data[usable:]
        bad = ~np.isfinite(values)
        if bad.any():
            if self.mask is None:
                self.mask = np.zeros(self.count, dtype=bool)
            self.mask[self.index : self.index + values.size] = bad
        self.index += values.size


def _scan_data(path: Path, offset: int, finder: _NonFinite | None) -> int:
    """Read the whole file (decompressed if gzip) once: its length, and non-finite voxels to ``finder``."""
    total = 0
    try:
        with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as stream:
            while block := stream.read(CHUNK):
                if finder is not None and total + len(block) > offset:
                    finder.add(block[max(offset - total, 0) :])
                total += len(block)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DccsegError(
            f"{path} is damaged: its compressed data ends early or is corrupt ({exc}); copy or download the file again"
        ) from None
    return total


def _nifti_header(path: Path) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            return stream.read(NIFTI2_HEADER)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError):
        return b""


def _nifti_layout(header: bytes) -> tuple[str, int, int, np.ndarray, int, int] | None:
    """(byte order, header size, data offset, dims, datatype, bits per voxel) of a NIfTI-1/2 header, or None if not NIfTI."""
    for order in "<>":
        size = struct.unpack(order + "i", header[:4])[0] if len(header) >= NIFTI1_HEADER else 0
        if size == NIFTI1_HEADER:
            dims = np.array(struct.unpack(order + "8h", header[40:56]), dtype=np.int64)
            datatype, bitpix = struct.unpack(order + "2h", header[70:74])
            return order, size, int(struct.unpack(order + "f", header[108:112])[0]), dims, datatype, bitpix
        if size == NIFTI2_HEADER and len(header) >= NIFTI2_HEADER:
            dims = np.array(struct.unpack(order + "8q", header[16:80]), dtype=np.int64)
            datatype, bitpix = struct.unpack(order + "2h", header[12:16])
            return order, size, int(struct.unpack(order + "q", header[168:176])[0]), dims, datatype, bitpix
    return None


def _quaternion_matrix(b: float, c: float, d: float) -> np.ndarray:
    a = np.sqrt(max(0.0, 1.0 - (b * b + c * c + d * d)))
    return np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ]
    )


def _forms(order: str, header: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """NIfTI-1 qform and sform as 4x4 index-to-RAS matrices, when both are set."""
    qform_code, sform_code = struct.unpack(order + "2h", header[252:256])
    if qform_code <= 0 or sform_code <= 0:
        return None
    pixdim = struct.unpack(order + "8f", header[76:108])
    b, c, d, qx, qy, qz = struct.unpack(order + "6f", header[256:280])
    qfac = -1.0 if pixdim[0] < 0 else 1.0
    qform = np.eye(4)
    qform[:3, :3] = _quaternion_matrix(b, c, d) * np.array([pixdim[1], pixdim[2], qfac * pixdim[3]])
    qform[:3, 3] = (qx, qy, qz)
    sform = np.eye(4)
    sform[:3, :] = np.array(struct.unpack(order + "12f", header[280:328])).reshape(3, 4)
    return qform, sform


def _squared(form: np.ndarray) -> np.ndarray:
    """``form`` with its axes made orthonormal (voxel sizes kept), as :mod:`dccseg.io.nifti_direction` reads a slightly sheared sform."""
    spacing = np.linalg.norm(form[:3, :3], axis=0)
    squared = form.copy()
    squared[:3, :3] = nearest_orthonormal(form[:3, :3] / spacing) * spacing
    return squared


def _corner_distance(a: np.ndarray, b: np.ndarray, dims: np.ndarray) -> float:
    corners = np.array([[i, j, k, 1.0] for i in (0, dims[1] - 1) for j in (0, dims[2] - 1) for k in (0, max(dims[3], 1) - 1)])
    return float(np.max(np.linalg.norm((corners @ a.T - corners @ b.T)[:, :3], axis=1)))


def check_nifti(path: Path) -> np.ndarray | None:
    """Raise unless the NIfTI file holds all the voxels its header announces and its qform/sform agree.

    Returns the flat mask of NaN/Inf voxels (in SimpleITK's buffer order) of a float file that has any, else None.
    """
    header = _nifti_header(path)
    layout = _nifti_layout(header)
    if layout is None:
        return None  # not NIfTI at all: SimpleITK's own error says so
    order, size, offset, dims, datatype, bitpix = layout
    count = int(np.prod(dims[1 : 1 + min(max(int(dims[0]), 1), 7)]))
    needed = max(offset, size) + count * max(int(bitpix), 0) // 8
    finder = _NonFinite(order + FLOAT_TYPES[datatype], count) if datatype in FLOAT_TYPES else None
    length = _scan_data(path, max(offset, size), finder)
    if length < needed:
        raise DccsegError(
            f"{path} is incomplete: its header announces {needed} bytes but it holds {length} "
            f"({100 * length / max(needed, 1):.0f}%); copy or download the file again"
        )
    pixdim = np.array(struct.unpack(order + "8f", header[76:108]) if size == NIFTI1_HEADER else struct.unpack(order + "8d", header[104:168]))
    if np.any(pixdim[1:4] < 0):
        raise _negative_spacing(path, pixdim[1:4])
    forms = _forms(order, header) if size == NIFTI1_HEADER else None
    if forms is not None:
        distance = _corner_distance(forms[0], _squared(forms[1]), dims)
        if distance > QFORM_SFORM_TOLERANCE_MM:
            raise DccsegError(
                f"{path}: its two orientations (NIfTI qform and sform) place the volume up to {distance:.1f} mm apart, so where the patient lies "
                "is ambiguous; re-export it from the original DICOM (e.g. with 3D Slicer or dcm2niix)"
            )
    return None if finder is None else finder.mask


def _negative_spacing(path: Path, spacing) -> DccsegError:
    shown = "x".join(f"{float(v):g}" for v in spacing)
    return DccsegError(
        f"{path} declares a negative voxel spacing ({shown} mm), which image readers silently make positive, so the image may be mirrored; "
        "re-export it from the original DICOM"
    )


def check_metaimage(path: Path) -> None:
    """Raise when a MetaImage header declares a negative ElementSpacing (ITK would silently drop the sign)."""
    with open(path, "rb") as stream:
        head = stream.read(1 << 16).split(b"ElementDataFile", 1)[0].decode("latin-1")
    for line in head.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "ElementSpacing":
            try:
                spacing = [float(v) for v in value.split()]
            except ValueError:
                return
            if any(v < 0 for v in spacing):
                raise _negative_spacing(path, spacing)
