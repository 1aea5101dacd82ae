"""Multi-frame DICOM (Enhanced CT, as newer scanners export a series in one file): read as its slices would be, checked as they are, and a DICOM SEG against its frames."""

from __future__ import annotations

import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dccseg.cli import main
from dccseg.errors import DccsegError
from dccseg.io import read_image, read_labelmap
from dccseg.io.dicom_seg import Algorithm, write_dicom_seg
from dccseg.organs import ORGAN_BY_KEY

SLAB = Path(__file__).resolve().parents[2] / "dccseg" / "data" / "totalseg_dicom_slab"


def slab_slices() -> list[pydicom.Dataset]:
    """The bundled portal-venous slab's 20 single-frame slices, head first (JPEG 2000 compressed, as they came)."""
    slices = [pydicom.dcmread(path) for path in sorted((SLAB / "dicom").iterdir())]
    return sorted(slices, key=lambda s: -float(s.ImagePositionPatient[2]))


def enhanced_ct(folder: Path, slices: list[pydicom.Dataset]) -> Path:
    """``slices`` converted into one Legacy Converted Enhanced CT file in ``folder`` (highdicom puts the frames head first)."""
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # highdicom's remark on the anonymised patient name
        image = hd.legacy.LegacyConvertedEnhancedCTImage(slices, series_instance_uid=hd.UID(), series_number=5, sop_instance_uid=hd.UID(), instance_number=1)
    path = folder / "enhanced.dcm"
    image.save_as(path)
    return path


def feet_first(path: Path) -> None:
    """Reverse the order of the frames in the file (pixels decompressed), as some scanners store them."""
    image = pydicom.dcmread(path)
    frames = image.pixel_array[::-1]
    image.PerFrameFunctionalGroupsSequence = pydicom.Sequence(list(image.PerFrameFunctionalGroupsSequence)[::-1])
    image.PixelData = np.ascontiguousarray(frames).tobytes()
    image.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    image.save_as(path, enforce_file_format=True)


def test_an_enhanced_ct_reads_as_its_series_whatever_the_order_of_its_frames(tmp_path):
    series = read_image(SLAB / "dicom")
    feet_first(enhanced_ct(tmp_path / "mf", slab_slices()))
    multi = read_image(tmp_path / "mf")
    assert multi.shape == series.shape and np.array_equal(multi.array, series.array)
    assert np.allclose(multi.origin, series.origin) and np.allclose(multi.spacing, series.spacing) and np.allclose(multi.direction, series.direction)
    assert np.array_equal(read_image(tmp_path / "mf" / "enhanced.dcm").array, series.array), "the file itself, as a series' .dcm file is"


def test_a_missing_frame_is_repaired_as_a_missing_slice(tmp_path):
    slices = slab_slices()
    enhanced_ct(tmp_path / "mf", slices[:9] + slices[10:])
    notes: list[str] = []
    ct = read_image(tmp_path / "mf", log=notes.append)
    assert ct.shape[0] == 20 and any("1 slice(s) missing" in note for note in notes), notes


def test_frames_with_different_rescales_or_without_a_position_are_stops(tmp_path):
    path = enhanced_ct(tmp_path / "rescale", slab_slices())
    image = pydicom.dcmread(path)
    transform = image.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence
    del image.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence
    for index, frame in enumerate(image.PerFrameFunctionalGroupsSequence):
        frame.PixelValueTransformationSequence = pydicom.Sequence([pydicom.Dataset()])
        frame.PixelValueTransformationSequence[0].update(transform[0])
        frame.PixelValueTransformationSequence[0].RescaleIntercept = -1024 if index < 10 else 0
    image.save_as(path)
    with pytest.raises(DccsegError, match="frames of its multi-frame file have different rescale slopes or intercepts; export the series as single-frame images"):
        read_image(tmp_path / "rescale")
    path = enhanced_ct(tmp_path / "position", slab_slices())
    image = pydicom.dcmread(path)
    del image.PerFrameFunctionalGroupsSequence[3].PlanePositionSequence
    image.save_as(path)
    with pytest.raises(DccsegError, match="some slices lack their position or orientation tags"):
        read_image(tmp_path / "position")


def test_a_dicom_seg_of_an_enhanced_ct_references_its_frames(tmp_path):
    slices = slab_slices()
    path = enhanced_ct(tmp_path / "mf", slices)
    labels = read_labelmap(SLAB / "organs.nii.gz", reference=read_image(tmp_path / "mf"))
    out = tmp_path / "seg.dcm"
    write_dicom_seg(labels, tmp_path / "mf", out, algorithm=Algorithm("dccseg-abdomen", "0.4.5"))
    seg, source = hd.seg.segread(out), pydicom.dcmread(path, stop_before_pixels=True)
    liver = next(d.SegmentNumber for d in seg.SegmentSequence if d.TrackingID == "liver")
    frames = list(range(1, len(slices) + 1))
    masks = seg.get_pixels_by_source_frame(source.SOPInstanceUID, frames, segment_numbers=[liver])[..., 0]
    z_of_frame = [float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in source.PerFrameFunctionalGroupsSequence]
    assert z_of_frame == sorted(z_of_frame, reverse=True), "the file holds the slab head first"
    expected = labels.array[::-1] == ORGAN_BY_KEY["liver"].label  # the label grid runs feet first, along the slice normal
    assert masks.shape == expected.shape and np.array_equal(masks > 0, expected)


def test_dccseg_segment_reads_an_enhanced_ct_folder_and_writes_its_dicom_seg(tmp_path):
    enhanced_ct(tmp_path / "mf", slab_slices())
    out = tmp_path / "out" / "organs.dcm"
    assert main(["segment", str(tmp_path / "mf"), str(out), "--fast", "--device", "cpu", "--progress", "none"]) == 0
    assert hd.seg.segread(out).SegmentSequence and out.with_name("organs.dcm").is_file()
