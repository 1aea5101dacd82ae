"""CT I/O round trips: voxels and geometry survive read -> write -> read, including oblique grids."""

from pathlib import Path

import numpy as np
import pytest
import slicerio
from builders import make_ct, make_labels, oblique_direction, write_dicom_series

import dccseg.io as io
from dccseg.organs import ORGANS
from dccseg.volume import Volume

DATA = Path(__file__).resolve().parents[2] / "dccseg" / "data"


def assert_same(a: Volume, b: Volume, tol: float = 1e-6) -> None:
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.spacing, b.spacing, atol=tol)
    np.testing.assert_allclose(a.origin, b.origin, atol=tol)
    np.testing.assert_allclose(a.direction, b.direction, atol=tol)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
@pytest.mark.parametrize("oblique", [False, True])
def test_image_round_trip(tmp_path, suffix, oblique):
    ct = make_ct(direction=oblique_direction()) if oblique else make_ct()
    io.write_image(ct, tmp_path / f"ct{suffix}")
    back = io.read_image(tmp_path / f"ct{suffix}")
    assert back.array.dtype == np.float32
    assert_same(ct, back)
    assert [p.name for p in tmp_path.iterdir()] == [f"ct{suffix}"]  # no temporary file left


@pytest.mark.parametrize("oblique", [False, True])
def test_dicom_series_round_trip(tmp_path, oblique):
    ct = make_ct(direction=oblique_direction()) if oblique else make_ct()
    write_dicom_series(ct, tmp_path / "series")
    back = io.read_image(tmp_path / "series")
    assert_same(ct, back)
    one_file = io.read_image(tmp_path / "series" / "slice003.dcm")  # a file of the series reads the whole series
    assert_same(ct, one_file)
    io.write_image(back, tmp_path / "ct.nii.gz")
    assert_same(ct, io.read_image(tmp_path / "ct.nii.gz"))


def test_dicom_picks_largest_series_and_says_so(tmp_path):
    folder = tmp_path / "mixed"
    write_dicom_series(make_ct(shape=(6, 8, 8)), folder)
    small = make_ct(shape=(3, 8, 8), origin=(0.0, 0.0, 500.0))
    write_dicom_series(small, tmp_path / "other")
    for k, path in enumerate(sorted((tmp_path / "other").iterdir())):
        data = path.read_bytes().replace(b"1.2.826.0.1.3680043.2.1125.8", b"1.2.826.0.1.3680043.2.1125.6")
        (folder / f"other{k}.dcm").write_bytes(data)
    messages = []
    back = io.read_image(folder, log=messages.append)
    assert back.shape == (6, 8, 8)
    assert "2 DICOM series" in messages[0] and len(messages) == 4
    assert "6 slices" in messages[2] and messages[3].startswith("reading series 2, the axial CT series with the most slices")


def test_labelmap_round_trip_uint8(tmp_path):
    labels = make_labels(make_ct(direction=oblique_direction()), ids=(1, 6, 13))
    for suffix in (".nii.gz", ".nrrd", ".mha"):
        io.write_labelmap(labels, tmp_path / f"l{suffix}")
        back = io.read_labelmap(tmp_path / f"l{suffix}", reference=labels)
        assert back.array.dtype == np.uint8
        assert_same(labels, back)


def test_segmentation_round_trip_with_names_colours_terminology(tmp_path):
    labels = make_labels(make_ct(direction=oblique_direction()), ids=(2, 6, 9))
    path = tmp_path / "out.seg.nrrd"
    io.write_output(labels, path)
    segmentation = slicerio.read_segmentation(str(path))
    segments = segmentation["segments"]
    assert [s["name"] for s in segments] == [o.name for o in ORGANS]
    for segment, organ in zip(segments, ORGANS):
        assert segment["labelValue"] == organ.label
        np.testing.assert_allclose(segment["color"], organ.color_float, atol=1e-6)
        assert segment["terminology"]["type"] == list(organ.type)
        assert segment.get("terminology", {}).get("typeModifier", ["", "", ""])[1] == (organ.modifier[1] if organ.modifier else "")
    empty = next(s for s in segments if s["labelValue"] == 1)
    assert empty["extent"] == [0, -1, 0, -1, 0, -1]
    assert_same(labels, io.read_labelmap(path, reference=labels))


def test_real_dicom_series():
    ct = io.read_image(DATA / "dcmqi_ct3slice" / "dicom")
    assert ct.shape == (3, 512, 512)
    np.testing.assert_allclose(ct.spacing, (0.810547, 0.810547, 1.0), atol=1e-5)
    np.testing.assert_allclose(ct.origin, (-235.199997, -226.800003, -128.690002), atol=1e-5)
    np.testing.assert_allclose(ct.direction, np.eye(3).ravel(), atol=1e-9)
    assert ct.array.min() >= -3024 and ct.array.max() <= 3071
    assert np.percentile(ct.array, 1) < -900  # air, i.e. rescaled to HU


def test_real_labels_on_real_dicom():
    """The dcmqi liver label (1) reads on the series' grid: liver tissue HU, on the patient's right (LPS x < body centre)."""
    ct = io.read_image(DATA / "dcmqi_ct3slice" / "dicom")
    labels = io.read_labelmap(DATA / "dcmqi_ct3slice" / "liver_spine_seg.nrrd", reference=ct)
    liver = labels.array == 1
    assert 20 < ct.array[liver].mean() < 60
    body_x = np.nonzero(ct.array > -300)[2].mean()
    assert np.nonzero(liver)[2].mean() < body_x  # LPS: +x is the patient's left, identity direction


def test_slicer_segmentation_names_map_to_organs(tmp_path):
    """A .seg.nrrd whose segments are named as a user would (and one found by terminology only) maps to our ids."""
    ct = make_ct()
    voxels = np.zeros(ct.size_xyz, dtype=np.uint8)
    voxels[1:3, 2:4, 0:2] = 1
    voxels[4:6, 2:4, 0:2] = 2
    kidney = next(o for o in ORGANS if o.key == "kidney_left")
    segmentation = {
        "voxels": voxels,
        "ijkToLPS": np.diag([*ct.spacing, 1.0]) + np.pad(np.array(ct.origin)[:, None], ((0, 1), (3, 0))),
        "segments": [
            {"id": "Segment_1", "name": "Liver", "labelValue": 1, "layer": 0},
            {"id": "Segment_2", "name": "Segment_2", "labelValue": 2, "layer": 0,
             "terminology": {"contextName": "x", "category": list(kidney.category), "type": list(kidney.type), "typeModifier": list(kidney.modifier)}},
        ],
    }
    slicerio.write_segmentation(str(tmp_path / "user.seg.nrrd"), segmentation)
    labels = io.read_labelmap(tmp_path / "user.seg.nrrd", reference=ct)
    assert sorted(np.unique(labels.array).tolist()) == [0, 3, 6]
    assert int((labels.array == 6).sum()) == 8 and int((labels.array == 3).sum()) == 8
