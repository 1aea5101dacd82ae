"""What a model folder or archive may contain, checked before anything is copied or loaded.

Only the card (``model.json``) and safetensors weights are accepted. Pickle-based files
(``.pt``, ``.pth``, ``.pkl``, ``.ckpt``) are refused because unpickling can run arbitrary code;
archive members that escape their folder (``..``, absolute paths, links) are refused too.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import DccsegError
from .card import CARD_FILE

WEIGHT_PARTS = ("coarse", "refine", "encoder")
REQUIRED_PARTS = ("coarse", "refine")
MODEL_FILES = (CARD_FILE, *(f"{part}.safetensors" for part in WEIGHT_PARTS))
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".npy", ".npz")
MAX_ARCHIVE_BYTES = 4 << 30


def weight_file(part: str) -> str:
    return f"{part}.safetensors"


def check_file_names(names: list[str], source: str) -> None:
    """Refuse pickles and anything that is not a model file; require the card and both weight files."""
    for name in names:
        suffix = PurePosixPath(name).suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise DccsegError(
                f"refusing {source}: it contains '{name}', a pickle-based file that could run code when loaded; "
                "only model.json and .safetensors weights are accepted (re-export the model with `dccseg models export`)"
            )
        if name not in MODEL_FILES:
            raise DccsegError(f"refusing {source}: unexpected file '{name}'; a model holds only {', '.join(MODEL_FILES)}")
    if len(set(names)) != len(names):
        raise DccsegError(f"refusing {source}: it holds more than one copy of a model file")
    missing = [n for n in (CARD_FILE, *(weight_file(p) for p in REQUIRED_PARTS)) if n not in names]
    if missing:
        raise DccsegError(f"refusing {source}: it lacks {', '.join(missing)}; export the model with `dccseg models export`")


def folder_files(folder: Path) -> list[str]:
    """The file names of a model folder after checking them (subfolders and links are refused)."""
    names = []
    for path in sorted(folder.iterdir()):
        if path.is_symlink() or not path.is_file():
            raise DccsegError(f"refusing {folder}: '{path.name}' is not a plain file; a model folder holds only {', '.join(MODEL_FILES)}")
        names.append(path.name)
    check_file_names(names, str(folder))
    return names


def archive_members(archive: zipfile.ZipFile, source: str) -> dict[str, zipfile.ZipInfo]:
    """Map model file name -> archive member; members may sit at the root or in one top folder."""
    members: dict[str, zipfile.ZipInfo] = {}
    folders: set[tuple[str, ...]] = set()
    total = 0
    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        if "\\" in info.filename or path.is_absolute() or ".." in path.parts or ":" in info.filename:
            raise DccsegError(f"refusing {source}: member '{info.filename}' points outside the archive's folder")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DccsegError(f"refusing {source}: member '{info.filename}' is a link")
        if info.is_dir():
            continue
        if len(path.parts) > 2:
            raise DccsegError(f"refusing {source}: member '{info.filename}' is nested too deep; a model archive is flat")
        folders.add(path.parts[:-1])
        total += info.file_size
        if path.name in members:
            raise DccsegError(f"refusing {source}: it holds more than one '{path.name}'")
        members[path.name] = info
    if len(folders) > 1:
        raise DccsegError(f"refusing {source}: its files are spread over several folders; a model archive is flat")
    if total > MAX_ARCHIVE_BYTES:
        raise DccsegError(f"refusing {source}: it unpacks to {total / 2**30:.1f} GiB, more than any dccseg model")
    check_file_names(list(members), source)
    return members
