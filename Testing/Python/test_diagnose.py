"""Stage-wise evaluation and the per-organ refine skip, with a tiny untrained model on a small phantom."""

import json

import numpy as np
import pytest
from tiny_models import register_tiny_model, tiny_card

import dccseg.inference.pipeline as pipeline
from dccseg.bench import Measurement, table
from dccseg.cli import main
from dccseg.errors import DccsegError
from dccseg.evaluation.stages import refine_skip_organs, stage_table
from dccseg.inference import InferenceSettings, segment_volume
from dccseg.inference.stages import stage_predictions
from dccseg.io import write_image, write_labelmap
from dccseg.organs import ORGAN_BY_KEY, ORGANS
from dccseg.phantoms.procedural import procedural_phantom
from dccseg.preprocess import resample, resample_like, to_canonical
from dccseg.store import ModelStore, load_model
from dccseg.volume import Volume

FLIPPED = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
ALL_KEYS = [o.key for o in ORGANS]
COARSE_MM = 5.0  # finer than the 10 mm phantom, so the oracle prior loses nothing but the restore's rounding


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    register_tiny_model(root, tiny_card("tiny-diag", coarse_spacing=COARSE_MM))
    register_tiny_model(root, tiny_card("tiny-skip-all", coarse_spacing=COARSE_MM, refine_skip=ALL_KEYS))
    return root


@pytest.fixture(scope="module")
def model(store):
    return load_model("tiny-diag", "cpu", store=ModelStore(store))


@pytest.fixture(scope="module")
def skip_all(store):
    return load_model("tiny-skip-all", "cpu", store=ModelStore(store))


@pytest.fixture(scope="module")
def case():
    ct, labels = procedural_phantom((26, 30, 38), seed=2)
    return Volume(ct.array, ct.spacing, (190.0, 150.0, -40.0), FLIPPED), Volume(labels.array, labels.spacing, (190.0, 150.0, -40.0), FLIPPED)


@pytest.fixture
def refine_calls(monkeypatch):
    """Every call of the refine stage: (the organ ids it refines, the prior label map on the refine grid)."""
    calls = []
    original = pipeline.refine_votes

    def spy(image, labels, wanted, *args, **kwargs):
        calls.append((list(wanted), labels.copy()))
        return original(image, labels, wanted, *args, **kwargs)

    monkeypatch.setattr(pipeline, "refine_votes", spy)
    return calls


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_stage_table_matches_an_independent_computation(model, case):
    ct, reference = case
    document = stage_table([(ct, reference)], model, ["phantom"], refine_skip=())
    row = document["cases"][0]
    refined = segment_volume(ct, model, refine_skip=()).array
    coarse = segment_volume(ct, model, refine_skip=range(1, 14)).array
    present = [o for o in ORGANS if (reference.array == o.label).any()]
    assert list(row["organs"]) == [o.key for o in present]
    for organ in present:
        truth = reference.array == organ.label
        assert row["organs"][organ.key]["refined"] == pytest.approx(_dice(refined == organ.label, truth))
        assert row["organs"][organ.key]["coarse"] == pytest.approx(_dice(coarse == organ.label, truth))
    summary = document["summary"]
    for stage in ("coarse", "refined", "oracle_prior", "oracle_refined"):
        expected = np.mean([row["organs"][o.key][stage] for o in present])
        assert row["mean"][stage] == pytest.approx(expected) and summary["mean"][stage] == pytest.approx(expected)
    assert summary["gain"]["refined_over_coarse"] == pytest.approx(summary["mean"]["refined"] - summary["mean"]["coarse"])
    gains = [row["organs"][o.key]["oracle_refined"] > row["organs"][o.key]["oracle_prior"] for o in present]
    assert summary["organs_improved"]["oracle_refined_over_oracle_prior"] == sum(gains) and summary["n_organs"] == len(present)
    assert summary["mean"]["oracle_prior"] > 0.9 > summary["mean"]["coarse"]  # an untrained coarse net is far from the reference


def test_the_oracle_stages_feed_the_reference_to_refine(model, case, refine_calls):
    ct, reference = case
    stage_predictions(ct, reference, model, refine_skip=())
    assert [wanted for wanted, _ in refine_calls] == [list(range(1, 14))] * 2  # refined, then oracle refined
    settings = InferenceSettings.from_card(model.card.preprocessing)
    canonical = to_canonical(ct)[0]
    coarse_grid = resample(canonical, settings.coarse_spacing, is_label=False)
    refine_grid = resample(canonical, settings.refine_grid_spacing(canonical.spacing[2]), is_label=False)
    expected = resample_like(resample_like(to_canonical(reference)[0], coarse_grid, is_label=True), refine_grid, is_label=True).array
    own_prior, oracle = refine_calls[0][1], refine_calls[1][1]
    assert np.array_equal(oracle, expected)
    assert not np.array_equal(own_prior, expected)


def test_a_perfect_prior_with_every_organ_skipped_reproduces_the_reference(skip_all, case, refine_calls):
    ct, reference = case
    stages = stage_predictions(ct, reference, skip_all)  # the card skips refinement for every organ
    assert not refine_calls
    assert np.array_equal(stages["oracle_refined"].array, stages["oracle_prior"].array)
    assert np.array_equal(stages["refined"].array, stages["coarse"].array)
    assert stages["oracle_refined"].same_grid(ct)
    for organ in ORGANS:
        truth = reference.array == organ.label
        if truth.sum() >= 20:  # the restore rounds single voxels of the thinnest organs
            assert _dice(stages["oracle_refined"].array == organ.label, truth) > 0.9, organ.key
    assert np.array_equal(segment_volume(ct, skip_all).array, stages["coarse"].array)
    assert not refine_calls


