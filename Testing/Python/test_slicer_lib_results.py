"""DCCSegmentLib's results outside Slicer: reading the engine's statistics and flags, and the DICOM SEG export call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import highdicom as hd
import pydicom

from dccseg.case_results import analyse_case, write_statistics
from dccseg.case_results import statistics_path as engine_statistics_path
from dccseg.inference.findings import CoarseFindings
from dccseg.io import read_image, read_labelmap, write_labelmap
from dccseg.organs import ORGANS

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "DCCSegment"))

from DCCSegmentLib.engine import Engine  # noqa: E402
from DCCSegmentLib.parameters import SegmentParameters  # noqa: E402
from DCCSegmentLib.results import dicom_instance_uids, dicom_seg_arguments, load_case_results, statistics_path, summary_text  # noqa: E402

DATA = ROOT / "dccseg" / "data"


def test_the_panel_finds_the_statistics_where_the_engine_writes_them(tmp_path):
    for name in ("organs.seg.nrrd", "case.nii.gz", "x.nrrd", "scan.v2.mha", "out.dcm"):
        assert statistics_path(tmp_path / name) == engine_statistics_path(tmp_path / name), name
    args = SegmentParameters(tmp_path / "in.nrrd", tmp_path / "out.seg.nrrd", statistics=True).arguments()
    assert args[-3:] == ["--statistics", "--progress", "json"]


def test_rows_and_flags_name_the_organs_the_user_can_jump_to(tmp_path):
    ct = read_image(DATA / "totalseg_example" / "example_ct.nii.gz")
    labels = read_labelmap(DATA / "totalseg_example" / "example_ct_organs.nii.gz", reference=ct)
    array = labels.array.copy()
    array[array == 3] = 0  # left kidney removed: one flag
    findings = CoarseFindings(confidence={1: 0.95, 11: 0.7994, 3: 0.9})  # the coarse network's (spleen, pancreas, left kidney), as dccseg segment passes it
    stats = analyse_case(ct, labels.with_array(array), ORGANS, findings, case="c", model="dccseg-abdomen@0.1.0")
    write_statistics(stats, tmp_path / "organs.stats.json")
    results = load_case_results(tmp_path / "organs.stats.json")
    assert results.model == "dccseg-abdomen@0.1.0" and results.phase.startswith("non-contrast")
    assert [row.name for row in results.rows][:3] == ["spleen", "right kidney", "gallbladder"] and len(results.rows) == 11
    assert results.rows[0].volume_ml == stats["organs"]["spleen"]["volume_ml"]
    assert results.rows[0].confidence == 0.95 and results.rows[1].confidence is None and "coarse_confidence" not in stats["organs"]["kidney_left"]
    assert [(f.organ_name, f.check) for f in results.flags] == [("left kidney", "missing"), ("pancreas", "confidence")]  # unsure below 0.8: review first
    assert "(confidence 0.799, below 0.80)" in results.flags[1].message, "shown as stored, never rounded up to the threshold"
    assert summary_text(results) == f"Phase: {results.phase}. Review first, the model is unsure of: pancreas. 2 plausibility flag(s): click one to see the organ."
    findings.flags = [{"organ": None, "check": "mirrored", "message": "the scan reads as a left-right mirror image"}]
    stats = analyse_case(ct, labels.with_array(array), ORGANS, findings, case="c", model="dccseg-abdomen@0.1.0")
    assert stats["flags"][0]["check"] == "mirrored"  # case-wide flags first
    write_statistics(stats, tmp_path / "organs.stats.json")
    warned = summary_text(load_case_results(tmp_path / "organs.stats.json"))
    assert warned.startswith(f"Phase: {results.phase}. Whole scan: the scan reads as a left-right mirror image. Review first") and "3 plausibility flag(s)" in warned


def test_export_arguments_write_a_dicom_seg_of_a_series_copied_from_the_database(tmp_path):
    source = DATA / "dcmqi_ct3slice" / "dicom"
    series = tmp_path / "series"
    series.mkdir()
    uids = []
    for path in sorted(source.iterdir()):  # the panel copies the database files as <SOP instance UID>.dcm
        uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        uids.append(uid)
        (series / f"{uid}.dcm").write_bytes(path.read_bytes())
    assert dicom_instance_uids(" ".join(uids)) == uids and dicom_instance_uids(None) == []
    ct = read_image(series)
    write_labelmap(ct.with_array((read_labelmap(DATA / "dcmqi_ct3slice" / "liver_spine_seg.nrrd").array == 1).astype("uint8") * 6), tmp_path / "labels.nrrd")
    output = tmp_path / "seg" / "organs.dcm"
    engine = Engine()
    command = engine.command(*dicom_seg_arguments(series, tmp_path / "labels.nrrd", output, "dccseg-abdomen@0.1.0"))
    result = subprocess.run(command, capture_output=True, text=True, encoding="utf-8", timeout=300)
    assert result.returncode == 0, result.stderr
    seg = hd.seg.segread(output)
    assert [d.SegmentLabel for d in seg.SegmentSequence] == ["liver"]
    assert {i.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence} == set(uids)
