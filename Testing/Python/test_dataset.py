"""Datasets: the typed API, ``dccseg dataset add`` and ``dccseg dataset validate``."""

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from builders import make_ct, make_labels, oblique_direction, write_dicom_series

import dccseg.io as io
from dccseg.cli import main
from dccseg.dataset import DATASET_FILE, Dataset
from dccseg.volume import Volume


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def pair(tmp_path):
    ct = make_ct(direction=oblique_direction())
    io.write_image(ct, tmp_path / "in" / "ct1.nrrd")
    io.write_labelmap(make_labels(ct, ids=(1, 6)), tmp_path / "in" / "ct1_labels.nii.gz")
    return tmp_path / "in" / "ct1.nrrd", tmp_path / "in" / "ct1_labels.nii.gz"


def test_api_add_save_load(tmp_path):
    ct = make_ct()
    dataset = Dataset.create(tmp_path / "ds", name="tiny")
    case = dataset.add_volumes("a1", ct, make_labels(ct), "arterial", source="test", reviewer="me")
    assert case.image == tmp_path / "ds" / "images" / "a1.nii.gz" and case.label.is_file()
    loaded = Dataset.load(tmp_path / "ds")
    assert loaded.name == "tiny" and [c.id for c in loaded.cases] == ["a1"]
    assert loaded.cases[0].phase == "arterial" and loaded.cases[0].reviewer == "me"
    data = json.loads((tmp_path / "ds" / DATASET_FILE).read_text(encoding="utf-8"))
    assert data["format_version"] == 1 and data["labels"]["6"] == "liver" and data["cases"][0]["label"] == "labels/a1.nii.gz"
    stored = io.read_image(case.image)
    np.testing.assert_array_equal(stored.array, ct.array)
    assert sitk.ReadImage(str(case.image)).GetPixelID() == sitk.sitkInt16  # integer HU stored compactly


def test_cli_add_prints_record_and_never_overwrites(tmp_path, pair, capsys):
    image, label = pair
    ds = tmp_path / "ds"
    code, out, _ = run(["dataset", "add", str(ds), "--image", str(image), "--label", str(label), "--phase", "portal-venous", "--reviewer", "Dr A", "--json", "--progress", "none"], capsys)
    assert code == 0
    record = json.loads(out.strip().splitlines()[-1])
    assert record["id"] == "ct1" and record["image"] == "images/ct1.nii.gz" and record["phase"] == "portal-venous" and record["reviewer"] == "Dr A"
    first_label = (ds / "labels" / "ct1.nii.gz").read_bytes()
    code, _, err = run(["dataset", "add", str(ds), "--image", str(image), "--label", str(label), "--phase", "arterial", "--progress", "none"], capsys)
    assert code == 2 and "already exists" in err and "--replace" in err
    assert (ds / "labels" / "ct1.nii.gz").read_bytes() == first_label
    ct = io.read_image(image)
    io.write_labelmap(make_labels(ct, ids=(3,)), tmp_path / "new_label.nii.gz")
    code, out, _ = run(["dataset", "add", str(ds), "--image", str(image), "--label", str(tmp_path / "new_label.nii.gz"), "--phase", "arterial", "--replace", "--json", "--progress", "none"], capsys)
    assert code == 0
    record = json.loads(out.strip().splitlines()[-1])
    assert len(record["replaced"]) == 1 and record["phase"] == "arterial"
    archive = ds / record["replaced"][0]
    assert (archive / "label.nii.gz").read_bytes() == first_label and (archive / "image.nii.gz").is_file()
    assert json.loads((archive / "case.json").read_text(encoding="utf-8"))["phase"] == "portal-venous"
    assert np.unique(io.read_labelmap(ds / "labels" / "ct1.nii.gz").array).tolist() == [0, 3]
    assert [c.id for c in Dataset.load(ds).cases] == ["ct1"]


def test_cli_add_dicom_and_slicer_segmentation(tmp_path, capsys):
    ct = make_ct()
    write_dicom_series(ct, tmp_path / "series")
    io.write_segmentation(make_labels(ct, ids=(2, 11)), tmp_path / "seg.seg.nrrd")
    code, _, _ = run(["dataset", "add", str(tmp_path / "ds"), "--image", str(tmp_path / "series"), "--label", str(tmp_path / "seg.seg.nrrd"), "--phase", "delayed", "--id", "p7", "--progress", "none"], capsys)
    assert code == 0
    case = Dataset.load(tmp_path / "ds").case("p7")
    assert np.unique(io.read_labelmap(case.label).array).tolist() == [0, 2, 11]


