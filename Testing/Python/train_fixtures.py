"""Shared by the training tests: a small multi-phase phantom dataset and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dccseg.dataset import Dataset
from dccseg.phantoms import procedural_phantom

PHASES = ("non-contrast", "portal-venous", "arterial", "delayed")
SHAPE = (48, 48, 48)


def phantom_dataset(root: Path, cases: int = 4) -> Path:
    """``cases`` procedural phantoms of 48^3 voxels, in rotating contrast phases."""
    dataset = Dataset.create(root, "phantoms")
    for i in range(cases):
        phase = PHASES[i % len(PHASES)]
        ct, labels = procedural_phantom(SHAPE, phase=phase, seed=i)
        dataset.add_volumes(f"case{i}", ct, labels, phase, source="procedural phantom")
    return root


def dccseg_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dccseg", *args]


def single_thread_env() -> dict[str, str]:
    """Tiny networks gain nothing from a second thread, and OpenMP threads spin when the cores are shared."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run_dccseg(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess (as the Slicer modules do); fails the test with its output on error."""
    result = subprocess.run(dccseg_command(*args), capture_output=True, text=True, encoding="utf-8", timeout=timeout, env=single_thread_env())
    assert result.returncode == 0, f"dccseg {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result
