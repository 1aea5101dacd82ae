"""A content hash of a training set, recorded in the model card so a model names its data exactly."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Iterable

CHUNK = 1 << 20


def _update_with_file(digest: "hashlib._Hash", path: Path) -> None:
    digest.update(f"{path.stat().st_size}\0".encode())
    with open(path, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)


def dataset_hash(source: Any | Iterable[str | os.PathLike]) -> str:
    """``sha256:<hex>`` over the case files' bytes in a stable order, streamed.

    ``source`` is a ``dccseg.dataset.Dataset`` (cases sorted by id; each case's id, phase,
    image and label contribute, so relabelling a phase changes the hash) or an iterable of
    file paths (sorted by name; only the contents count, not where the files live).
    """
    digest = hashlib.sha256()
    if hasattr(source, "cases"):
        for case in sorted(source.cases, key=lambda c: c.id):
            digest.update(f"case\0{case.id}\0{case.phase}\0".encode())
            for path in (case.image, case.label):
                if path is not None:
                    _update_with_file(digest, Path(path))
    else:
        for path in sorted((Path(p) for p in source), key=lambda p: (p.name, str(p))):
            _update_with_file(digest, path)
    return f"sha256:{digest.hexdigest()}"
