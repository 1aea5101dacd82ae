"""Reading a DICOM series folder with SimpleITK (GDCM orders the slices by position)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import SimpleITK as sitk

from ..errors import DccsegError

Log = Callable[[str], None]


def read_dicom_series(folder: Path, log: Log | None = None, containing: Path | None = None) -> sitk.Image:
    """Read the series in ``folder`` (the one holding ``containing`` if given, else the one with most files)."""
    if not any(folder.iterdir()):
        raise DccsegError(f"folder {folder} is empty; point to a folder holding a DICOM series or to an image file")
    series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series_ids:
        raise DccsegError(
            f"no DICOM series found in {folder}; point to the folder that directly holds the .dcm files (sub-folders are not searched) or to an image file"
        )
    files = {sid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series_ids}
    if containing is not None:
        chosen = next((sid for sid, names in files.items() if any(Path(n).samefile(containing) for n in names)), None)
        if chosen is None:
            raise DccsegError(f"{containing} is not part of a readable DICOM series; check that it is a DICOM image file")
    else:
        chosen = max(files, key=lambda sid: len(files[sid]))
        if len(files) > 1 and log is not None:
            log(f"{folder} holds {len(files)} DICOM series; reading {chosen} ({len(files[chosen])} files), the largest; put each series in its own folder to pick another")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files[chosen])
    try:
        return reader.Execute()
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise DccsegError(f"cannot read the DICOM series in {folder} ({first_line}); check that the files are complete CT images") from exc
