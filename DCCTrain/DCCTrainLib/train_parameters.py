"""Typed training settings and the ``dccseg train`` command line they make."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STAGES = ("all", "coarse", "refine", "pretrain")
LOSSES = ("none", "dcc", "simclr", "supcon", "agcl", "ce")
CONFIGS = ("tiny", "default", "paper")
DEVICES = ("auto", "cuda", "cpu")


@dataclass(frozen=True)
class TrainParameters:
    """One training request; ``loss`` applies to the stages that pretrain (``pretrain`` and ``all``)."""

    dataset: Path
    stage: str = "all"
    loss: str = "dcc"
    epochs: int | None = None
    device: str = "auto"
    config: str = "default"
    name: str = ""

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.stage, STAGES, "stage"), (self.loss, LOSSES, "loss"), (self.config, CONFIGS, "config"), (self.device, DEVICES, "device")):
            if value not in allowed:
                raise ValueError(f"{what} must be one of {allowed}, not {value!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.stage == "pretrain" and self.loss == "none":
            raise ValueError("pretraining needs a loss; choose one other than 'none'")

    def arguments(self, run_dir: Path, resume: bool = False) -> list[str | os.PathLike]:
        """Arguments after ``dccseg``."""
        args: list[str | os.PathLike] = ["train", self.stage, self.dataset, "--output", run_dir, "--device", self.device, "--config", self.config]
        if self.epochs is not None:
            args += ["--epochs", str(self.epochs)]
        if self.stage in ("pretrain", "all"):
            args += ["--loss", self.loss]
        if self.stage in ("all", "refine") and self.name:
            args += ["--name", self.name]
        if resume:
            args.append("--resume")
        return args + ["--progress", "json"]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dataset": str(self.dataset)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainParameters":
        return cls(**{**data, "dataset": Path(data["dataset"])})
