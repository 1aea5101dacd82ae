"""DCCTrainLib outside Slicer: the Label next list, fine-tuning parameters and the before/after report of a fine-tuned model."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "DCCSegment"), str(ROOT / "DCCTrain")]

from DCCSegmentLib.engine import Engine, EngineError  # noqa: E402
from DCCTrainLib.finetune_report import finetune_summary, model_card, model_card_call  # noqa: E402
from DCCTrainLib.label_next import drafted_file, next_cases, prefill_call, rank_call, ranking_path  # noqa: E402
from DCCTrainLib.train_parameters import FROM_SCRATCH, TrainParameters, default_from_model  # noqa: E402
from engine_stubs import fake_python  # noqa: E402



# --- fine-tuning parameters ----------------------------------------------------------------------------

def test_train_all_passes_the_model_to_fine_tune_and_the_world_ratio(tmp_path):
    params = TrainParameters(tmp_path, stage="all", loss="none", device="cpu", config="tiny", from_model="dccseg-abdomen@0.2.0", world_ratio=0.5)
    args = params.arguments(tmp_path / "run")
    assert args[args.index("--from") + 1] == "dccseg-abdomen@0.2.0" and args[args.index("--world-ratio") + 1] == "0.5"
    assert args[-2:] == ["--progress", "json"] and TrainParameters.from_dict(params.to_dict()) == params
    assert "--from" not in TrainParameters(tmp_path, stage="all", from_model=FROM_SCRATCH).arguments(tmp_path)
    assert "--loss" not in TrainParameters(tmp_path, stage="all", loss="dcc", from_model="m").arguments(tmp_path), "a fine-tune does not pretrain"
    assert "--loss" in TrainParameters(tmp_path, stage="all", loss="dcc", from_model=FROM_SCRATCH).arguments(tmp_path)
    assert "--from" not in TrainParameters(tmp_path, stage="coarse", from_model="dccseg-abdomen").arguments(tmp_path), "only 'all' fine-tunes"
    assert TrainParameters(tmp_path, from_model="m").arguments(tmp_path)[-4:-2] == ["--world-ratio", "1.0"]
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="world ratio"):
            TrainParameters(tmp_path, world_ratio=bad)


def test_a_fine_tune_on_children_asks_the_engine_to_measure_each_case(tmp_path):
    params = TrainParameters(tmp_path, stage="all", from_model="dccseg-abdomen", children=True)
    args = params.arguments(tmp_path / "run")
    assert args[args.index("--body-scale") + 1] == "auto" and TrainParameters.from_dict(params.to_dict()) == params
    assert "--body-scale" not in TrainParameters(tmp_path, stage="all", from_model="dccseg-abdomen").arguments(tmp_path)
    for start in ({"from_model": FROM_SCRATCH}, {"stage": "coarse", "from_model": "dccseg-abdomen"}):
        with pytest.raises(ValueError, match="children's cases are measured against the model they fine-tune"):
            TrainParameters(tmp_path, children=True, **start)


def test_runs_launched_before_fine_tuning_existed_resume_from_scratch(tmp_path):
    old = {"dataset": str(tmp_path), "stage": "all", "loss": "dcc", "epochs": None, "device": "auto", "config": "default", "name": ""}
    params = TrainParameters.from_dict(old)
    assert params.from_model == FROM_SCRATCH and "--from" not in params.arguments(tmp_path / "run", resume=True)


def test_the_default_model_to_fine_tune_is_the_one_segmenting():
    assert default_from_model("dccseg-abdomen@0.1.0") == "dccseg-abdomen@0.1.0"
    assert default_from_model("") == default_from_model(None) == default_from_model("  ") == "dccseg-abdomen"


# --- before/after report -------------------------------------------------------------------------------

FINETUNED = {
    "metrics": {"dice_mean": 0.8, "finetune": {
        "from": "dccseg-abdomen@0.2.0",
        "held_out": {"cases": ["a", "b"], "method": "held-out", "before": 0.81, "after": 0.88, "delta": 0.07, "p_value": 0.25,
                     "per_case": {"a": {"before": 0.8, "after": 0.9}, "b": {"before": 0.82, "after": 0.86}}},
        "benchmark": {"cases": ["s0009"], "before": 0.86, "after": 0.855, "delta": -0.005},
        "verdict": "better",
        "summary": "on your 2 held-out cases: 0.81 -> 0.88 (p = 0.25); on the benchmark: 0.86 -> 0.86"}},
    "held_back": "",
}


def test_finetune_summary_shows_before_after_verdict_and_why_a_model_is_held_back():
    assert finetune_summary(FINETUNED) == ("from dccseg-abdomen@0.2.0: on your 2 held-out cases 0.810 -> 0.880 (+0.070), p = 0.25; "
                                           "on the benchmark 0.860 -> 0.855 (-0.005)\nverdict: better on your cases")
    worse = json.loads(json.dumps(FINETUNED))
    worse["held_back"] = "worse on the benchmark (0.86 -> 0.80)"
    finetune = worse["metrics"]["finetune"]
    finetune.update(verdict="worse", benchmark=None)
    finetune["held_out"].update(cases=["a"], method="cross-validation", p_value=None, delta=None, after=0.7)
    assert finetune_summary(worse).splitlines() == [
        "from dccseg-abdomen@0.2.0: on your 1 held-out case (cross-validation) 0.810 -> 0.700 (-0.110)",
        "verdict: worse on your cases",
        "held back: worse on the benchmark (0.86 -> 0.80) (never the default; choose it in DCC Segment to use it anyway)"]


def test_finetune_summary_says_when_the_cases_were_read_as_children():
    children = json.loads(json.dumps(FINETUNED))
    children["metrics"]["finetune"]["held_out"]["body_scale"] = "auto"
    assert finetune_summary(children).startswith("from dccseg-abdomen@0.2.0: on your 2 held-out cases read as children (body scale auto; tick Child in DCC Segment) 0.810 -> 0.880")


def test_finetune_summary_is_empty_for_models_trained_from_scratch_and_survives_odd_cards():
    assert finetune_summary({"metrics": {"dice_mean": 0.4}}) == "" and finetune_summary({}) == ""
    odd = finetune_summary({"metrics": {"finetune": {"held_out": {"before": "x", "after": None}}}})
    assert odd == "from an unnamed model: on your 0 held-out cases - -> -"


def test_model_card_is_read_from_models_show(tmp_path):
    body = f"import json, sys\nassert sys.argv[3:] == ['models', 'show', 'm@1.0.0', '--json']\nprint(json.dumps({{'ref': 'm@1.0.0', 'card': {json.dumps(FINETUNED)}}}))\n"
    card = model_card(model_card_call(Engine(fake_python(tmp_path / "py", body)), "m@1.0.0").start().wait())
    assert card["metrics"]["finetune"]["verdict"] == "better"
    with pytest.raises(EngineError, match="no card"):
        model_card(model_card_call(Engine(fake_python(tmp_path / "bad", "print('{}')\n")), "m").start().wait())


# --- Label next ----------------------------------------------------------------------------------------

def _dataset_json(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps({"cases": [
        {"id": "done", "image": "images/done.nii.gz", "label": "labels/done.nii.gz", "phase": "arterial"},
        {"id": "u1", "image": "images/u1.nii.gz", "label": None, "phase": "delayed", "draft": {"file": "drafts/u1.seg.nrrd", "model": "m"}},
        {"id": "u2", "image": "images/u2.nii.gz", "label": None, "phase": "unknown"}]}), encoding="utf-8")


def test_next_cases_keep_the_ranking_order_and_drop_cases_labelled_since(tmp_path):
    _dataset_json(tmp_path)
    assert next_cases(tmp_path) == []
    ranking_path(tmp_path).write_text(json.dumps([
        {"case": "u2", "score": 0.61, "reasons": ["liver 68 ml is below the plausible 500-3500 ml", "spleen: coarse and refine disagree (Dice 0.41)", "x"]},
        {"case": "done", "score": 0.5, "reasons": []},
        {"case": "gone", "score": 0.4, "reasons": []},
        {"case": "u1", "score": 0.2, "reasons": []}]), encoding="utf-8")
    cases = next_cases(tmp_path)
    assert [(c.case, c.score_text(), c.phase) for c in cases] == [("u2", "0.61", "unknown"), ("u1", "0.20", "delayed")]
    assert cases[0].reason_text() == "liver 68 ml is below the plausible 500-3500 ml; spleen: coarse and refine disagree (Dice 0.41) (+1 more)"
    assert cases[1].reason_text() == "no warning signs"
    assert cases[0].draft is None and cases[1].draft == tmp_path / "drafts" / "u1.seg.nrrd" and cases[1].image == tmp_path / "images" / "u1.nii.gz"
    ranking_path(tmp_path).write_text("[{", encoding="utf-8")
    with pytest.raises(ValueError, match="rank the cases again"):
        next_cases(tmp_path)


def test_rank_and_prefill_calls_build_the_engine_command_lines(tmp_path):
    body = "import json, sys\nopen(sys.argv[0] + '.args', 'a').write(json.dumps(sys.argv[3:]) + '\\n')\n" \
           "print(json.dumps([{'id': 'u2', 'draft': {'file': 'drafts/u2.seg.nrrd'}}]))\n"
    python = fake_python(tmp_path / "py", body)
    rank_call(Engine(python), tmp_path, model="m@1.0.0", device="cpu").start().wait()
    result = prefill_call(Engine(python), tmp_path, "u2").start().wait()
    assert drafted_file(result, tmp_path) == tmp_path / "drafts" / "u2.seg.nrrd"
    ranked, prefilled = (json.loads(line) for line in Path(python + ".args").read_text(encoding="utf-8").splitlines())
    assert ranked[:3] == ["dataset", "rank", str(tmp_path)] and ranked[ranked.index("--json-out") + 1] == str(ranking_path(tmp_path))
    assert ranked[ranked.index("--model") + 1] == "m@1.0.0" and ranked[ranked.index("--prefill") + 1] == "3"
    assert prefilled[:4] == ["dataset", "prefill", str(tmp_path), "u2"] and "--model" not in prefilled and prefilled[-1] == "--json"
    refused = fake_python(tmp_path / "no", "import sys\nprint(\"dccseg: error: case 'u2' already has a reviewed label\", file=sys.stderr)\nsys.exit(2)\n")
    with pytest.raises(EngineError, match="reviewed label"):
        drafted_file(prefill_call(Engine(refused), tmp_path, "u2").start().wait(), tmp_path)


def test_rank_then_prefill_through_the_real_engine(tmp_path, monkeypatch):
    from tiny_models import register_tiny_model

    from dccseg.dataset import Dataset
    from dccseg.phantoms.procedural import procedural_phantom

    monkeypatch.setenv("DCCSEG_MODEL_STORE", str(register_tiny_model(tmp_path / "store")))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    dataset = Dataset.create(tmp_path / "ds")
    for seed, case_id in enumerate(("u1", "u2")):
        dataset.add_volumes(case_id, procedural_phantom((20, 28, 32), seed=seed)[0], None, "portal-venous")
    engine = Engine(sys.executable, dict(os.environ))
    ranked = rank_call(engine, dataset.root, model="tiny-seg", device="cpu", prefill=1).start().wait()
    assert ranked.error is None, ranked.stderr[-2000:]
    cases = next_cases(dataset.root)
    assert sorted(c.case for c in cases) == ["u1", "u2"] and cases[0].draft is not None and cases[0].draft.is_file() and cases[1].draft is None
    draft = drafted_file(prefill_call(engine, dataset.root, cases[1].case, model="tiny-seg", device="cpu").start().wait(), dataset.root)
    assert draft == dataset.root / "drafts" / f"{cases[1].case}.seg.nrrd" and draft.is_file()
    assert all(c.draft is not None for c in next_cases(dataset.root))
