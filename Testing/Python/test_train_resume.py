"""Stopping (SIGTERM), killing (SIGKILL) and resuming a real training run loses at most the current epoch."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import torch

from train_fixtures import dccseg_command, phantom_dataset, run_dccseg, single_thread_env

EPOCHS = 6


def metric_epochs(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    return [json.loads(line)["epoch"] for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def start(dataset: Path, run: Path, log: Path, *extra: str) -> subprocess.Popen:
    args = ["train", "coarse", str(dataset), "--output", str(run), "--config", "tiny", "--epochs", str(EPOCHS), "--device", "cpu", "--progress", "none", *extra]
    return subprocess.Popen(dccseg_command(*args), stdout=subprocess.DEVNULL, stderr=open(log, "a"), env=single_thread_env())


def wait_until(condition, process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"training ended early with {process.returncode}"
        assert time.monotonic() < deadline, "timed out waiting for a checkpoint"
        time.sleep(0.05)


def test_stop_kill_and_resume_continue_from_the_last_epoch(tmp_path):
    """SIGTERM -> "stopped" (exit 130); --resume; SIGKILL; --resume -> finished, every epoch logged once."""
    dataset = phantom_dataset(tmp_path / "data", cases=3)
    run, log = tmp_path / "run", tmp_path / "log.txt"

    process = start(dataset, run, log)
    wait_until(lambda: (run / "coarse" / "last.pt").exists(), process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 130, log.read_text(encoding="utf-8")[-2000:]
    status = json.loads((run / "status.json").read_text(encoding="utf-8"))
    assert status["state"] == "stopped" and status["error"] is None
    stopped_at = torch.load(run / "coarse" / "last.pt", weights_only=True)["epoch"]
    assert 1 <= stopped_at < EPOCHS
    assert metric_epochs(run) == list(range(1, stopped_at + 1))
    first_lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()

    process = start(dataset, run, log, "--resume")
    wait_until(lambda: len(metric_epochs(run)) > stopped_at, process)
    process.kill()
    process.wait(timeout=60)
    assert json.loads((run / "status.json").read_text(encoding="utf-8"))["state"] == "running"  # killed: nobody could say otherwise
    killed_at = torch.load(run / "coarse" / "last.pt", weights_only=True)["epoch"]
    assert stopped_at < killed_at < EPOCHS

    run_dccseg("train", "coarse", str(dataset), "--output", str(run), "--config", "tiny", "--epochs", str(EPOCHS), "--device", "cpu", "--progress", "none", "--resume")
    assert metric_epochs(run) == list(range(1, EPOCHS + 1))
    assert (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()[:stopped_at] == first_lines
    status = json.loads((run / "status.json").read_text(encoding="utf-8"))
    assert status["state"] == "finished" and status["epoch"] == EPOCHS and status["fraction"] == 1.0
    assert (run / "coarse" / "model.safetensors").is_file()

    again = subprocess.run(dccseg_command("train", "coarse", str(dataset), "--output", str(run), "--config", "tiny", "--progress", "none"), capture_output=True, text=True, encoding="utf-8")
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    assert json.loads((run / "status.json").read_text(encoding="utf-8"))["state"] == "finished"  # the finished run is left alone

