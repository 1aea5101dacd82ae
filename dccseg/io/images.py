"""Reading and writing CT volumes: NIfTI, NRRD, MetaImage and DICOM series folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import DccsegError
from ..fileutil import atomic_output, full_suffix
from ..volume import Volume
from .ct_check import check_ct
from .dicom import Log, read_dicom_series
from .dicom_dir import dicomdir_stop
from .file_checks import check_metaimage, check_nifti
from .library_messages import library_messages
from .nifti_direction import read_nifti_with_repaired_axes
from .volume_checks import check_spacing, replace_non_finite

IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
WRITE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".mha")
INT16_RANGE = (-32768, 32767)


def _read_file(path: Path, log: Log | None) -> sitk.Image:
    if path.stat().st_size == 0:
        raise DccsegError(f"{path} is empty (0 bytes); copy or download the file again")
    non_finite = check_nifti(path) if full_suffix(path) in (".nii", ".nii.gz") else None
    if full_suffix(path) in (".mha", ".mhd"):
        check_metaimage(path)
    try:
        with library_messages() as messages:
            image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        if "orthonormal" in str(exc) and full_suffix(path) in (".nii", ".nii.gz"):
            if log is not None:
                log(f"{path.name}: its voxel axes are slightly off square; read with the nearest square axes (same spacing and origin)")
            return read_nifti_with_repaired_axes(path)
        raise DccsegError(
            f"cannot read {path} as a {full_suffix(path)} image: the file is damaged or not an image; re-export it (e.g. from 3D Slicer) or check the path"
        ) from exc
    for message in messages:
        if log is not None:
            log(f"reading {path.name}: {message}")
    return image if non_finite is None else _with_nan(image, non_finite)


def _with_nan(image: sitk.Image, non_finite: np.ndarray) -> sitk.Image:
    """Put back as NaN the voxels the NIfTI reader turned from NaN/Inf into 0, so that they are not read as water."""
    array = sitk.GetArrayFromImage(image)
    if array.size != non_finite.size or array.dtype.kind != "f":
        return image
    array.reshape(-1)[non_finite] = np.nan
    restored = sitk.GetImageFromArray(array, isVector=image.GetNumberOfComponentsPerPixel() > 1)
    restored.CopyInformation(image)
    return restored


def read_sitk(path: str | os.PathLike, log: Log | None = None, series: str | None = None) -> sitk.Image:
    """Read an image file or DICOM series folder (``series``: UID or listing number) with one-line errors and checks."""
    path = Path(path)
    if not path.exists():
        raise DccsegError(f"{path} does not exist; check the path")
    if series is not None and not (path.is_dir() or full_suffix(path) == ".dcm"):
        raise DccsegError(f"--series applies to a DICOM folder, and {path.name} is a file; leave --series out")
    if path.is_dir():
        return read_dicom_series(path, log, series=series)
    if path.name.upper() == "DICOMDIR":
        raise DccsegError(dicomdir_stop(path))
    suffix = full_suffix(path)
    if suffix == ".seg.nrrd":
        raise DccsegError(f"{path.name} is a Slicer segmentation, not an image; pass the CT volume here and the segmentation as the label")
    if suffix == ".dcm":
        return read_dicom_series(path.parent, log, containing=None if series else path, series=series)
    if suffix not in IMAGE_SUFFIXES:
        raise DccsegError(f"{path.name}: unsupported file type '{suffix}'; use NIfTI (.nii.gz), NRRD, MetaImage (.mha/.mhd) or a DICOM series folder")
    return _read_file(path, log)


def volume_from_sitk(image: sitk.Image, source: str) -> Volume:
    """Check that ``image`` is a 3D single-component volume and convert it to a Volume."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DccsegError(
            f"{source} is an RGB/vector image ({image.GetNumberOfComponentsPerPixel()} values per voxel); "
            "a CT holds one grey value per voxel: load the original grayscale CT, not a screenshot or colour export"
        )
    size = image.GetSize()
    if image.GetDimension() == 4 and size[3] > 1:
        raise DccsegError(
            f"{source} is a 4D image holding {size[3]} volumes (time points or phases); "
            "save the one volume you want as a 3D image (e.g. in 3D Slicer) and load that"
        )
    if image.GetDimension() == 4:
        image = image[:, :, :, 0]
        size = image.GetSize()
    if image.GetDimension() != 3 or min(size) < 2:
        shape = "x".join(str(s) for s in size)
        raise DccsegError(
            f"{source} is a {image.GetDimension()}D image of size {shape}; a 3D volume with several slices is needed: load the whole series, not one slice"
        )
    if "complex" in image.GetPixelIDTypeAsString():
        raise DccsegError(f"{source} holds complex numbers; load a real-valued CT volume")
    return Volume.from_sitk(image)


