"""What ``dccseg segment`` has to do: one input or many, their output paths, and this rank's share.

INPUT may be a CT file, a DICOM series folder, a folder of CT files, or a dataset folder (with
``dataset.json``); for the last two OUTPUT is a folder that receives ``<case id><format>``.
Under ``torchrun`` (WORLD_SIZE/RANK set) every rank takes the cases whose index ≡ RANK (mod WORLD_SIZE).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..dataset import Dataset
from ..errors import DccsegError
from ..fileutil import ensure_writable_dir, full_suffix, strip_suffix
from ..io import IMAGE_SUFFIXES

OUTPUT_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".mha", ".dcm")
DATASET_FILE = "dataset.json"


@dataclass(frozen=True)
class Job:
    """One CT to segment and where its result goes."""

    case_id: str
    source: Path
    output: Path


def check_output_suffix(path: Path) -> None:
    if full_suffix(path) not in OUTPUT_SUFFIXES:
        raise DccsegError(f"cannot write {path.name}: name the output with one of {', '.join(OUTPUT_SUFFIXES)}")


def plan_jobs(source: Path, output: Path, output_format: str = ".seg.nrrd", overwrite: bool = False) -> list[Job]:
    """The jobs for INPUT ``source`` and OUTPUT ``output``; checks the output location before any heavy work.

    A single input with an existing output is an error without ``overwrite``; in a batch such
    cases are left out (so an interrupted batch can be rerun).
    """
    if not source.exists():
        raise DccsegError(f"{source} does not exist; check the input path")
    cases = _batch_cases(source)
    if cases is None:
        target = output / f"{strip_suffix(source)}{output_format}" if output.is_dir() else output
        check_output_suffix(target)
        ensure_writable_dir(target.parent)
        if target.exists() and not overwrite:
            raise DccsegError(f"{target} already exists; choose another output name or pass --overwrite")
        return [Job(strip_suffix(source), source, target)]
    if output.exists() and not output.is_dir():
        raise DccsegError(f"{source} holds several CTs, so OUTPUT must be a folder, but {output} is a file")
    check_output_suffix(Path(f"x{output_format}"))
    ensure_writable_dir(output)
    jobs = [Job(case_id, path, output / f"{case_id}{output_format}") for case_id, path in cases]
    return [job for job in jobs if overwrite or not job.output.exists()]


def _batch_cases(source: Path) -> list[tuple[str, Path]] | None:
    """(case id, image) of a dataset or a folder of CT files; None for a single file or a DICOM folder."""
    if not source.is_dir():
        return None
    if (source / DATASET_FILE).is_file():
        return [(case.id, case.image) for case in Dataset.load(source).cases]
    files = sorted(p for p in source.iterdir() if p.is_file() and full_suffix(p) in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        return None
    ids = [strip_suffix(p) for p in files]
    if len(set(ids)) != len(ids):
        raise DccsegError(f"{source} holds CTs with the same name in different formats; keep one file per case")
    return list(zip(ids, files))


def is_batch(source: Path) -> bool:
    """True when ``source`` is a dataset or a folder of CT files (not a single CT or a DICOM folder)."""
    return _batch_cases(source) is not None


@dataclass(frozen=True)
class Rank:
    """This process's place in a ``torchrun`` launch (rank 0 of 1 otherwise)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int | None = None

    @classmethod
    def from_env(cls) -> "Rank":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    def share(self, jobs: list[Job]) -> list[Job]:
        return jobs[self.rank :: self.world_size]

    def device(self, requested: str) -> str:
        """``cuda:LOCAL_RANK`` under torchrun when CUDA is asked for (or auto and available)."""
        if self.local_rank is None or requested == "cpu":
            return requested
        import torch

        if requested == "cuda" or torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return requested
