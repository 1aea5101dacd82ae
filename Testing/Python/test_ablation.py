"""The ablation: plans split by body, real test scans, the release verdict, and the tiny plan end to end."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from dccseg.ablation import build_plan, run_ablation, write_report
from dccseg.ablation.plan import BenchmarkData, real_scan
from dccseg.ablation.report import case_values, paired, release_verdict
from dccseg.cli import main
from dccseg.dataset import Dataset
from dccseg.errors import DccsegError
from dccseg.phantoms.templates import BODY_SPLIT

DATA = Path(__file__).resolve().parents[2] / "dccseg" / "data"
SLAB = DATA / "totalseg_dicom_slab"  # a real portal-venous scan of a patient whose anatomy no template holds


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_plans_share_budget_and_seeds_and_refuse_unknown_arms():
    small = build_plan("small", ("dcc-percentile", "supcon"))
    names = [a.name for a in small.arms]
    assert names == ["none", "simclr", "agcl", "dcc", "dcc-percentile", "supcon"]
    assert {a.d_scale for a in small.arms if a.name.startswith("dcc")} == {"fixed", "percentile"}
    assert small.data.train["arterial"] < small.data.train["non-contrast"]  # the scarce phase
    with pytest.raises(DccsegError):
        build_plan("small", ("mystery",))
    with pytest.raises(DccsegError):
        build_plan("huge")


def test_plans_never_train_on_a_test_body():
    for name in ("tiny", "small", "large"):
        data = build_plan(name).data
        assert set(data.train_bodies) <= set(BODY_SPLIT["train"]) and set(data.test_bodies) <= set(BODY_SPLIT["test"])
    with pytest.raises(DccsegError, match="s0009"):
        BenchmarkData(train_bodies=("s0001", "s0009"))


def test_real_scans_are_checked_and_recorded_by_name_not_path(tmp_path):
    here = real_scan("/data/a/s0009/ct.nii.gz", "/data/a/references/s0009_organs.nii.gz", "non-contrast")
    there = real_scan("/mnt/b/s0009/ct.nii.gz", "/mnt/c/references/s0009_organs.nii.gz", "non-contrast")
    assert here.to_dict() == there.to_dict() == {"id": "real-s0009-ct-nc", "phase": "non-contrast", "ct": "s0009/ct.nii.gz", "labels": "references/s0009_organs.nii.gz"}
    assert build_plan("small", real_test=(here,)).to_dict() == build_plan("small", real_test=(there,)).to_dict()
    with pytest.raises(DccsegError, match="training body totalseg_example"):
        real_scan(str(DATA / "totalseg_example" / "example_ct.nii.gz"), "labels.nii.gz", "non-contrast")
    with pytest.raises(DccsegError, match="training body totalseg_example"):
        real_scan("/shared/totalsegmentator/example_ct.nii.gz", "labels.nii.gz", "non-contrast")
    with pytest.raises(DccsegError, match="unknown phase"):
        real_scan(str(SLAB / "dicom"), str(SLAB / "organs.nii.gz"), "venous")
    with pytest.raises(DccsegError, match="given twice"):
        build_plan("tiny", real_test=(here, there))


def _values(differences, base=0.5):
    """arm -> case -> record, with dcc = none + difference per case."""
    cases = {f"c{i}": d for i, d in enumerate(differences)}
    return {
        "none": {c: {"phase": "non-contrast", "dice_mean": base, "organs": {}} for c in cases},
        "dcc": {c: {"phase": "non-contrast", "dice_mean": base + d, "organs": {}} for c, d in cases.items()},
    }


def test_release_verdict_picks_the_measurable_winner_and_none_on_a_tie():
    winner, line = release_verdict(_values([0.02 + 0.001 * i for i in range(10)]))
    assert winner == "dcc" and "dcc is better" in line and "should use dcc pretraining" in line and "n = 10" in line
    winner, line = release_verdict(_values([-0.02 - 0.001 * i for i in range(10)]))
    assert winner == "none" and "none is better" in line and "-0.0" in line
    winner, line = release_verdict(_values([0.05, 0.04, 0.03]))  # all better, but 3 pairs cannot reach p < 0.05
    assert winner == "none" and "no measurable difference" in line and "p = 0.25" in line and "the cheaper one" in line
    winner, line = release_verdict(_values([0.01, -0.012, 0.011, -0.009, 0.013, -0.01, 0.008, -0.011]))
    assert winner == "none" and "no measurable difference" in line
    assert release_verdict(_values([0.0] * 6))[0] == "none"  # no pair differs: no p-value


def test_tiny_ablation_splits_bodies_tests_real_scans_and_reports(tmp_path):
    out = tmp_path / "ablation"
    real = ["--real-test", str(SLAB / "dicom"), str(SLAB / "organs.nii.gz"), "portal-venous"]
    assert main(["ablation", "run", "--config", "tiny", "--output", str(out), "--device", "cpu", "--progress", "none", *real]) == 0

    train, test = Dataset.load(out / "data" / "train").cases, Dataset.load(out / "data" / "test").cases
    train_bodies = {c.subject for c in train}
    synthetic_test_bodies = {c.subject for c in test if not c.id.startswith("real-")}
    assert train_bodies and train_bodies <= set(BODY_SPLIT["train"]) and all(c.subject in c.source for c in train)
    assert synthetic_test_bodies == set(BODY_SPLIT["test"])  # both test bodies, one case each
    assert not train_bodies & {c.subject for c in test}  # no body (nor real scan) in both
    assert [(c.id, c.phase) for c in test if c.id.startswith("real-")] == [("real-totalseg_dicom_slab-dicom-pv", "portal-venous")]

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [r["arm"] for r in results["runs"]] == ["none", "simclr", "dcc"]
    assert all(len(r["cases"]) == 3 for r in results["runs"])
    assert all(("real-totalseg_dicom_slab-dicom-pv", "portal-venous") in [(c["case"], c["phase"]) for c in r["cases"]] for r in results["runs"])
    assert results["plan"]["data"]["real_test"] == [{"id": "real-totalseg_dicom_slab-dicom-pv", "phase": "portal-venous",
                                                     "ct": "totalseg_dicom_slab/dicom", "labels": "totalseg_dicom_slab/organs.nii.gz"}]
    assert results["runs"][2]["pretrain"]["empty_view_rate"] is not None
    values = case_values(results)
    dice = [c["dice_mean"] for arm in values.values() for c in arm.values()]
    assert all(0.0 <= d <= 1.0 for d in dice)
    assert paired(values, "dcc", "none")["n"] == 3

    report = (out / "report.md").read_text(encoding="utf-8")
    assert "dccseg ablation run --config tiny" in report and "--real-test" in report
    assert f"training bodies {', '.join(BODY_SPLIT['train'][:2])}; test bodies {', '.join(BODY_SPLIT['test'])} (never trained on)" in report  # tiny: two cases a split
    assert "real-totalseg_dicom_slab-dicom-pv (portal-venous, totalseg_dicom_slab/dicom" in report
    assert re.search(r"dcc vs none on unseen bodies: mean Dice difference [+-]\d\.\d{3} \(dcc - none, n = 3\), p = .*should use none", report)
    assert re.search(r"## Real scans\n(.*\n){3}\| arm \| real mean \| real-totalseg_dicom_slab-dicom-pv \|", report)
    assert re.search(r"\| none \| 0\.\d{3} \| 0\.\d{3} \| 0\.\d{3} \| 0\.\d{3} \|", report)  # the per-phase table: all, nc, art, pv
    assert "p (all)" in report and "### Between arms" in report
    assert (out / "dice_by_phase.png").read_bytes()[:4] == b"\x89PNG" and (out / "dice_by_organ.png").stat().st_size > 1000

    moved = tmp_path / "elsewhere" / "totalseg_dicom_slab"  # the same scan kept elsewhere on another machine
    shutil.copytree(SLAB, moved)
    plan = build_plan("tiny", real_test=(real_scan(str(moved / "dicom"), str(moved / "organs.nii.gz"), "portal-venous"),))
    rerun = run_ablation(plan, out, "cpu")  # the same spec: finished arms are skipped
    assert json.loads(rerun.read_text(encoding="utf-8"))["runs"] == results["runs"]
    docs = write_report(out, tmp_path / "docs")
    assert docs.read_text(encoding="utf-8").startswith("# DCC-CL ablation (tiny configuration)")
    with pytest.raises(DccsegError, match="another plan"):
        run_ablation(build_plan("tiny"), out, "cpu")  # without the real scan
    with pytest.raises(DccsegError, match="another plan"):
        run_ablation(dataclasses.replace(plan, data=dataclasses.replace(plan.data, test_bodies=("s0006",))), out, "cpu")


def test_report_refuses_an_ablation_from_before_the_body_split(tmp_path):
    plan = build_plan("tiny").to_dict()
    del plan["data"]["train_bodies"]
    (tmp_path / "results.json").write_text(json.dumps({"plan": plan, "runs": []}), encoding="utf-8")
    with pytest.raises(DccsegError, match="before the split by body"):
        write_report(tmp_path)
