"""The ablation's multi-phase benchmark: a training and a test dataset, split by body.

Synthetic cases come from ``synthesize_from_labels`` on the bundled real anatomies (one seed per case:
its own deformation, field of view, fat, gas and contrast timing within the phase): training cases from
the training bodies, test cases from the test bodies, each split's bodies drawn in turn. The test set
also holds the given real scans of unseen patients, in their own phase. Every case records its body as
its ``subject``. Both datasets are written once and reused (``benchmark.json`` records the spec they were
made from, real scans by name).
"""

from __future__ import annotations

import json
from itertools import groupby
from pathlib import Path

import numpy as np

from dccseg.dataset import Dataset
from dccseg.errors import DccsegError
from dccseg.fileutil import atomic_output
from dccseg.io import read_image, read_labelmap
from dccseg.phantoms import load_template, prepare_template, synthesize_from_labels
from dccseg.progress import QUIET, Progress

from .plan import PHASE_CODES, BenchmarkData, RealScan

SPEC_FILE = "benchmark.json"


def build_benchmark(spec: BenchmarkData, folder: Path, progress: Progress = QUIET) -> tuple[Path, Path]:
    """The (train, test) dataset folders under ``folder``; built unless an identical spec already made them."""
    folder = Path(folder)
    train_dir, test_dir = folder / "train", folder / "test"
    spec_path = folder / SPEC_FILE
    if spec_path.is_file():
        if json.loads(spec_path.read_text(encoding="utf-8")) != _jsonable(spec):
            raise DccsegError(f"{folder} holds benchmark data of another configuration; use a new --output folder")
        return train_dir, test_dir
    datasets = {"train": Dataset.open_or_new(train_dir, name="ablation-train"), "test": Dataset.open_or_new(test_dir, name="ablation-test")}
    slots = sorted(synthetic_slots(spec), key=lambda slot: slot[0])  # by body: one prepared body in memory at a time
    done = 0
    for body, group in groupby(slots, key=lambda slot: slot[0]):
        template = prepare_template(*load_template(body))
        for _, split, case_id, phase, seed in group:
            progress.update("data", done / len(slots), f"synthesising {case_id}")
            done += 1
            ct, labels = synthesize_from_labels(template, None, phase, seed, output_spacing=spec.spacing)
            datasets[split].add_volumes(case_id, ct, labels, phase, source=f"synthesize_from_labels({body}, seed={seed})", subject=body, replace=True)
    _add_real_cases(spec.real_test, datasets["test"], progress)
    with atomic_output(spec_path) as tmp:
        tmp.write_text(json.dumps(_jsonable(spec), indent=2) + "\n", encoding="utf-8")
    return train_dir, test_dir


def synthetic_slots(spec: BenchmarkData) -> list[tuple[str, str, str, str, int]]:
    """(body, split, case id, phase, seed) of every synthetic case; each split draws its own bodies in turn."""
    seeds = iter(np.random.default_rng(spec.seed).permutation(100000))
    slots = []
    for split, counts, bodies in (("train", spec.train, spec.train_bodies), ("test", spec.test, spec.test_bodies)):
        phases = [(phase, k) for phase, count in counts.items() for k in range(count)]
        for index, (phase, k) in enumerate(phases):
            body = bodies[index % len(bodies)]
            slots.append((body, split, f"{split}-{body}-{PHASE_CODES[phase]}-{k + 1:02d}", phase, int(next(seeds))))
    return slots


def _add_real_cases(scans: tuple[RealScan, ...], dataset: Dataset, progress: Progress) -> None:
    for scan in scans:
        progress.update("data", 1.0, f"reading the real scan {scan.id}")
        ct = read_image(scan.ct)
        labels = read_labelmap(scan.labels, reference=ct)
        source = f"real CT {scan.to_dict()['ct']}, labels {scan.to_dict()['labels']}"
        dataset.add_volumes(scan.id, ct, labels, scan.phase, source=source, subject=scan.name, replace=True)


def _jsonable(spec: BenchmarkData) -> dict:
    return json.loads(json.dumps(spec.to_dict()))
