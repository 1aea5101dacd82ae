"""The ablation's multi-phase benchmark: a training and a test dataset of synthetic CT from real anatomy.

Synthetic cases come from ``synthesize_from_labels`` on the bundled TotalSegmentator template
(one seed per case: its own deformation, field of view, fat, gas and contrast timing within the
phase). The test set also holds the bundled real CT (non-contrast) and its ``simulate_phase``
versions in the other phases: real texture and anatomy the training data never showed.
Both datasets are written once and reused (``benchmark.json`` records the spec they were made from).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from dccseg.dataset import Dataset
from dccseg.errors import DccsegError
from dccseg.fileutil import atomic_output
from dccseg.io import read_image, read_labelmap
from dccseg.phantoms import load_template, prepare_template, simulate_phase, synthesize_from_labels
from dccseg.progress import QUIET, Progress

from .plan import BenchmarkData

SPEC_FILE = "benchmark.json"
REAL_SOURCE_PHASE = "non-contrast"
PHASE_CODES = {"non-contrast": "nc", "arterial": "art", "portal-venous": "pv", "delayed": "del"}


def build_benchmark(spec: BenchmarkData, folder: Path, progress: Progress = QUIET) -> tuple[Path, Path]:
    """The (train, test) dataset folders under ``folder``; built unless an identical spec already made them."""
    folder = Path(folder)
    train_dir, test_dir = folder / "train", folder / "test"
    spec_path = folder / SPEC_FILE
    if spec_path.is_file():
        if json.loads(spec_path.read_text(encoding="utf-8")) != _jsonable(spec):
            raise DccsegError(f"{folder} holds benchmark data of another configuration; use a new --output folder")
        return train_dir, test_dir
    template = prepare_template(*load_template())
    seeds = np.random.default_rng(spec.seed).permutation(100000)
    used = 0
    for split, counts, root in (("train", spec.train, train_dir), ("test", spec.test, test_dir)):
        dataset = Dataset.open_or_new(root, name=f"ablation-{split}")
        for phase, count in counts.items():
            for k in range(count):
                seed = int(seeds[used])
                used += 1
                case_id = f"{split}-{PHASE_CODES[phase]}-{k + 1:02d}"
                progress.update("data", used / max(_total(spec), 1), f"synthesising {case_id}")
                ct, labels = synthesize_from_labels(template, None, phase, seed, output_spacing=spec.spacing)
                dataset.add_volumes(case_id, ct, labels, phase, source=f"synthesize_from_labels(totalseg_example, seed={seed})", replace=True)
    _add_real_cases(spec, Dataset.open_or_new(test_dir, name="ablation-test"))
    with atomic_output(spec_path) as tmp:
        tmp.write_text(json.dumps(_jsonable(spec), indent=2) + "\n", encoding="utf-8")
    return train_dir, test_dir


def _add_real_cases(spec: BenchmarkData, dataset: Dataset) -> None:
    folder = resources.files("dccseg") / "data" / "totalseg_example"
    with resources.as_file(folder) as path:
        ct = read_image(path / "example_ct.nii.gz")
        labels = read_labelmap(path / "example_ct_organs.nii.gz", reference=ct)
    for index, phase in enumerate(spec.real_test_phases):
        image = ct if phase == REAL_SOURCE_PHASE else simulate_phase(ct, labels, REAL_SOURCE_PHASE, phase, seed=spec.seed + index)
        source = "bundled real CT" + ("" if phase == REAL_SOURCE_PHASE else f", simulate_phase({REAL_SOURCE_PHASE} -> {phase})")
        dataset.add_volumes(f"real-{PHASE_CODES[phase]}", image, labels, phase, source=source, replace=True)


def _total(spec: BenchmarkData) -> int:
    return sum(spec.train.values()) + sum(spec.test.values())


def _jsonable(spec: BenchmarkData) -> dict:
    return json.loads(json.dumps(spec.to_dict()))