def read_image(path: str | os.PathLike, require_ct: bool = True, log: Log | None = None, series: str | None = None, compact: bool = False) -> Volume:
    """Read a 3D image (NIfTI, NRRD, MHA/MHD or DICOM series folder) as float32 with full geometry.

    With ``require_ct`` (default) the intensities must look like CT in HU (:func:`check_ct`) and
    NaN/Inf voxels are set to the lowest value (reported). ``log`` receives the reports (e.g. which
    of several DICOM series was read, what was repaired); ``series`` picks a DICOM series.
    ``compact`` keeps integer voxels that fit as int16 (half of float32's memory; segmentation uses it).
    """
    volume = volume_from_sitk(read_sitk(path, log, series), str(path))
    check_spacing(volume, str(path))
    volume = volume.with_array(_working_array(volume.array, compact))
    if require_ct:
        volume = replace_non_finite(volume, str(path), log or (lambda message: None))
        check_ct(volume, str(path))
    return volume


def _working_array(array: np.ndarray, compact: bool) -> np.ndarray:
    """float32, or with ``compact`` int16 for integer voxels within int16's range."""
    if compact and array.dtype.kind in "iu" and array.size and INT16_RANGE[0] <= array.min() and array.max() <= INT16_RANGE[1]:
        return array.astype(np.int16, copy=False)
    return array.astype(np.float32, copy=False)


def _check_write_suffix(path: Path) -> None:
    if full_suffix(path) not in WRITE_SUFFIXES:
        raise DccsegError(f"cannot write {path.name}: use one of {', '.join(WRITE_SUFFIXES)}")


def compact_array(array: np.ndarray) -> np.ndarray:
    """Integer-valued float data within int16 (e.g. CT in HU) as int16, anything else unchanged: lossless, half the size."""
    if array.dtype.kind == "f" and array.size and np.all(np.isfinite(array)):
        low, high = float(array.min()), float(array.max())
        if INT16_RANGE[0] <= low and high <= INT16_RANGE[1] and np.array_equal(array, np.round(array)):
            return array.astype(np.int16)
    return array


def write_sitk(image: sitk.Image, path: str | os.PathLike) -> None:
    """Write a SimpleITK image atomically, compressed."""
    path = Path(path)
    _check_write_suffix(path)
    failed = DccsegError(
        f"cannot write {path}: the image library failed to write it; check free disk space and that the location is writable (nothing was written)"
    )
    with atomic_output(path) as tmp:
        with library_messages() as messages:
            try:
                sitk.WriteImage(image, str(tmp), useCompression=True)
            except RuntimeError as exc:
                raise failed from exc
        if any("error" in message.lower() for message in messages):  # ITK's NIfTI writer reports a full disk only as text
            raise failed
        if full_suffix(path) in (".nii", ".nii.gz"):
            try:
                check_nifti(tmp)
            except DccsegError:
                raise failed from None


def write_image(volume: Volume, path: str | os.PathLike) -> None:
    """Write ``volume`` (.nii.gz/.nii/.nrrd/.mha), compressed; integer-valued floats are stored as int16."""
    write_sitk(volume.with_array(compact_array(volume.array)).to_sitk(), path)
