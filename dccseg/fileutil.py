"""Small file helpers shared by every writer: atomic output and extensions."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import DccsegError

MULTI_SUFFIXES = (".nii.gz", ".seg.nrrd", ".tar.gz")
FULL_DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def full_suffix(path: str | os.PathLike) -> str:
    """Return the extension including known double suffixes (``.nii.gz``, ``.seg.nrrd``)."""
    name = Path(path).name.lower()
    for suffix in MULTI_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return Path(name).suffix


def strip_suffix(path: str | os.PathLike) -> str:
    """Return the file name without its (possibly double) extension."""
    name = Path(path).name
    suffix = full_suffix(name)
    return name[: len(name) - len(suffix)] if suffix else name


def ensure_writable_dir(directory: Path) -> None:
    """Create ``directory`` if needed, or raise a DccsegError saying why it cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DccsegError(f"cannot create output folder {directory}: {exc.strerror}; choose a writable location") from exc
    if not os.access(directory, os.W_OK):
        raise DccsegError(f"output folder {directory} is not writable; choose a writable location")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` and rename it onto ``path`` on success.

    The temporary name keeps the full extension so that writers which pick the format
    from the extension (SimpleITK, nrrd) behave as for the final name. On any error the
    temporary file is removed, so no half-written output is ever left behind.
    """
    target = Path(path)
    ensure_writable_dir(target.parent.resolve())
    fd, tmp_name = tempfile.mkstemp(prefix=f".{strip_suffix(target)}.", suffix=f".part{full_suffix(target)}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_current_umask())
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in FULL_DISK_ERRORS:
            raise DccsegError(f"cannot write {target}: {exc.strerror}; free some disk space or choose another location (nothing was written)") from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