def _bad_inputs(tmp_path):
    ct = make_ct()
    good_image, good_label = tmp_path / "ct.nii.gz", tmp_path / "lab.nii.gz"
    io.write_image(ct, good_image)
    io.write_labelmap(make_labels(ct), good_label)
    (tmp_path / "text.nii.gz").write_text("not an image", encoding="utf-8")
    sitk.WriteImage(sitk.Image(8, 8, sitk.sitkInt16), str(tmp_path / "flat.nii.gz"))
    sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkVectorUInt8, 3), str(tmp_path / "rgb.nii.gz"))
    io.write_image(ct.with_array(np.abs(ct.array) / 4), tmp_path / "mr.nii.gz")
    io.write_labelmap(Volume(make_labels(ct).array, (1.0, 1.0, 1.0), ct.origin, ct.direction), tmp_path / "otherGrid.nii.gz")
    io.write_labelmap(make_labels(ct, ids=(1, 20)), tmp_path / "unknown.nii.gz")
    (tmp_path / "emptydir").mkdir()
    return {
        "not an image": (tmp_path / "text.nii.gz", good_label),
        "2D image": (tmp_path / "flat.nii.gz", good_label),
        "RGB": (tmp_path / "rgb.nii.gz", good_label),
        "Hounsfield": (tmp_path / "mr.nii.gz", good_label),
        "grids differ": (good_image, tmp_path / "otherGrid.nii.gz"),
        "unknown label ids 20": (good_image, tmp_path / "unknown.nii.gz"),
        "is empty": (tmp_path / "emptydir", good_label),
    }


def test_cli_add_bad_inputs_one_line_no_output(tmp_path, capsys):
    for expected, (image, label) in _bad_inputs(tmp_path).items():
        ds = tmp_path / f"ds_{expected.split()[0]}"
        code, out, err = run(["dataset", "add", str(ds), "--image", str(image), "--label", str(label), "--phase", "arterial", "--progress", "none"], capsys)
        assert code == 2, expected
        assert err.count("\n") == 1 and err.startswith("dccseg: error:") and expected in err and "Traceback" not in err, err
        assert not ds.exists(), expected  # nothing written, not even dataset.json


def test_cli_bad_input_in_subprocess_has_no_traceback(tmp_path):
    (tmp_path / "text.nii.gz").write_text("not an image", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "dccseg", "dataset", "add", str(tmp_path / "ds"), "--image", str(tmp_path / "text.nii.gz"), "--phase", "arterial", "--progress", "json"],
        capture_output=True, text=True, encoding="utf-8", timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert json.loads(result.stdout.strip().splitlines()[-1])["stage"] == "error"
    assert not (tmp_path / "ds").exists()


def _write_record(ds, cases):
    data = json.loads((ds / DATASET_FILE).read_text(encoding="utf-8"))
    data["cases"] = cases
    (ds / DATASET_FILE).write_text(json.dumps(data), encoding="utf-8")


def test_validate_reports_every_problem(tmp_path, capsys):
    bad = _bad_inputs(tmp_path / "src")
    ds = tmp_path / "ds"
    dataset = Dataset.create(ds)
    ct = make_ct()
    dataset.add_volumes("good", ct, make_labels(ct), "arterial")
    files = {}
    for name, (image, label) in {"mr": bad["Hounsfield"], "grid": bad["grids differ"], "ids": bad["unknown label ids 20"]}.items():
        (ds / "images" / f"{name}.nii.gz").write_bytes(image.read_bytes())
        (ds / "labels" / f"{name}.nii.gz").write_bytes(label.read_bytes())
        files[name] = {"id": name, "image": f"images/{name}.nii.gz", "label": f"labels/{name}.nii.gz", "phase": "arterial"}
    records = json.loads((ds / DATASET_FILE).read_text(encoding="utf-8"))["cases"] + list(files.values()) + [
        {"id": "gone", "image": "images/gone.nii.gz", "label": "labels/gone.nii.gz", "phase": "venous"},
        {"id": "good", "image": "images/good.nii.gz", "label": None, "phase": "arterial"},
    ]
    _write_record(ds, records)
    code, out, err = run(["dataset", "validate", str(ds), "--progress", "none"], capsys)
    assert code == 1
    problems = [line for line in err.splitlines() if line.startswith("problem:")]
    expected = ["case 'mr': ", "Hounsfield", "case 'grid': ", "grids differ", "case 'ids': ", "unknown label ids 20",
                "case 'gone': image file", "case 'gone': label file", "unknown phase 'venous'", "duplicate case id"]
    for text in expected:
        assert any(text in line for line in problems), (text, problems)
    assert "problem(s)" in out
    code, out, _ = run(["dataset", "validate", str(ds), "--json", "--progress", "none"], capsys)
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 1 and not report["ok"] and len(report["problems"]) == len(problems)


def test_validate_ok_summary(tmp_path, capsys):
    dataset = Dataset.create(tmp_path / "ds")
    for index, phase in enumerate(("arterial", "arterial", "non-contrast")):
        ct = make_ct(seed=index)
        dataset.add_volumes(f"c{index}", ct, make_labels(ct, ids=(1, 6) if index else (6,)), phase)
    code, out, err = run(["dataset", "validate", str(tmp_path / "ds"), "--json", "--progress", "none"], capsys)
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and report["ok"] and report["problems"] == []
    assert report["summary"]["phases"] == {"arterial": 2, "non-contrast": 1}
    assert report["summary"]["organs"] == {"spleen": 2, "liver": 3}
    code, out, _ = run(["dataset", "validate", str(tmp_path / "ds"), "--progress", "none"], capsys)
    assert code == 0 and "OK" in out and "arterial 2" in out


def test_validate_empty_and_broken_folders(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(["dataset", "validate", str(tmp_path / "empty"), "--progress", "none"], capsys)
    assert code == 1 and "not a dataset" in err
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / DATASET_FILE).write_text("{not json", encoding="utf-8")
    code, _, err = run(["dataset", "validate", str(tmp_path / "broken"), "--progress", "none"], capsys)
    assert code == 1 and "not valid JSON" in err
