"""tools/body_holdout_study.py: the held-out body is validated on and never trained on; the figure is the mean of the last validations; the crop and the widths are the ones asked for."""

import json
import subprocess
import sys
from pathlib import Path

from dccseg.dataset import Dataset
from train_fixtures import single_thread_env

TOOL = Path(__file__).resolve().parents[2] / "tools" / "body_holdout_study.py"


def test_a_held_out_body_is_only_validated_on(tmp_path):
    work = tmp_path / "fold"
    result = subprocess.run([sys.executable, str(TOOL), str(work), "--held-out", "s0327", "--anatomy", "wide", "--anatomies", "2", "--validation", "2", "--epochs", "2", "--crop", "32", "--channels", "8,16,32,64"],
                            env=single_thread_env(), capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    subjects = {case.id: case.subject for case in Dataset.load(work / "data").cases}
    split = json.loads((work / "run" / "split.json").read_text(encoding="utf-8"))
    assert len(split["val"]) == 2 and {subjects[i] for i in split["val"]} == {"s0327"}
    assert len(split["train"]) == 2 and "s0327" not in {subjects[i] for i in split["train"]} and not {"s0006", "s0009"} & {subjects[i] for i in split["train"]}
    report = json.loads((work / "result.json").read_text(encoding="utf-8"))
    assert len(report["curve"]) == 2 and abs(report["figure"] - sum(report["curve"]) / 2) < 1e-4 and "held out s0327, wide anatomy" in result.stdout
    overrides = json.loads((work / "run" / "run.json").read_text(encoding="utf-8"))["overrides"]
    assert report["crop"] == 32 and overrides["coarse__crop"] == [32, 32, 32]
    assert report["channels"] == [8, 16, 32, 64] and overrides["coarse__network"]["channels"] == [8, 16, 32, 64]


def test_a_crop_the_network_cannot_halve_stops_before_anything_is_rendered(tmp_path):
    result = subprocess.run([sys.executable, str(TOOL), str(tmp_path / "fold"), "--held-out", "s0327", "--crop", "60"],
                            env=single_thread_env(), capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert result.returncode == 2 and "--crop must be a multiple of 8" in result.stderr and not (tmp_path / "fold").exists()


def test_widths_the_network_cannot_take_stop_before_anything_is_rendered(tmp_path):
    for widths, message in (("16", "at least two positive widths"), ("16,wide", "whole numbers separated by commas")):
        result = subprocess.run([sys.executable, str(TOOL), str(tmp_path / "fold"), "--held-out", "s0327", "--channels", widths],
                                env=single_thread_env(), capture_output=True, text=True, encoding="utf-8", timeout=120)
        assert result.returncode == 2 and message in result.stderr and not (tmp_path / "fold").exists()