def test_skipped_organs_take_the_coarse_path(model, case, refine_calls):
    ct, _ = case
    liver, spleen = ORGAN_BY_KEY["liver"], ORGAN_BY_KEY["spleen"]
    timings = {}
    mixed = segment_volume(ct, model, organs=[liver, spleen], refine_skip={liver.label}, timings=timings).array
    assert [wanted for wanted, _ in refine_calls] == [[spleen.label]]
    assert timings["refine"] > 0
    coarse_liver = segment_volume(ct, model, organs=[liver], refine_skip={liver.label}).array == liver.label
    refined_liver = segment_volume(ct, model, organs=[liver], refine_skip=()).array == liver.label
    assert not np.array_equal(coarse_liver, refined_liver)
    assert np.all(coarse_liver[mixed == liver.label])  # the liver comes from the coarse labels ...
    assert np.all(np.isin(mixed[coarse_liver], (liver.label, spleen.label)))  # ... and only the refined spleen may take from it


def test_refine_skip_lists_the_organs_refinement_makes_worse():
    summary = {"refine_skip": [], "organs": {
        "liver": {"coarse": 0.90, "refined": 0.95},
        "spleen": {"coarse": 0.90, "refined": 0.88},
        "aorta": {"coarse": 0.80, "refined": 0.795},
    }}
    assert refine_skip_organs(summary) == ["spleen", "aorta"]
    assert refine_skip_organs(summary, margin=0.01) == ["spleen"]
    with pytest.raises(DccsegError, match="refine-all"):
        refine_skip_organs({**summary, "refine_skip": ["liver"]})


def test_card_validates_and_stores_refine_skip_and_stage_metrics(model):
    card = tiny_card()
    assert "refine_skip" not in card.to_dict() and "stage_metrics" not in card.to_dict()  # older dccseg still reads it
    table = {"organs": {"liver": {"coarse": 0.9, "refined": 0.95, "oracle_prior": 0.97, "oracle_refined": 0.96}}}
    stored = tiny_card(refine_skip=["liver"], stage_metrics={"validation": table})
    assert type(stored).from_dict(json.loads(json.dumps(stored.to_dict()))).stage_metrics == {"validation": table}
    assert stored.refine_skip_labels == {ORGAN_BY_KEY["liver"].label}
    problems = [
        {"refine_skip": ["liver", "liver"]},
        {"refine_skip": ["no_such_organ"]},
        {"refine_skip": "liver"},
        {"stage_metrics": {"validation": {"organs": {"liver": {"coarse": 1.5}}}}},
        {"stage_metrics": {"validation": {"organs": {"liver": {"final": 0.5}}}}},
        {"stage_metrics": {"validation": {"dice": 0.5}}},
    ]
    for fields in problems:
        with pytest.raises(DccsegError, match="refine_skip|stage_metrics"):
            tiny_card(**fields)


def test_cli_diagnose_writes_the_table_and_models_show_prints_a_card_table(store, model, monkeypatch, case, tmp_path, capsys):
    monkeypatch.setenv("DCCSEG_MODEL_STORE", str(store))
    ct, reference = case
    write_image(ct, tmp_path / "ct.nii.gz")
    write_labelmap(reference, tmp_path / "ref.nii.gz")
    output = tmp_path / "table.json"
    args = ["diagnose", str(tmp_path / "ct.nii.gz"), str(tmp_path / "ref.nii.gz"), "--model", "tiny-diag", "--device", "cpu", "--progress", "none"]
    assert main([*args, "--output", str(output), "--refine-all"]) == 0
    printed = capsys.readouterr().out
    document = json.loads(output.read_text(encoding="utf-8"))
    assert document["cases"][0]["case"] == "ct" and document["summary"]["refine_skip"] == []
    assert "| organ | coarse | refined | gain | oracle prior | oracle refined | gain |" in printed and "| liver |" in printed
    assert "ct: coarse " in printed and "(refine " in printed
    assert main([*args, "--output", str(output)]) == 2  # never overwrites a table
    assert "already exists" in capsys.readouterr().err
    assert json.loads(output.read_text(encoding="utf-8")) == document
    assert main(["diagnose", str(tmp_path / "ct.nii.gz"), "--model", "tiny-diag", "--progress", "none"]) == 2
    assert main(["models", "show", "tiny-skip-all"]) == 0
    assert "refine skip:   spleen, kidney_right" in capsys.readouterr().out
    with_table = tiny_card("tiny-table", stage_metrics={"s0009": document["summary"]})
    ModelStore(store).register(with_table, {"coarse": model.coarse.state_dict(), "refine": model.refine.state_dict()})
    assert main(["models", "show", "tiny-table"]) == 0
    shown = capsys.readouterr().out
    assert "stage-wise Dice, s0009:" in shown and "refine skip:   none" in shown
    assert f"| liver | {document['summary']['organs']['liver']['coarse']:.3f} |" in shown


def test_bench_reports_the_refine_share():
    default = Measurement("shared-ct", "cpu", "default", 20.0, 1.0, {"load": 2.0, "coarse": 3.0, "refine": 13.0, "fuse": 1.0, "write": 1.0})
    failed = Measurement("shared-ct", "cpu", "fast", 1.0, 1.0, {}, returncode=1)
    lines = table([default, failed]).splitlines()
    column = lines[0].split(" | ").index("refine share")
    assert lines[2].split(" | ")[column] == "65%" and lines[3].split(" | ")[column] == "-"
