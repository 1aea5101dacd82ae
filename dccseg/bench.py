"""Benchmark of ``dccseg segment``: per-stage latency and peak memory, end to end, per device.

Cases: the bundled CT, a 512x512x200 CT and a 512x512x2000 int16 whole-body CT (both generated
from the bundled one into the output folder, never stored in the repository).

Run with ``make bench`` (not part of the tests). Each measurement is a fresh process, timed
from process start to the output file, so model loading and writing are included; the refine
stage's share of that time is its own column. Results
are printed side by side with the product targets and the ratios between them, and saved as
``bench.json`` and ``bench.md`` in the output folder.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk

from .fileutil import atomic_output
from .io import read_image, write_image
from .io.images import write_sitk
from .volume import Volume

BUNDLED_CT = Path(__file__).parent / "data" / "totalseg_example" / "example_ct.nii.gz"
LARGE_SIZE = (512, 512, 200)
LARGE_SPACING = (0.8, 0.8, 1.5)
WHOLE_BODY_SIZE = (512, 512, 2000)
WHOLE_BODY_SPACING = (0.8, 0.8, 0.8)
TARGET_SECONDS = {("shared-ct", "cpu"): 30.0, ("ct-512x512x200", "cpu"): 120.0, ("ct-512x512x200", "cuda"): 5.0}
TARGET_PEAK_GIB = {"ct-512x512x200": 8.0, "ct-512x512x2000": 4.0}
CASES = ("shared-ct", "ct-512x512x200", "ct-512x512x2000")
MODES = ("default", "fast")
STAGE_ORDER = ["load", "coarse", "refine", "fuse", "write"]


@dataclass
class Measurement:
    case: str
    device: str
    mode: str
    seconds: float
    peak_rss_gib: float
    stages: dict[str, float] = field(default_factory=dict)
    returncode: int = 0


def _centred_grid(source: sitk.Image, size: tuple[int, int, int], spacing: tuple[float, float, float]) -> sitk.Image:
    reference = sitk.Image(size, sitk.sitkUInt8)
    reference.SetSpacing(spacing)
    reference.SetDirection(source.GetDirection())
    centre = source.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in source.GetSize()])
    half = np.array(source.GetDirection()).reshape(3, 3) @ (np.array(spacing) * (np.array(size) - 1) / 2)
    reference.SetOrigin(tuple(np.array(centre) - half))
    return reference


def make_large_ct(path: Path) -> Path:
    """The bundled real CT resampled onto a 512x512x200 grid at 0.8x0.8x1.5 mm (air outside)."""
    source = read_image(BUNDLED_CT).to_sitk()
    large = sitk.Resample(source, _centred_grid(source, LARGE_SIZE, LARGE_SPACING), sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    write_image(Volume.from_sitk(large), path)
    return path


def make_whole_body_ct(path: Path) -> Path:
    """A 512x512x2000 int16 CT at 0.8 mm (a whole-body scan at thin slices): the bundled CT in its middle, air around it."""
    source = read_image(BUNDLED_CT).to_sitk()
    grid = _centred_grid(source, WHOLE_BODY_SIZE, WHOLE_BODY_SPACING)
    write_sitk(sitk.Resample(source, grid, sitk.Transform(), sitk.sitkLinear, -1000.0, sitk.sitkInt16), path)
    return path


def made_apart(maker: Callable[[Path], Path], path: Path) -> Path:
    """``maker(path)`` in a fresh interpreter, so that this process stays small.

    Linux counts the memory a process had when it was forked in its peak RSS. A whole-body CT generated in this
    process would set that floor (1.8 GiB) for every ``dccseg segment`` measured after it.
    """
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(maker, (path,))


def run_segment(case: str, image: Path, output: Path, device: str, fast: bool) -> Measurement:
    """Run ``dccseg segment`` in a fresh process and measure it."""
    command = [sys.executable, "-m", "dccseg", "segment", str(image), str(output), "--device", device, "--progress", "json", "--overwrite"]
    if fast:
        command.append("--fast")
    start = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, encoding="utf-8")
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        returncode = os.waitstatus_to_exitcode(status)
        process.returncode = returncode
        errors.seek(0)
        stderr = errors.read()
    peak = round(usage.ru_maxrss / 2**20, 2)
    stages: dict[str, float] = {}
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        stages.update(record.get("timings") or {})
    if returncode != 0:
        print(f"  {case}/{device}: dccseg segment failed ({returncode}): {stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    return Measurement(case, device, "fast" if fast else "default", round(seconds, 2), peak, stages, returncode)


def refine_share(m: Measurement) -> str:
    """The refine stage's part of the end-to-end time (the stage organs in the card's refine_skip do not pay for)."""
    if m.returncode != 0 or "refine" not in m.stages or m.seconds <= 0:
        return "-"
    return f"{100 * m.stages['refine'] / m.seconds:.0f}%"


def table(measurements: list[Measurement]) -> str:
    stages = sorted({s for m in measurements for s in m.stages}, key=lambda s: (STAGE_ORDER.index(s) if s in STAGE_ORDER else len(STAGE_ORDER), s))
    header = ["case", "device", "mode", *[f"{s} s" for s in stages], "total s", "refine share", "target s", "total/target", "peak RSS GiB",
              "vs default"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in measurements:
        target = TARGET_SECONDS.get((m.case, m.device))
        default = next((d for d in measurements if (d.case, d.device, d.mode) == (m.case, m.device, "default")), None)
        rows.append(
            "| "
            + " | ".join(
                [
                    m.case,
                    m.device,
                    m.mode,
                    *[f"{m.stages.get(s, float('nan')):.2f}" for s in stages],
                    f"{m.seconds:.2f}" if m.returncode == 0 else "failed",
                    refine_share(m),
                    f"{target:.0f}" if target else "-",
                    f"{m.seconds / target:.2f}" if target and m.returncode == 0 else "-",
                    f"{m.peak_rss_gib:.2f}" + (f" (target {TARGET_PEAK_GIB[m.case]:.0f})" if m.case in TARGET_PEAK_GIB else ""),
                    f"{m.seconds / default.seconds:.2f}x" if default and default.returncode == 0 and m.returncode == 0 else "-",
                ]
            )
            + " |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="bench-output", type=Path)
    parser.add_argument("--devices", default=None, help="comma-separated devices (default: cpu, plus cuda when present)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated cases among {', '.join(CASES)} (default: all)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated modes: default, fast (default: both)")
    args = parser.parse_args(argv)
    import torch

    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    args.output.mkdir(parents=True, exist_ok=True)
    makers = {"ct-512x512x200": make_large_ct, "ct-512x512x2000": make_whole_body_ct}
    cases = {}
    for case in args.cases.split(","):
        if case not in CASES:
            parser.error(f"unknown case {case!r}; use {', '.join(CASES)}")
        path = args.output / f"{case}.nii.gz"
        cases[case] = BUNDLED_CT if case == "shared-ct" else path if path.exists() else made_apart(makers[case], path)
    measurements = []
    for device in devices:
        for case, image in cases.items():
            for fast in [mode == "fast" for mode in args.modes.split(",")]:
                print(f"measuring {case} on {device} ({'fast' if fast else 'default'}) ...", file=sys.stderr)
                output = args.output / f"{case}-{device}-{'fast' if fast else 'default'}.seg.nrrd"
                measurements.append(run_segment(case, image, output, device, fast))
    report = table(measurements)
    print(report)
    with atomic_output(args.output / "bench.md") as tmp:
        tmp.write_text(f"# dccseg segment benchmark\n\n{report}\n", encoding="utf-8")
    with atomic_output(args.output / "bench.json") as tmp:
        tmp.write_text(json.dumps([asdict(m) for m in measurements], indent=2))
    return 0 if all(m.returncode == 0 for m in measurements) else 1


if __name__ == "__main__":
    sys.exit(main())
