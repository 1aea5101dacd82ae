"""Keep ITK/GDCM messages away from the user: capture them and turn them into the engine's own lines.

ITK reports through its output window (SimpleITK's global logger); GDCM and MetaIO also print
straight to the process's stderr. :func:`library_messages` catches both while an image is read
or written. Messages about what the engine already checks itself (e.g. uneven slice spacing)
or that carry nothing for the user (metadata not copied into a file) are dropped; anything
else is returned as short lines without ITK's source paths and object addresses.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from typing import Iterator

import SimpleITK as sitk

DROPPED = (
    "non uniform sampling or missing slices",  # dccseg.io.dicom_checks measures the spacing itself
    "won't be written to image file",  # MetaImage: header items that MHA cannot hold
    "unsupported or empty metadata item",
)
_LOCK = threading.Lock()


class _Collector(sitk.LoggerBase):
    """SimpleITK logger that keeps the text instead of printing it."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def DisplayText(self, text: str) -> None:  # noqa: N802 (ITK's interface)
        self.texts.append(text)

    DisplayErrorText = DisplayWarningText = DisplayGenericOutputText = DisplayDebugText = DisplayText


def clean_lines(text: str) -> list[str]:
    """The user-relevant lines of raw library output: no 'WARNING: In file, line n' headers, addresses or dropped topics."""
    lines = []
    for raw in text.splitlines():
        line = re.sub(r"^\w+ \(0x[0-9a-f]+\): ", "", raw.strip())
        line = re.sub(r"\s+", " ", line)
        if not line or re.match(r"^(WARNING|ERROR)?:? ?In .*, line \d+$", line) or any(topic in line.lower() for topic in DROPPED):
            continue
        lines.append(line)
    return list(dict.fromkeys(lines))


@contextlib.contextmanager
def _stderr_to(target) -> Iterator[None]:
    """Point file descriptor 2 at ``target`` (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(target.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def library_messages() -> Iterator[list[str]]:
    """Capture ITK/GDCM messages during the block; the yielded list receives their cleaned lines at its end."""
    found: list[str] = []
    with _LOCK, tempfile.TemporaryFile(mode="w+b") as raw:
        collector = _Collector()
        previous = collector.SetAsGlobalITKLogger()
        try:
            with _stderr_to(raw):
                yield found
        finally:
            previous.SetAsGlobalITKLogger()
            raw.seek(0)
            text = "\n".join(collector.texts) + "\n" + raw.read().decode("utf-8", errors="replace")
            found.extend(clean_lines(text))
