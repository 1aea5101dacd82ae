"""The damaged-input corpus: real-world damage made at test time from the bundled CT, each case with its exact outcome.

A stop: ``dccseg segment`` exits 2 with one line on stderr (no traceback, no ITK/GDCM text) and writes nothing.
A repair: reported on a line of its own, and the organs land where the undamaged input puts them (Dice).
docs/input_checks.md lists the same cases for users.
"""

from __future__ import annotations

import gzip
import json
import re
import resource
import shutil
import signal
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from builders import make_ct, make_labels, write_dicom_series

import dccseg.io as io
from dccseg.cli import main
from dccseg.errors import DccsegError
from dccseg.inference import memory
from dccseg.volume import Volume

BUNDLED_CT = Path(io.__file__).parent.parent / "data" / "totalseg_example" / "example_ct.nii.gz"
CROP = slice(66, 90)  # 24 axial slices at 3 mm through liver and kidneys
LIVER = 6
LIBRARY_NOISE = ("WARNING: In", "itk::", "ImageSeriesReader (0x", "GDCM", "Traceback")


@pytest.fixture(scope="module")
def crop() -> Volume:
    ct = io.read_image(BUNDLED_CT)
    origin = np.asarray(ct.origin) + np.asarray(ct.direction).reshape(3, 3)[:, 2] * ct.spacing[2] * CROP.start
    return Volume(np.ascontiguousarray(ct.array[CROP]), ct.spacing, tuple(origin.tolist()), ct.direction)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("corpus")


def run_segment(capsys, source: Path, output: Path, *extra: str) -> tuple[int, list[dict], str]:
    """``dccseg segment`` in this process (liver only, fast): exit status, JSON records, stderr."""
    capsys.readouterr()
    status = main(["segment", str(source), str(output), "--organs", "liver", "--fast", "--device", "cpu", "--progress", "json", *extra])
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert not any(noise in out + err for noise in LIBRARY_NOISE)
    return status, records, err


def assert_stop(capsys, source: Path, output: Path, match: str, *extra: str) -> str:
    """A clean stop: exit 2, one error line with what to do, and no output file (not even a partial one)."""
    status, records, err = run_segment(capsys, source, output, *extra)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("dccseg: error: "), err
    assert records[-1]["stage"] == "error" and ";" in records[-1]["message"]
    assert re.search(match, lines[0]), lines[0]
    assert not output.exists() and not list(output.parent.glob(".*.part*"))
    return lines[0]


def messages(records: list[dict]) -> list[str]:
    return [r["message"] for r in records if r["fraction"] is None]


def liver_dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a == LIVER, b == LIVER
    return float(2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1))


# -- damaged files ------------------------------------------------------------------------------


