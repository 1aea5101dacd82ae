"""What ``dccseg segment`` hands users besides labels: DICOM SEG, statistics with flags, the batch report; and ``stats``/``dicom-seg``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest

from builders import write_dicom_series
from dccseg.cli import main
from dccseg.io import read_image, read_labelmap, write_image, write_labelmap
from dccseg.organs import ORGAN_BY_KEY
from test_dicom_seg import read_back
from test_segment import phantom, store  # noqa: F401  (fixtures: the tiny model store and its phantom CT)

DATA = Path(__file__).resolve().parents[2] / "dccseg" / "data"
TINY = ["--model", "tiny-seg", "--device", "cpu"]


@pytest.fixture
def tiny_store(store, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DCCSEG_MODEL_STORE", str(store))


def test_dicom_series_to_dicom_seg_with_statistics(tiny_store, phantom, tmp_path, capsys):  # noqa: F811
    series = tmp_path / "series"
    write_dicom_series(phantom, series)
    out = tmp_path / "out" / "organs.dcm"
    assert main(["segment", str(series), str(out), *TINY, "--statistics", "--progress", "json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert any(r["message"].startswith(("check: ", "plausibility: no flags")) for r in records)
    labelmap = tmp_path / "out" / "organs.nii.gz"
    assert main(["segment", str(series), str(labelmap), *TINY, "--progress", "none"]) == 0
    labels = read_labelmap(labelmap)
    seg, organ_map, _ = read_back(out, series, labels)
    assert np.array_equal(organ_map, labels.array)
    assert {d.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName for d in seg.SegmentSequence} == {"tiny-seg"}
    stats = json.loads((tmp_path / "out" / "organs.stats.json").read_text(encoding="utf-8"))
    assert stats["model"] == "tiny-seg@0.0.1" and stats["seconds"] > 0 and stats["case"] == "series"
    liver = ORGAN_BY_KEY["liver"]
    assert stats["organs"]["liver"]["voxels"] == int((labels.array == liver.label).sum())
    assert isinstance(stats["flags"], list) and stats["phase"]["guess"]


def test_dicom_seg_for_a_non_dicom_input_stops_before_the_model_loads(tmp_path, capsys):
    out = tmp_path / "out.dcm"
    assert main(["segment", str(DATA / "totalseg_example" / "example_ct.nii.gz"), str(out), "--model", "no-such-model", "--progress", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a DICOM series" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_folder_of_three_cts_gets_statistics_csv_overlays_and_a_report(tiny_store, phantom, tmp_path):  # noqa: F811
    cases = tmp_path / "cases"
    cases.mkdir()
    for index, name in enumerate(("a", "b", "c")):
        write_image(phantom.with_array(np.roll(phantom.array, 3 * index, axis=1)), cases / f"{name}.nii.gz")
    out = tmp_path / "labels"
    assert main(["segment", str(cases), str(out), *TINY, "--fast", "--format", ".nii.gz", "--progress", "none"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "a.nii.gz", "a.stats.json", "b.nii.gz", "b.stats.json", "c.nii.gz", "c.stats.json", "report", "report.md", "statistics.csv"]
    assert sorted(p.name for p in (out / "report").iterdir()) == ["a.png", "b.png", "c.png"]
    rows = list(csv.DictReader((out / "statistics.csv").open(encoding="utf-8")))
    assert len(rows) == 3 * 13 and {r["case"] for r in rows} == {"a", "b", "c"}
    b_liver = next(r for r in rows if r["case"] == "b" and r["organ"] == "liver")
    labels_b = read_labelmap(out / "b.nii.gz")
    assert int(b_liver["voxels"]) == int((labels_b.array == ORGAN_BY_KEY["liver"].label).sum())
    assert all(0.0 < float(r["coarse_confidence"]) <= 1.0 for r in rows if r["present"] == "True")  # each found organ with the coarse network's confidence
    report = (out / "report.md").read_text(encoding="utf-8")
    assert [line.split(" | ")[0] for line in report.splitlines() if line.startswith("| [")] == ["| [a](#a)", "| [b](#b)", "| [c](#c)"]
    assert "![b](report/b.png)" in report
    (out / "c.nii.gz").unlink()  # a rerun redoes only c and still reports all three
    assert main(["segment", str(cases), str(out), *TINY, "--fast", "--format", ".nii.gz", "--progress", "none"]) == 0
    assert sum(1 for line in (out / "report.md").read_text(encoding="utf-8").splitlines() if line.startswith("| [")) == 3


def test_stats_command_prints_table_or_json_and_writes_only_when_asked(tmp_path, capsys):
    ct, labels = DATA / "totalseg_example" / "example_ct.nii.gz", DATA / "totalseg_example" / "example_ct_organs.nii.gz"
    out = tmp_path / "stats.json"
    assert main(["stats", str(ct), str(labels), "--output", str(out), "--progress", "none"]) == 0
    table = capsys.readouterr().out
    assert "spleen" in table and "261.3" in table and "plausibility: no flags" in table
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["organs"]["liver"]["volume_ml"] == pytest.approx(41602 * 0.027, rel=1e-3) and written["flags"] == []
    assert main(["stats", str(ct), str(labels), "--json", "--organs", "liver,spleen", "--progress", "none"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["organs"]) == ["spleen", "liver"]
    assert main(["stats", str(ct), str(labels), "--output", str(out), "--progress", "none"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_dicom_seg_command_writes_a_checked_label_map_and_refuses_other_grids(tmp_path, capsys):
    series = DATA / "dcmqi_ct3slice" / "dicom"
    ct = read_image(series)
    labels = ct.with_array(np.where(read_labelmap(DATA / "dcmqi_ct3slice" / "liver_spine_seg.nrrd").array == 1, 6, 0).astype(np.uint8))
    write_labelmap(labels, tmp_path / "edited.nrrd")
    out = tmp_path / "edited.dcm"
    assert main(["dicom-seg", str(series), str(tmp_path / "edited.nrrd"), str(out), "--model", "dccseg-abdomen@0.1.0", "--progress", "none"]) == 0
    seg = hd.seg.segread(out)
    assert [(d.SegmentLabel, d.SegmentAlgorithmType) for d in seg.SegmentSequence] == [("liver", "SEMIAUTOMATIC")]
    assert np.array_equal(read_back(out, series, ct)[1], labels.array)
    slab = DATA / "totalseg_dicom_slab" / "organs.nii.gz"
    assert main(["dicom-seg", str(series), str(slab), str(tmp_path / "other.dcm"), "--progress", "none"]) == 2
    assert "not on the series' grid" in capsys.readouterr().err
    assert main(["dicom-seg", str(series), str(tmp_path / "edited.nrrd"), str(tmp_path / "x.dcm"), "--model", "dccseg", "--progress", "none"]) == 2
    assert "name@version" in capsys.readouterr().err
    assert not (tmp_path / "other.dcm").exists() and not (tmp_path / "x.dcm").exists()
