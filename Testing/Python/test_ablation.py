"""The ablation end to end on its tiny plan: benchmark data, three arms, evaluation, report with tables and p-values."""

import json
import re

import pytest
import torch

from dccseg.ablation import build_plan, run_ablation, write_report
from dccseg.ablation.report import case_values, paired
from dccseg.cli import main
from dccseg.errors import DccsegError


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_plans_share_budget_and_seeds_and_refuse_unknown_arms():
    small = build_plan("small", ("supcon", "ce"))
    names = [a.name for a in small.arms]
    assert names[:5] == ["none", "simclr", "agcl", "dcc", "dcc-percentile"] and names[5:] == ["supcon", "ce"]
    assert {a.d_scale for a in small.arms if a.name.startswith("dcc")} == {"fixed", "percentile"}
    assert small.data.train["arterial"] < small.data.train["non-contrast"]  # the scarce phase
    with pytest.raises(DccsegError):
        build_plan("small", ("mystery",))
    with pytest.raises(DccsegError):
        build_plan("huge")


def test_tiny_ablation_runs_end_to_end_and_reports(tmp_path):
    out = tmp_path / "ablation"
    assert main(["ablation", "run", "--config", "tiny", "--output", str(out), "--device", "cpu", "--progress", "none"]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [r["arm"] for r in results["runs"]] == ["none", "simclr", "dcc"]
    assert all(len(r["cases"]) == 2 for r in results["runs"])
    assert results["runs"][2]["pretrain"]["empty_view_rate"] is not None
    values = case_values(results)
    dice = [c["dice_mean"] for arm in values.values() for c in arm.values()]
    assert all(0.0 <= d <= 1.0 for d in dice)
    assert paired(values, "dcc", "none")["n"] == 2

    report = (out / "report.md").read_text(encoding="utf-8")
    assert "dccseg ablation run --config tiny" in report
    assert re.search(r"\| none \| 0\.\d{3} \| 0\.\d{3} \| 0\.\d{3} \|", report)  # the per-phase table
    assert "p (all)" in report and "### Between arms" in report
    assert (out / "dice_by_phase.png").read_bytes()[:4] == b"\x89PNG" and (out / "dice_by_organ.png").stat().st_size > 1000

    rerun = run_ablation(build_plan("tiny"), out, "cpu")  # finished arms are skipped
    assert json.loads(rerun.read_text(encoding="utf-8"))["runs"] == results["runs"]
    docs = write_report(out, tmp_path / "docs")
    assert docs.read_text(encoding="utf-8").startswith("# DCC-CL ablation (tiny configuration)")
    with pytest.raises(DccsegError):
        run_ablation(build_plan("small"), out, "cpu")
