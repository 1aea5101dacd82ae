"""Typed training settings and the ``dccseg train`` command line they make."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from DCCSegmentLib.models import DEFAULT_MODEL_NAME

STAGES = ("all", "coarse", "refine", "pretrain")
LOSSES = ("none", "dcc", "simclr", "supcon", "agcl", "ce")
CONFIGS = ("tiny", "default", "paper")
DEVICES = ("auto", "cuda", "cpu")
FROM_SCRATCH = ""


def default_from_model(segment_model: str | None) -> str:
    """The model to fine-tune by default: the one DCC Segment segments with, else the newest ``dccseg-abdomen``."""
    return (segment_model or "").strip() or DEFAULT_MODEL_NAME


@dataclass(frozen=True)
class TrainParameters:
    """One training request; ``loss`` applies to the stages that pretrain (``pretrain``, and ``all`` from scratch).

    ``from_model`` (a model reference; FROM_SCRATCH for none) and ``world_ratio`` (``--world-ratio``: how much of
    the model's original kind of training data fine-tuning mixes in, see docs/training.md) apply to ``all``, which
    then fine-tunes that model; the other stages train from scratch. ``children`` (``--body-scale auto``): the cases are
    children, each trained at an adult's size and compared before/after as DCC Segment's Child box reads them.
    """

    dataset: Path
    stage: str = "all"
    loss: str = "dcc"
    epochs: int | None = None
    device: str = "auto"
    config: str = "default"
    name: str = ""
    from_model: str = FROM_SCRATCH
    world_ratio: float = 1.0
    children: bool = False

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.stage, STAGES, "stage"), (self.loss, LOSSES, "loss"), (self.config, CONFIGS, "config"), (self.device, DEVICES, "device")):
            if value not in allowed:
                raise ValueError(f"{what} must be one of {allowed}, not {value!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.stage == "pretrain" and self.loss == "none":
            raise ValueError("pretraining needs a loss; choose one other than 'none'")
        if not isinstance(self.world_ratio, (int, float)) or not math.isfinite(self.world_ratio) or self.world_ratio < 0:
            raise ValueError(f"the world ratio must be a number of 0 or more, not {self.world_ratio!r}")
        if self.children and not (self.stage == "all" and self.from_model):
            raise ValueError("children's cases are measured against the model they fine-tune: choose the stages 'all' and a model to start from, not from scratch")

    def arguments(self, run_dir: Path, resume: bool = False) -> list[str | os.PathLike]:
        """Arguments after ``dccseg``."""
        args: list[str | os.PathLike] = ["train", self.stage, self.dataset, "--output", run_dir, "--device", self.device, "--config", self.config]
        if self.epochs is not None:
            args += ["--epochs", str(self.epochs)]
        fine_tunes = self.stage == "all" and bool(self.from_model)
        if self.stage in ("pretrain", "all") and not fine_tunes:  # a fine-tune keeps its model's encoder: no pretraining
            args += ["--loss", self.loss]
        if self.stage in ("all", "refine") and self.name:
            args += ["--name", self.name]
        if fine_tunes:
            args += ["--from", self.from_model, "--world-ratio", str(float(self.world_ratio))]
            if self.children:
                args += ["--body-scale", "auto"]
        if resume:
            args.append("--resume")
        return args + ["--progress", "json"]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dataset": str(self.dataset)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainParameters":
        return cls(**{**data, "dataset": Path(data["dataset"])})
