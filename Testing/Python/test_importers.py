"""``dccseg dataset import``: nnU-Net, Decathlon, BTCV and TotalSegmentator layouts built here, and the real TotalSegmentator case."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from builders import make_ct, make_labels, tree_hash

import dccseg.io as io
from dccseg.cli import main
from dccseg.dataset import Dataset
from dccseg.errors import DccsegError
from dccseg.importers import TOTALSEG_FILES, parse_label_map
from dccseg.io.organ_names import organ_for_name
from dccseg.volume import Volume

DATA = Path(__file__).resolve().parents[2] / "dccseg" / "data"


def run(argv, capsys):
    code = main([*argv, "--progress", "none"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def build_nnunet(root: Path, labels: dict, cases=("amos_0001", "amos_0002")) -> None:
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": labels, "numTraining": len(cases), "file_ending": ".nii.gz"}))
    for index, name in enumerate(cases):
        ct = make_ct(seed=index)
        io.write_image(ct, root / "imagesTr" / f"{name}_0000.nii.gz")
        io.write_labelmap(make_labels(ct, ids=tuple(v for v in labels.values() if v)), root / "labelsTr" / f"{name}.nii.gz")


def import_ok(fmt, src, dest, capsys, *extra):
    before = tree_hash(src)
    code, out, err = run(["dataset", "import", fmt, str(src), str(dest), "--json", *extra], capsys)
    assert code == 0, err
    assert tree_hash(src) == before  # the source is never modified
    return json.loads(out.strip().splitlines()[-1])["imported"]


def organ_voxels(path: Path) -> dict[int, int]:
    counts = np.bincount(io.read_labelmap(path).array.ravel())
    return {i: int(n) for i, n in enumerate(counts) if i and n}


def test_nnunet_maps_names_and_drops_non_targets(tmp_path, capsys):
    build_nnunet(tmp_path / "Dataset218_AMOS", {"background": 0, "liver": 1, "arota": 2, "duodenum": 3})
    imported = import_ok("nnunet", tmp_path / "Dataset218_AMOS", tmp_path / "ds", capsys)
    assert [c["id"] for c in imported] == ["amos_0001", "amos_0002"] and imported[0]["phase"] == "unknown"
    counts = organ_voxels(tmp_path / "ds" / imported[0]["label"])
    source = organ_voxels(tmp_path / "Dataset218_AMOS" / "labelsTr" / "amos_0001.nii.gz")
    assert counts == {6: source[1], 8: source[2]}  # liver -> 6, aorta -> 8, duodenum -> background


def test_nnunet_unmapped_names_listed_then_label_map(tmp_path, capsys):
    build_nnunet(tmp_path / "src", {"background": 0, "liver": 1, "blob": 2, "thing": 3})
    code, _, err = run(["dataset", "import", "nnunet", str(tmp_path / "src"), str(tmp_path / "ds")], capsys)
    assert code == 2 and "2 'blob', 3 'thing'" in err and "--label-map" in err
    assert not (tmp_path / "ds").exists()
    imported = import_ok("nnunet", tmp_path / "src", tmp_path / "ds", capsys, "--label-map", "1:liver,2:11")
    counts = organ_voxels(tmp_path / "ds" / imported[1]["label"])
    assert set(counts) == {6, 11}


def test_msd_merges_tumour_into_organ(tmp_path, capsys):
    src = tmp_path / "Task03_Liver"
    (src / "imagesTr").mkdir(parents=True)
    (src / "labelsTr").mkdir()
    training = []
    for index in range(2):
        ct = make_ct(seed=index)
        io.write_image(ct, src / "imagesTr" / f"liver_{index}.nii.gz")
        io.write_labelmap(make_labels(ct, ids=(1, 2)), src / "labelsTr" / f"liver_{index}.nii.gz")
        training.append({"image": f"./imagesTr/liver_{index}.nii.gz", "label": f"./labelsTr/liver_{index}.nii.gz"})
    (src / "dataset.json").write_text(json.dumps({"name": "Liver", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver", "2": "cancer"}, "training": training}), encoding="utf-8")
    imported = import_ok("msd", src, tmp_path / "ds", capsys, "--phase", "portal-venous")
    assert [c["id"] for c in imported] == ["liver_0", "liver_1"] and imported[0]["phase"] == "portal-venous"
    source = organ_voxels(src / "labelsTr" / "liver_0.nii.gz")
    assert organ_voxels(tmp_path / "ds" / imported[0]["label"]) == {6: source[1] + source[2]}


def test_btcv_rawdata(tmp_path, capsys):
    base = tmp_path / "RawData" / "Training"
    for index in (1, 2):
        ct = make_ct(seed=index)
        io.write_image(ct, base / "img" / f"img{index:04d}.nii.gz")
        io.write_labelmap(make_labels(ct, ids=(5, 13)), base / "label" / f"label{index:04d}.nii.gz")
    io.write_image(make_ct(seed=9), base / "img" / "img0009.nii.gz")  # no label: skipped
    imported = import_ok("btcv", tmp_path / "RawData", tmp_path / "ds", capsys)
    assert [c["id"] for c in imported] == ["img0001", "img0002"] and {c["phase"] for c in imported} == {"portal-venous"}
    assert set(organ_voxels(tmp_path / "ds" / imported[0]["label"])) == {5, 13}
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text(encoding="utf-8"))["name"] == "RawData"


def test_totalsegmentator_tiny_subjects_first_wins(tmp_path, capsys):
    src = tmp_path / "totalseg"
    for subject in ("s0001", "s0002"):
        ct = make_ct()
        io.write_image(ct, src / subject / "ct.nii.gz")
        seg = src / subject / "segmentations"
        liver = np.zeros(ct.shape, np.float64)
        liver[:, 2:5, 2:5] = 1.0
        spleen = np.zeros(ct.shape, np.float64)
        spleen[:, 4:6, 4:6] = 1.0
        for name, mask in (("liver", liver), ("spleen", spleen), ("colon", spleen)):
            io.write_image(ct.with_array(mask.astype(np.float32)), seg / f"{name}.nii.gz")
    imported = import_ok("totalsegmentator", src, tmp_path / "ds", capsys)
    assert [c["id"] for c in imported] == ["s0001", "s0002"] and "kidney_right" in imported[0]["notes"]
    labels = io.read_labelmap(tmp_path / "ds" / imported[0]["label"]).array
    assert int((labels == 1).sum()) == 8 * 4 and int((labels == 6).sum()) == 8 * 9 - 8 * 1  # spleen (id 1) wins the overlap


def test_totalsegmentator_real_case(tmp_path, capsys):
    subject = tmp_path / "example"
    subject.mkdir()
    shutil.copy(DATA / "totalseg_example" / "example_ct.nii.gz", subject / "ct.nii.gz")
    shutil.copytree(DATA / "totalseg_example" / "segmentations", subject / "segmentations")
    imported = import_ok("totalsegmentator", subject, tmp_path / "ds", capsys, "--phase", "non-contrast")
    assert len(imported) == 1 and imported[0]["phase"] == "non-contrast" and imported[0]["notes"] == ""
    counts = organ_voxels(tmp_path / "ds" / imported[0]["label"])
    readme = {1: 9677, 2: 6993, 3: 5144, 4: 1300, 6: 41602, 7: 4977, 8: 1786, 9: 2131, 10: 1037, 11: 818, 12: 174, 13: 223}
    assert set(counts) == set(readme)
    for label, expected in readme.items():
        assert abs(counts[label] - expected) <= 0.01 * expected, (label, counts[label], expected)
    reference = io.read_labelmap(DATA / "totalseg_example" / "example_ct_organs.nii.gz").array
    stored = io.read_labelmap(tmp_path / "ds" / imported[0]["label"]).array
    assert np.mean(stored == reference) > 0.999
    code, out, _ = run(["dataset", "validate", str(tmp_path / "ds"), "--json"], capsys)
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["summary"]["phases"] == {"non-contrast": 1}


def test_totalseg_names_are_our_organs():
    for label, name in TOTALSEG_FILES.items():
        assert organ_for_name(name).label == label


def test_import_refuses_non_empty_folder_and_source_inside(tmp_path, capsys):
    build_nnunet(tmp_path / "src", {"background": 0, "liver": 1})
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine", encoding="utf-8")
    code, _, err = run(["dataset", "import", "nnunet", str(tmp_path / "src"), str(tmp_path / "busy")], capsys)
    assert code == 2 and "not empty" in err and sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]
    code, _, err = run(["dataset", "import", "nnunet", str(tmp_path / "src"), str(tmp_path / "src" / "out")], capsys)
    assert code == 2 and "inside the source" in err and not (tmp_path / "src" / "out").exists()


def test_import_into_existing_dataset_and_clashes(tmp_path, capsys):
    build_nnunet(tmp_path / "src", {"background": 0, "spleen": 1})
    import_ok("nnunet", tmp_path / "src", tmp_path / "ds", capsys)
    code, _, err = run(["dataset", "import", "nnunet", str(tmp_path / "src"), str(tmp_path / "ds")], capsys)
    assert code == 2 and "already exist" in err
    assert len(Dataset.load(tmp_path / "ds").cases) == 2
    imported = import_ok("nnunet", tmp_path / "src", tmp_path / "ds", capsys, "--replace")
    assert all(len(c["replaced"]) == 1 for c in imported)


def test_failing_case_leaves_no_new_dataset(tmp_path, capsys):
    build_nnunet(tmp_path / "src", {"background": 0, "liver": 1}, cases=("a", "b"))
    ct = make_ct()
    io.write_labelmap(Volume(make_labels(ct).array, (2.0, 2.0, 2.0), ct.origin, ct.direction), tmp_path / "src" / "labelsTr" / "b.nii.gz")
    code, _, err = run(["dataset", "import", "nnunet", str(tmp_path / "src"), str(tmp_path / "ds")], capsys)
    assert code == 2 and "case 'b'" in err and "grids differ" in err and "nothing was imported" in err
    assert not (tmp_path / "ds").exists()


def test_empty_source_and_bad_label_map(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run(["dataset", "import", "totalsegmentator", str(tmp_path / "empty"), str(tmp_path / "ds")], capsys)
    assert code == 2 and "no totalsegmentator cases" in err and not (tmp_path / "ds").exists()
    with pytest.raises(DccsegError, match="srcid:ourid"):
        parse_label_map("1=6")
    assert parse_label_map("1:6, 2:background,3:right kidney") == {1: 6, 2: 0, 3: 2}
