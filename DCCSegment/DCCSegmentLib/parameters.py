"""Typed parameters of a Segment run and the ``dccseg segment`` command line they make."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

DEVICES = ("auto", "cuda", "cpu")
DEVICE_LABELS = {"auto": "Auto", "cuda": "GPU", "cpu": "CPU"}


@dataclass(frozen=True)
class SegmentParameters:
    """One Segment request. ``model`` None means the store's default model; ``organs`` None means all; ``statistics`` writes ``<output>.stats.json``;
    ``child`` measures the body and reads a small one on grids scaled to its size (``dccseg segment --body-scale auto``)."""

    input_path: Path
    output_path: Path
    model: str | None = None
    device: str = "auto"
    organs: tuple[str, ...] | None = None
    fast: bool = False
    statistics: bool = False
    child: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, not {self.device!r}")
        if self.organs is not None and not self.organs:
            raise ValueError("choose at least one organ")

    def arguments(self) -> list[str | os.PathLike]:
        """Arguments after ``dccseg``."""
        args: list[str | os.PathLike] = ["segment", self.input_path, self.output_path, "--device", self.device]
        if self.model:
            args += ["--model", self.model]
        if self.organs is not None:
            args += ["--organs", ",".join(self.organs)]
        if self.fast:
            args.append("--fast")
        if self.statistics:
            args.append("--statistics")
        if self.child:
            args += ["--body-scale", "auto"]
        return args + ["--progress", "json"]

    def with_changes(self, **changes: object) -> "SegmentParameters":
        """A copy with some fields changed (used to retry on CPU or in fast mode)."""
        return replace(self, **changes)  # type: ignore[arg-type]
