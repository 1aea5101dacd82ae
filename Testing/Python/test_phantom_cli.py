"""``dccseg phantom procedural|synth`` write ready, valid datasets and never overwrite a case."""

import json

import numpy as np
import SimpleITK as sitk

from dccseg.cli import main
from dccseg.dataset_validate import validate_dataset
from dccseg.progress import QUIET


def test_procedural_writes_one_case_per_phase(tmp_path, capsys):
    out = tmp_path / "proc"
    assert main(["phantom", "procedural", str(out), "--phase", "all", "--shape", "24,32,32", "--seed", "3", "--progress", "none"]) == 0
    manifest = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert [c["phase"] for c in manifest["cases"]] == ["non-contrast", "arterial", "portal-venous", "delayed"]
    assert manifest["labels"]["1"] == "spleen"
    assert validate_dataset(out, QUIET).ok
    image = sitk.ReadImage(str(out / manifest["cases"][0]["image"]))
    assert image.GetSize() == (32, 32, 24) and sitk.GetArrayViewFromImage(image).dtype == np.int16
    assert main(["phantom", "procedural", str(out), "--phase", "arterial", "--shape", "24,32,32", "--seed", "3", "--progress", "none"]) == 2
    assert "already holds case" in capsys.readouterr().err


def test_synth_writes_a_multi_phase_dataset(tmp_path):
    out = tmp_path / "synth"
    assert main(["phantom", "synth", str(out), "--count", "1", "--phase", "arterial,delayed", "--spacing", "6,6,6", "--progress", "none"]) == 0
    manifest = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert sorted(c["phase"] for c in manifest["cases"]) == ["arterial", "delayed"]
    assert validate_dataset(out, QUIET).ok


def test_synth_mixes_organ_shapes_between_the_listed_bodies(tmp_path):
    def organs(anatomy):
        out = tmp_path / anatomy
        assert main(["phantom", "synth", str(out), "--count", "1", "--phase", "arterial", "--template", "s0009,totalseg_example", "--spacing", "6,6,6",
                     "--anatomy", anatomy, "--whole-view", "--progress", "none"]) == 0
        case = json.loads((out / "dataset.json").read_text(encoding="utf-8"))["cases"][0]
        return sitk.GetArrayFromImage(sitk.ReadImage(str(out / case["label"])))

    assert not np.array_equal(organs("mixed"), organs("typical"))  # s0009's kidneys, gallbladder, pancreas or adrenals take the other body's shapes


def test_bad_phase_is_a_one_line_error(tmp_path, capsys):
    assert main(["phantom", "synth", str(tmp_path / "x"), "--phase", "venous", "--progress", "none"]) == 2
    assert "unknown phase 'venous'" in capsys.readouterr().err and not (tmp_path / "x").exists()
