"""A DICOMDIR (the index of a CD/DVD or PACS export): which of its series folders to point to.

The images of such an export lie in sub-folders (``PT000000/ST000000/SE000000/...``) that the reader does not
search; the DICOMDIR names them, so the stop can say which folder holds which series.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.errors import InvalidDicomError
from pydicom.fileset import FileSet

SHOWN = 6
"""Series named in the message; the rest are counted."""


def dicomdir_series(dicomdir: Path) -> list[str] | None:
    """One line per image series the DICOMDIR lists, "folder (modality, N images, 'description')", most images first; None if unreadable."""
    try:
        file_set = FileSet(str(dicomdir))
    except (InvalidDicomError, OSError, ValueError, KeyError, AttributeError):
        return None
    series: dict[str, dict] = {}
    for instance in file_set:
        if getattr(instance, "DirectoryRecordType", "") != "IMAGE":
            continue
        entry = series.setdefault(str(getattr(instance, "SeriesInstanceUID", "")), {
            "folders": {}, "modality": getattr(instance, "Modality", "?"), "description": getattr(instance, "SeriesDescription", "")})
        folder = Path(instance.path).parent
        entry["folders"][folder] = entry["folders"].get(folder, 0) + 1
    lines = []
    for entry in sorted(series.values(), key=lambda e: -sum(e["folders"].values())):
        folder = max(entry["folders"], key=entry["folders"].get)
        description = f", '{entry['description']}'" if entry["description"] else ""
        lines.append(f"{folder} ({entry['modality']}, {sum(entry['folders'].values())} images{description})")
    return lines


def dicomdir_stop(dicomdir: Path) -> str:
    """The message for a DICOMDIR given where a series folder is expected."""
    lines = dicomdir_series(dicomdir)
    if not lines:
        return f"{dicomdir} is the index of a DICOM export (DICOMDIR) and lists no readable image series; point to the folder that holds the series' files"
    more = f"; and {len(lines) - SHOWN} more" if len(lines) > SHOWN else ""
    return (f"{dicomdir} is the index of a DICOM export (DICOMDIR), not a series; point to the folder of one of the series it lists: "
            + "; ".join(lines[:SHOWN]) + more)
