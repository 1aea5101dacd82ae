"""Bad input to the readers: a one-line DccsegError that says what to do, and no partial output."""

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from builders import make_ct, make_labels

import dccseg.io as io
from dccseg.errors import DccsegError
from dccseg.volume import Volume


def raises_one_line(func, *args, match: str, **kwargs) -> str:
    with pytest.raises(DccsegError, match=match) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and ";" in message  # one line, with what to do after the semicolon
    return message


def test_missing_file(tmp_path):
    raises_one_line(io.read_image, tmp_path / "nope.nii.gz", match="does not exist")


def test_text_file_named_nifti(tmp_path):
    (tmp_path / "fake.nii.gz").write_text("hello, not an image\n", encoding="utf-8")
    raises_one_line(io.read_image, tmp_path / "fake.nii.gz", match="not an image")
    raises_one_line(io.read_labelmap, tmp_path / "fake.nii.gz", match="not an image")


def test_text_file_named_nrrd(tmp_path):
    (tmp_path / "fake.seg.nrrd").write_text("hello\n", encoding="utf-8")
    raises_one_line(io.read_labelmap, tmp_path / "fake.seg.nrrd", match="NRRD")


def test_2d_image(tmp_path):
    sitk.WriteImage(sitk.Image(16, 16, sitk.sitkInt16), str(tmp_path / "slice.nii.gz"))
    raises_one_line(io.read_image, tmp_path / "slice.nii.gz", match="2D image.*3D volume")


def test_single_slice_volume(tmp_path):
    sitk.WriteImage(sitk.Image(16, 16, 1, sitk.sitkInt16), str(tmp_path / "slice.nrrd"))
    raises_one_line(io.read_image, tmp_path / "slice.nrrd", match="several slices")


def test_rgb_image(tmp_path):
    sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkVectorUInt8, 3), str(tmp_path / "rgb.mha"))
    raises_one_line(io.read_image, tmp_path / "rgb.mha", match="RGB")


def test_mr_like_volume(tmp_path):
    mr = np.random.default_rng(0).gamma(2.0, 150.0, size=(8, 8, 8)).astype(np.float32)
    io.write_image(Volume(mr, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), make_ct().direction), tmp_path / "mr.nii.gz")
    message = raises_one_line(io.read_image, tmp_path / "mr.nii.gz", match="Hounsfield")
    assert "MR" in message
    assert io.read_image(tmp_path / "mr.nii.gz", require_ct=False).shape == (8, 8, 8)


def test_unrescaled_ct_gets_specific_hint(tmp_path):
    ct = make_ct()
    io.write_image(ct.with_array(ct.array + 1024), tmp_path / "raw.nrrd")
    raises_one_line(io.read_image, tmp_path / "raw.nrrd", match="without rescaling.*1024")


def test_ct_check_accepts_real_ct_and_rejects_scaled():
    ct = make_ct()
    io.check_ct(ct, "ct")
    raises_one_line(io.check_ct, ct.with_array(ct.array * 10), "scaled", match="beyond CT")


def test_ct_check_accepts_a_body_that_fills_the_view_and_rejects_it_normalised():
    """A tight display field on a large patient shows no air; fat beside soft tissue still says CT in HU."""
    rng = np.random.default_rng(1)
    tissue = rng.choice([40.0, -100.0, 400.0], size=(8, 8, 8), p=[0.65, 0.3, 0.05])
    inside = make_ct().with_array((tissue + rng.normal(0, 15, tissue.shape)).astype(np.float32))
    assert np.percentile(inside.array, 1) > -500
    io.check_ct(inside, "large patient")
    normalised = inside.with_array((inside.array - inside.array.mean()) / inside.array.std())
    raises_one_line(io.check_ct, normalised, "normalised", match="Hounsfield")


def test_empty_folder_and_folder_without_dicom(tmp_path):
    (tmp_path / "empty").mkdir()
    raises_one_line(io.read_image, tmp_path / "empty", match="is empty")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("x", encoding="utf-8")
    raises_one_line(io.read_image, tmp_path / "notes", match="no DICOM series")


def test_segmentation_passed_as_image(tmp_path):
    io.write_segmentation(make_labels(make_ct()), tmp_path / "s.seg.nrrd")
    raises_one_line(io.read_image, tmp_path / "s.seg.nrrd", match="segmentation, not an image")


def test_grid_mismatch(tmp_path):
    ct = make_ct()
    shifted = Volume(make_labels(ct).array, ct.spacing, (0.0, 0.0, 0.0), ct.direction)
    io.write_labelmap(shifted, tmp_path / "l.nii.gz")
    message = raises_one_line(io.read_labelmap, tmp_path / "l.nii.gz", reference=ct, match="grids differ: origin")
    assert "Resample Scalar/Vector/DWI Volume" in message


def test_non_integer_label_map(tmp_path):
    ct = make_ct()
    io.write_image(ct.with_array(np.full(ct.shape, 0.5, np.float32)), tmp_path / "prob.nii.gz")
    raises_one_line(io.read_labelmap, tmp_path / "prob.nii.gz", match="non-integer")


def test_unknown_label_ids():
    labels = make_labels(make_ct(), ids=(1, 14, 40))
    message = raises_one_line(io.check_label_ids, labels, "lab.nii.gz", match="unknown label ids 14, 40")
    assert "6 liver" in message
    io.check_label_ids(make_labels(make_ct(), ids=(1, 13)), "ok")


def test_unknown_segment_names_are_listed(tmp_path):
    voxels = np.zeros((4, 4, 4), dtype=np.uint8)
    voxels[0] = 1
    voxels[1] = 2
    slicerio.write_segmentation(str(tmp_path / "u.seg.nrrd"), {
        "voxels": voxels, "ijkToLPS": np.eye(4),
        "segments": [{"name": "liver", "labelValue": 1}, {"name": "tumour blob", "labelValue": 2}],
    })
    raises_one_line(io.read_labelmap, tmp_path / "u.seg.nrrd", match="'tumour blob' are not organs.*rename")


def test_failed_write_leaves_nothing(tmp_path):
    labels = make_labels(make_ct())
    with pytest.raises(ValueError):
        io.write_labelmap(labels.with_array(labels.array.astype(np.int16) * 100), tmp_path / "big.nii.gz")
    with pytest.raises(DccsegError, match="cannot write"):
        io.write_image(make_ct(), tmp_path / "ct.png")
    assert list(tmp_path.iterdir()) == []


def test_crash_during_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def half_write(image, path, useCompression=True):
        Path(path).write_bytes(b"half an image")
        raise RuntimeError("disk full")

    monkeypatch.setattr(io.images.sitk, "WriteImage", half_write)
    with pytest.raises(DccsegError, match="cannot write .*free disk space"):
        io.write_image(make_ct(), tmp_path / "ct.nii.gz")
    assert list(tmp_path.iterdir()) == []