def test_nifti_gz_cut_to_half_its_bytes(capsys, tmp_path, crop):
    io.write_image(crop, tmp_path / "ct.nii.gz")
    data = (tmp_path / "ct.nii.gz").read_bytes()
    (tmp_path / "ct.nii.gz").write_bytes(data[: len(data) // 2])
    assert_stop(capsys, tmp_path / "ct.nii.gz", tmp_path / "out.seg.nrrd", r"damaged: its compressed data ends early.*download the file again")


def test_uncompressed_nifti_cut_short(capsys, tmp_path, crop):
    io.write_image(crop, tmp_path / "ct.nii")
    data = (tmp_path / "ct.nii").read_bytes()
    (tmp_path / "ct.nii").write_bytes(data[: len(data) * 9 // 10])
    assert_stop(capsys, tmp_path / "ct.nii", tmp_path / "out.seg.nrrd", r"incomplete: its header announces \d+ bytes but it holds \d+ \(90%\)")


def test_zero_byte_file(capsys, tmp_path):
    (tmp_path / "ct.nii.gz").write_bytes(b"")
    assert_stop(capsys, tmp_path / "ct.nii.gz", tmp_path / "out.seg.nrrd", r"is empty \(0 bytes\)")


def test_wrong_extension(capsys, tmp_path, crop):
    io.write_image(crop, tmp_path / "ct.nii.gz")
    shutil.copy(tmp_path / "ct.nii.gz", tmp_path / "ct.mha")
    assert_stop(capsys, tmp_path / "ct.mha", tmp_path / "out.seg.nrrd", r"cannot read .*ct\.mha as a \.mha image")
    shutil.copy(tmp_path / "ct.nii.gz", tmp_path / "ct.jpg")
    assert_stop(capsys, tmp_path / "ct.jpg", tmp_path / "out.seg.nrrd", r"unsupported file type '\.jpg'")


def test_nifti_with_broken_header(capsys, tmp_path, crop):
    io.write_image(crop, tmp_path / "ct.nii")
    header = bytearray((tmp_path / "ct.nii").read_bytes())
    struct.pack_into("<h", header, 70, 9999)  # datatype: no such NIfTI type
    (tmp_path / "ct.nii").write_bytes(bytes(header))
    assert_stop(capsys, tmp_path / "ct.nii", tmp_path / "out.seg.nrrd", r"cannot read .* the file is damaged or not an image")


def test_nifti_qform_and_sform_disagree(capsys, tmp_path, crop):
    io.write_image(crop, tmp_path / "ct.nii")
    header = bytearray((tmp_path / "ct.nii").read_bytes())
    shift = struct.unpack_from("<f", header, 280 + 12)[0] + 40.0  # sform x translation 40 mm away from the qform's
    struct.pack_into("<f", header, 280 + 12, shift)
    with gzip.open(tmp_path / "ct.nii.gz", "wb") as stream:
        stream.write(bytes(header))
    assert_stop(capsys, tmp_path / "ct.nii.gz", tmp_path / "out.seg.nrrd", r"qform and sform\) place the volume up to 40\.0 mm apart")


def test_4d_image(capsys, tmp_path, crop):
    image = crop.to_sitk()
    sitk.WriteImage(sitk.JoinSeries([image, image]), str(tmp_path / "ct.nii.gz"))
    assert_stop(capsys, tmp_path / "ct.nii.gz", tmp_path / "out.seg.nrrd", r"4D image holding 2 volumes")


@pytest.mark.parametrize(
    "spacing, match", [((3.0, 3.0, 3000.0), "voxel spacing of 3x3x3000 mm, outside CT's"), ((0.0001, 3.0, 3.0), "voxel spacing of 0.0001x3x3 mm")]
)
def test_implausible_spacing(capsys, tmp_path, crop, spacing, match):
    io.write_image(Volume(crop.array, spacing, crop.origin, crop.direction), tmp_path / "ct.nrrd")
    assert_stop(capsys, tmp_path / "ct.nrrd", tmp_path / "out.seg.nrrd", match)


def test_negative_spacing(capsys, tmp_path, crop):
    io.write_image(crop, tmp_path / "ct.mha")
    data = (tmp_path / "ct.mha").read_bytes().replace(b"ElementSpacing = 3 3 3", b"ElementSpacing = 3 -3 3")
    (tmp_path / "ct.mha").write_bytes(data)
    assert_stop(capsys, tmp_path / "ct.mha", tmp_path / "out.seg.nrrd", r"negative voxel spacing \(3x-3x3 mm\)")
    io.write_image(crop, tmp_path / "ct.nii")
    header = bytearray((tmp_path / "ct.nii").read_bytes())
    struct.pack_into("<f", header, 80, -3.0)  # pixdim[1]
    (tmp_path / "ct.nii").write_bytes(bytes(header))
    assert_stop(capsys, tmp_path / "ct.nii", tmp_path / "out.seg.nrrd", r"negative voxel spacing \(-3x3x3 mm\)")


def test_non_square_pixels_are_read_as_they_are(tmp_path, crop):
    stretched = Volume(crop.array, (0.7, 1.4, 3.0), crop.origin, crop.direction)
    io.write_image(stretched, tmp_path / "ct.nrrd")
    notes = []
    back = io.read_image(tmp_path / "ct.nrrd", log=notes.append)
    assert np.allclose(back.spacing, (0.7, 1.4, 3.0)) and notes == []


# -- values -------------------------------------------------------------------------------------


def test_nan_padding_is_outside_the_scan_and_organs_stay(capsys, tmp_path, crop):
    io.write_image(crop, tmp_path / "ct.nii.gz")
    status, _, _ = run_segment(capsys, tmp_path / "ct.nii.gz", tmp_path / "clean.nii.gz")
    assert status == 0
    padded = crop.array.astype(np.float32)
    y, x = np.ogrid[: crop.shape[1], : crop.shape[2]]
    outside = ((y - 50) / 50) ** 2 + ((x - 61) / 61) ** 2 > 1  # the corners outside the reconstruction circle
    mask = outside[None] & (padded < -900)
    padded[mask] = np.nan  # as other tools' resampling leaves it
    padded[mask & (x < 10)] = np.inf
    sitk.WriteImage(Volume(padded, crop.spacing, crop.origin, crop.direction).to_sitk(), str(tmp_path / "nan.nii.gz"))
    status, records, _ = run_segment(capsys, tmp_path / "nan.nii.gz", tmp_path / "nan-seg.nii.gz")
    count = int(mask.sum())
    assert count > 10000
    assert status == 0 and any(m.startswith(f"{tmp_path / 'nan.nii.gz'}: {count} NaN/infinite voxels") and "outside the scan" in m for m in messages(records))
    clean, repaired = io.read_labelmap(tmp_path / "clean.nii.gz"), io.read_labelmap(tmp_path / "nan-seg.nii.gz")
    assert repaired.same_grid(clean) and liver_dice(clean.array, repaired.array) >= 0.99


# -- DICOM series -------------------------------------------------------------------------------


def test_missing_slice_is_interpolated_and_organs_land_in_place(capsys, tmp_path, crop):
    write_dicom_series(crop, tmp_path / "complete")
    shutil.copytree(tmp_path / "complete", tmp_path / "gap")
    (tmp_path / "gap" / "slice011.dcm").unlink()
    status, _, _ = run_segment(capsys, tmp_path / "complete", tmp_path / "complete.nii.gz")
    assert status == 0
    status, records, _ = run_segment(capsys, tmp_path / "gap", tmp_path / "gap.nii.gz")
    assert status == 0
    repair = "gap: slice spacing is uneven (3.00 to 6.00 mm, 1 slice(s) missing): resampled by linear interpolation onto a regular 3.00 mm grid of 24 slices"
    assert repair in messages(records)
    complete, repaired = io.read_labelmap(tmp_path / "complete.nii.gz"), io.read_labelmap(tmp_path / "gap.nii.gz")
    assert repaired.same_grid(complete, tolerance=1e-3)
    kept = [k for k in range(24) if k != 11]
    assert np.count_nonzero(complete.array == LIVER) > 1000
    assert liver_dice(complete.array[kept], repaired.array[kept]) >= 0.95


def test_truncated_slice_file(capsys, tmp_path, crop):
    write_dicom_series(crop, tmp_path / "dicom")
    damaged = tmp_path / "dicom" / "slice007.dcm"
    damaged.write_bytes(damaged.read_bytes()[:-5000])
    assert_stop(capsys, tmp_path / "dicom", tmp_path / "out.seg.nrrd", r"1 DICOM file\(s\) in .* cannot be read \(slice007\.dcm\): truncated or damaged")


def test_gap_of_several_slices(capsys, tmp_path, crop):
    write_dicom_series(crop, tmp_path / "dicom")
    for k in range(8, 12):
        (tmp_path / "dicom" / f"slice{k:03d}.dcm").unlink()
    assert_stop(capsys, tmp_path / "dicom", tmp_path / "out.seg.nrrd", r"15\.0 mm lie between slices 8 and 9 .*about 4 slices missing")


def test_two_series_in_one_folder_listed_and_chosen(capsys, tmp_path, crop):
    folder = tmp_path / "dicom"
    write_dicom_series(crop, folder, series_uid="1.2.3.20", extra_tags={"0008|103e": "abdomen", "0020|0011": "2"})
    slab = Volume(crop.array[:8], crop.spacing, crop.origin, crop.direction)
    write_dicom_series(slab, folder, series_uid="1.2.3.10", prefix="slab", extra_tags={"0008|103e": "slab", "0020|0011": "1"})
    status, records, _ = run_segment(capsys, folder, tmp_path / "default.nii.gz")
    said = messages(records)
    assert status == 0 and f"{folder} holds 2 DICOM series:" in said
    assert "  1: 'slab', CT, 8 slices of 122x101 at 3x3 mm, UID 1.2.3.10" in said
    assert "  2: 'abdomen', CT, 24 slices of 122x101 at 3x3 mm, UID 1.2.3.20" in said
    assert "reading series 2, the axial CT series with the most slices; pass --series NUMBER or --series UID to read another" in said
    assert io.read_labelmap(tmp_path / "default.nii.gz").shape == (24, 101, 122)
    status, records, _ = run_segment(capsys, folder, tmp_path / "picked.nii.gz", "--series", "1.2.3.10")
    assert status == 0 and io.read_labelmap(tmp_path / "picked.nii.gz").shape == (8, 101, 122)
    assert "reading series 1, chosen with --series; pass --series NUMBER or --series UID to read another" in messages(records)
    assert_stop(capsys, folder, tmp_path / "none.nii.gz", r"--series 3: no such series .*give a number from 1 to 2", "--series", "3")


def test_dataset_add_takes_the_series_asked_for(capsys, tmp_path):
    folder = tmp_path / "dicom"
    write_dicom_series(make_ct((6, 16, 16)), folder, series_uid="1.2.3.6")
    write_dicom_series(make_ct((4, 12, 12), origin=(0.0, 0.0, 400.0)), folder, series_uid="1.2.3.4", prefix="other")
    for series, shape in ((None, (6, 16, 16)), ("1", (4, 12, 12))):
        target = tmp_path / f"dataset-{series}"
        chosen = ["--series", series] if series else []
        status = main(["dataset", "add", str(target), "--image", str(folder), "--phase", "arterial", "--id", "case", *chosen])
        assert status == 0 and io.read_image(target / "images" / "case.nii.gz").shape == shape
    assert "reading series 2, the axial CT series with the most slices" in capsys.readouterr().err


def test_localizer_and_duplicate_files_are_dropped_and_reported(tmp_path):
    ct = make_ct((6, 16, 16))
    write_dicom_series(ct, tmp_path / "dicom")
    scout = make_ct((1, 16, 16), origin=(0.0, 0.0, 0.0), direction=(1, 0, 0, 0, 0, 1, 0, -1, 0))
    write_dicom_series(scout, tmp_path / "dicom", prefix="scout", extra_tags={"0008|0008": "ORIGINAL\\PRIMARY\\LOCALIZER"})
    shutil.copy(tmp_path / "dicom" / "slice002.dcm", tmp_path / "dicom" / "copy of slice002.dcm")
    notes = []
    back = io.read_image(tmp_path / "dicom", log=notes.append)
    assert back.shape == (6, 16, 16) and np.allclose(back.array, ct.array)
    assert notes == ["dicom: dropped 1 localizer/scout image(s) of the series", "dicom: ignored 1 duplicate file(s) (same SOP Instance UID as another file)"]


def test_a_dicomdir_is_skipped_beside_the_images_and_names_the_series_folders_of_a_disc_export(capsys, tmp_path):
    from pydicom.fileset import FileSet

    source = BUNDLED_CT.parent.parent / "dcmqi_ct3slice" / "dicom"
    disc = FileSet()
    for path in sorted(source.iterdir()):
        disc.add(path)
    disc.write(tmp_path / "disc")  # DICOMDIR beside PT000000/ST000000/SE000000/IM00000*
    shutil.copytree(source, tmp_path / "dicom")
    shutil.copy(tmp_path / "disc" / "DICOMDIR", tmp_path / "dicom" / "DICOMDIR")
    notes = []
    assert io.read_image(tmp_path / "dicom", log=notes.append).shape == (3, 512, 512)
    assert notes == ["dicom: skipped 1 DICOM file(s) that hold no image (DICOMDIR)"], "a DICOMDIR is not a damaged slice"
    series = re.escape(str(tmp_path / "disc" / "PT000000" / "ST000000" / "SE000000")) + r" \(CT, 3 images\)"
    for given in (tmp_path / "disc", tmp_path / "disc" / "DICOMDIR"):
        assert_stop(capsys, given, tmp_path / "out.seg.nrrd", r"is the index of a DICOM export \(DICOMDIR\), not a series; point to the folder of one of the series it lists: " + series)


def test_two_different_images_at_one_position(capsys, tmp_path):
    ct = make_ct((6, 16, 16))
    write_dicom_series(ct, tmp_path / "dicom")
    write_dicom_series(make_ct((1, 16, 16), seed=5), tmp_path / "dicom", prefix="echo2-", first_instance=101)
    assert_stop(capsys, tmp_path / "dicom", tmp_path / "out.seg.nrrd", r"two different images lie at the same position")


def test_gantry_tilt(capsys, tmp_path):
    write_dicom_series(make_ct((6, 16, 16)), tmp_path / "dicom", sideways_mm=0.5)
    assert_stop(capsys, tmp_path / "dicom", tmp_path / "out.seg.nrrd", r"gantry tilt of 11\.3 degrees; resample it to a regular grid first")


def test_mixed_slice_sizes(capsys, tmp_path):
    write_dicom_series(make_ct((6, 16, 16)), tmp_path / "dicom")
    write_dicom_series(make_ct((2, 8, 8), origin=(-120.5, 88.25, 0.0)), tmp_path / "dicom", prefix="small", first_instance=101)
    assert_stop(capsys, tmp_path / "dicom", tmp_path / "out.seg.nrrd", r"its slices have different sizes \(16x16, 8x8\)")


def test_mr_series(capsys, tmp_path):
    write_dicom_series(make_ct((6, 16, 16)), tmp_path / "dicom", extra_tags={"0008|0060": "MR"})
    assert_stop(capsys, tmp_path / "dicom", tmp_path / "out.seg.nrrd", r"its modality is MR, not CT; DCC Segment needs CT")


def test_dicom_without_pixel_data(capsys, tmp_path):
    write_dicom_series(make_ct((6, 16, 16)), tmp_path / "dicom")
    for path in (tmp_path / "dicom").iterdir():
        data = path.read_bytes()
        path.write_bytes(data[: data.rindex(b"\xe0\x7f\x10\x00")])
    assert_stop(capsys, tmp_path / "dicom", tmp_path / "out.seg.nrrd", r"6 DICOM file\(s\) in .* cannot be read")


def test_folder_of_non_dicom_files(capsys, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "report.txt").write_text("findings: none\n")
    (tmp_path / "notes" / "photo.dcm").write_bytes(b"\x89PNG\r\n" + bytes(300))
    assert_stop(capsys, tmp_path / "notes", tmp_path / "out.seg.nrrd", r"no DICOM series found in")


def test_ct_too_large_for_free_memory_stops_up_front(capsys, tmp_path, crop, monkeypatch):
    (tmp_path / "meminfo").write_text("MemTotal: 2048 kB\nMemAvailable: 1024 kB\n")
    monkeypatch.setattr(memory, "MEMINFO", tmp_path / "meminfo")
    io.write_image(crop, tmp_path / "ct.nii.gz")
    expected = r"this 122x101x24 CT needs about 1\.0 GiB of memory but only 0\.0 GiB are free; crop it"
    assert_stop(capsys, tmp_path / "ct.nii.gz", tmp_path / "out.seg.nrrd", expected)


def test_a_child_scale_that_would_not_fit_in_memory_stops_up_front(capsys, tmp_path, crop, monkeypatch):
    """Read at half the grids, a CT needs more memory than at the model's own: the check counts the body scale."""
    at_one, at_half = memory.needed_bytes(crop), memory.needed_bytes(crop, 0.5)
    assert at_half > at_one
    (tmp_path / "meminfo").write_text(f"MemTotal: {4 * at_half // 1024} kB\nMemAvailable: {(at_one + at_half) // 2 // 1024} kB\n")
    monkeypatch.setattr(memory, "MEMINFO", tmp_path / "meminfo")
    io.write_image(crop, tmp_path / "ct.nii.gz")
    expected = r"this 122x101x24 CT at body scale 0\.50 needs about 1\.0 GiB of memory but only 1\.0 GiB are free; crop it .*give a larger --body-scale"
    assert_stop(capsys, tmp_path / "ct.nii.gz", tmp_path / "out.seg.nrrd", expected, "--body-scale", "0.5")


# -- output -------------------------------------------------------------------------------------


def test_output_path_that_cannot_be_written(capsys, tmp_path, crop):
    io.write_image(crop, tmp_path / "ct.nii.gz")
    (tmp_path / "blocker").write_text("a file where a folder is needed")
    status, _, err = run_segment(capsys, tmp_path / "ct.nii.gz", tmp_path / "blocker" / "out.seg.nrrd")
    assert status == 2 and err.count("\n") == 1 and "choose a writable location" in err
    assert (tmp_path / "blocker").read_text() == "a file where a folder is needed"


@pytest.fixture
def full_disk():
    """File writes beyond 64 KiB fail as on a full disk (RLIMIT_FSIZE), for this process, until the test ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_full_disk_leaves_no_partial_output(tmp_path, full_disk):
    rng = np.random.default_rng(0)
    noisy = make_ct((40, 64, 64)).with_array(rng.integers(-1000, 1000, (40, 64, 64)).astype(np.float32))
    labels = make_labels(noisy).with_array(rng.integers(0, 14, (40, 64, 64)).astype(np.uint8))
    with pytest.raises(DccsegError, match=r"cannot write .*ct\.nii\.gz.*free disk space"):
        io.write_image(noisy, tmp_path / "ct.nii.gz")
    with pytest.raises(DccsegError, match=r"cannot write .*out\.seg\.nrrd: File too large; free some disk space"):
        io.write_segmentation(labels, tmp_path / "out.seg.nrrd")
    assert list(tmp_path.iterdir()) == []
