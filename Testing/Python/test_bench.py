"""``make bench``: the large scans are generated in a fresh interpreter, so they do not inflate the peak memory it reports."""

import os
from pathlib import Path

from dccseg.bench import made_apart


def _pid_into(path: Path) -> Path:
    path.write_text(str(os.getpid()), encoding="utf-8")
    return path


def test_bench_makes_its_large_scans_in_another_process(tmp_path):
    made = made_apart(_pid_into, tmp_path / "pid")
    assert made == tmp_path / "pid" and int(made.read_text(encoding="utf-8")) != os.getpid()
