"""DICOM SEG output: exact round trip on real series, references, terminology, validator, and clear errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from builders import make_ct, oblique_direction, write_dicom_series
from dccseg.errors import DccsegError
from dccseg.io import read_image, read_labelmap
from dccseg.io.dicom_seg import Algorithm, write_dicom_seg
from dccseg.organs import ORGAN_BY_KEY, ORGANS

DATA = Path(__file__).resolve().parents[2] / "dccseg" / "data"
SLAB = DATA / "totalseg_dicom_slab"
DCMQI = DATA / "dcmqi_ct3slice"


def organ_of(description) -> int:
    """Our organ id for a SEG segment, from its property type code and laterality modifier only."""
    kind = description.SegmentedPropertyTypeCodeSequence[0]
    modifiers = kind.get("SegmentedPropertyTypeModifierCodeSequence", [])
    modifier = modifiers[0].CodeValue if modifiers else ""
    matches = [o.label for o in ORGANS if o.type[1] == kind.CodeValue and (o.modifier[1] if o.modifier else "") == modifier]
    assert len(matches) == 1, (kind.CodeValue, modifier)
    return matches[0]


def read_back(path: Path, folder: Path, grid) -> tuple[hd.seg.Segmentation, np.ndarray, list[pydicom.Dataset]]:
    """The SEG, its organ label map in ``grid``'s slice order, and the source headers in that order."""
    seg = hd.seg.segread(path)
    normal = np.asarray(grid.direction).reshape(3, 3)[:, 2]
    headers = sorted(
        (pydicom.dcmread(p, stop_before_pixels=True) for p in folder.iterdir()),
        key=lambda h: float(np.dot(np.asarray(h.ImagePositionPatient, dtype=float) - grid.origin, normal)),
    )
    numbers = seg.get_pixels_by_source_instance([h.SOPInstanceUID for h in headers], combine_segments=True, relabel=False)
    lookup = np.zeros(256, dtype=np.uint8)
    for description in seg.SegmentSequence:
        lookup[description.SegmentNumber] = organ_of(description)
    return seg, lookup[numbers], headers


def slab_labels():
    ct = read_image(SLAB / "dicom")
    return read_labelmap(SLAB / "organs.nii.gz", reference=ct)


def test_slab_round_trip_is_exact_and_references_the_source_series(tmp_path):
    labels = slab_labels()
    out = tmp_path / "slab.dcm"
    present = write_dicom_seg(labels, SLAB / "dicom", out, algorithm=Algorithm("dccseg-abdomen", "0.1.0"))
    assert [o.key for o in present] == ["spleen", "liver", "stomach", "aorta", "inferior_vena_cava", "portal_and_splenic_vein", "pancreas", "adrenal_gland_right"]
    seg, organ_map, headers = read_back(out, SLAB / "dicom", labels)
    assert np.array_equal(organ_map, labels.array), "every segment's mask must equal the label map on the source grid"
    assert (seg.StudyInstanceUID, seg.FrameOfReferenceUID) == (headers[0].StudyInstanceUID, headers[0].FrameOfReferenceUID)
    referenced = {item.ReferencedSOPInstanceUID for series in seg.ReferencedSeriesSequence for item in series.ReferencedInstanceSequence}
    assert referenced == {h.SOPInstanceUID for h in headers}
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == headers[0].SeriesInstanceUID
    for description, organ in zip(seg.SegmentSequence, present):
        assert description.SegmentLabel == organ.name and description.SegmentAlgorithmType == "AUTOMATIC"
        algorithm = description.SegmentationAlgorithmIdentificationSequence[0]
        assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("dccseg-abdomen", "0.1.0")
        rgb = hd.color.CIELabColor.from_dicom_value(description.RecommendedDisplayCIELabValue).to_rgb()
        assert np.abs(np.subtract(rgb, organ.color)).max() <= 2


def test_real_three_slice_series_round_trip_keeps_laterality(tmp_path):
    ct = read_image(DCMQI / "dicom")
    liver = read_labelmap(DCMQI / "liver_spine_seg.nrrd", reference=ct).array == 1
    array = np.where(liver, ORGAN_BY_KEY["liver"].label, 0).astype(np.uint8)
    array[:, 300:340, 100:140] = ORGAN_BY_KEY["kidney_left"].label
    array[:, 300:340, 380:420] = ORGAN_BY_KEY["kidney_right"].label
    labels = ct.with_array(array)
    out = tmp_path / "three.dcm"
    write_dicom_seg(labels, DCMQI / "dicom" / "02.dcm", out)
    seg, organ_map, _ = read_back(out, DCMQI / "dicom", labels)
    assert np.array_equal(organ_map, array)
    assert {d.SegmentAlgorithmType for d in seg.SegmentSequence} == {"MANUAL"}


def test_oblique_series_written_in_reverse_file_order_round_trips(tmp_path):
    ct = make_ct(shape=(5, 12, 10), direction=oblique_direction())
    folder = tmp_path / "series"
    write_dicom_series(ct, folder)
    for path in folder.iterdir():  # file order must not matter, only the slice positions
        path.rename(folder / f"z{99 - int(path.stem[-3:]):03d}.dcm")
    read = read_image(folder)
    array = np.zeros(read.shape, dtype=np.uint8)
    array[1:4, 2:6, 3:7] = ORGAN_BY_KEY["spleen"].label
    array[4, 8:, :] = ORGAN_BY_KEY["liver"].label
    out = tmp_path / "oblique.dcm"
    write_dicom_seg(read.with_array(array), folder, out)
    assert np.array_equal(read_back(out, folder, read)[1], array)


def test_non_dicom_input_and_mismatched_or_anonymised_series_are_clear_errors(tmp_path):
    labels = slab_labels()
    with pytest.raises(DccsegError, match="not a DICOM series"):
        write_dicom_seg(labels, DATA / "totalseg_example" / "example_ct.nii.gz", tmp_path / "a.dcm")
    with pytest.raises(DccsegError, match="no DICOM series .* has the label map's grid"):
        write_dicom_seg(labels, DCMQI / "dicom", tmp_path / "b.dcm")
    anonymised = tmp_path / "anonymised"
    shutil.copytree(SLAB / "dicom", anonymised)
    first = sorted(anonymised.iterdir())[0]
    header = pydicom.dcmread(first)
    header.SOPInstanceUID = ""
    header.save_as(first)
    with pytest.raises(DccsegError, match="no SOPInstanceUID"):
        write_dicom_seg(labels, anonymised, tmp_path / "c.dcm")
    with pytest.raises(DccsegError, match="holds no organ"):
        write_dicom_seg(labels.with_array(np.zeros_like(labels.array)), SLAB / "dicom", tmp_path / "d.dcm")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["anonymised"], "no partial output"


def test_dciodvfy_finds_no_error_in_the_seg(tmp_path):
    validator = shutil.which("dciodvfy")
    if validator is None:
        pytest.skip("dciodvfy is not installed (Debian package dicom3tools: apt-get install dicom3tools)")
    out = tmp_path / "slab.dcm"
    write_dicom_seg(slab_labels(), SLAB / "dicom", out, algorithm=Algorithm("dccseg-abdomen", "0.1.0"))
    result = subprocess.run([validator, str(out)], capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120)
    report = result.stdout + result.stderr
    assert result.returncode == 0 and "Segmentation" in report, report
    assert [line for line in report.splitlines() if line.startswith("Error")] == [], report
