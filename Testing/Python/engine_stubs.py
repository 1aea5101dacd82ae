"""Shared by the Slicer Lib tests: a stand-in for the engine's interpreter."""

from __future__ import annotations

import sys
from pathlib import Path


def fake_python(path: Path, body: str) -> str:
    """An executable that stands in for the engine's interpreter: it receives ``-m dccseg ARGS`` and runs ``body``."""
    path.write_text(f"#!{sys.executable}\n{body}", encoding="utf-8")
    path.chmod(0o755)
    return str(path)
