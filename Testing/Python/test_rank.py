"""``dccseg dataset rank``: which unlabelled case to label next, with the shipped model and a tiny one."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import register_tiny_model

from dccseg.cli import main
from dccseg.dataset import Dataset
from dccseg.fusion import VoteAccumulator, vote_ambiguity
from dccseg.io import read_image
from dccseg.organs import ORGAN_BY_KEY, ORGANS
from dccseg.phantoms.procedural import procedural_phantom
from dccseg.ranking import CaseRank, format_ranking, order, score_case
from dccseg.volume import Volume

BUNDLED_CT = Path(__file__).resolve().parents[2] / "dccseg" / "data" / "totalseg_example" / "example_ct.nii.gz"
SPLEEN, LIVER = ORGAN_BY_KEY["spleen"], ORGAN_BY_KEY["liver"]
ALL_IDS = {o.label for o in ORGANS}


def _maps() -> tuple[np.ndarray, np.ndarray]:
    """Coarse and refined label maps that agree: a liver block and a spleen block."""
    labels = np.zeros((10, 20, 20), dtype=np.uint8)
    labels[2:8, 2:10, 2:10] = LIVER.label
    labels[2:8, 12:18, 12:18] = SPLEEN.label
    return labels, labels.copy()


def test_score_grows_with_disagreement_flags_and_ambiguity_and_names_the_reasons():
    coarse, refined = _maps()
    quiet, reasons, signals, organs = score_case(coarse, refined, ORGANS, ALL_IDS, {}, [], 0.001)
    assert quiet == 0.0 and reasons == [] and signals == {"disagreement": 0.0, "ambiguity": 0.0, "implausibility": 0.0}
    assert organs["liver"]["dice_coarse_refined"] == 1.0 and organs["pancreas"]["dice_coarse_refined"] is None

    refined[2:8, 12:18, 15:18] = 0  # refine keeps half of the coarse spleen
    flag = {"organ": "pancreas", "check": "missing", "message": "pancreas not found although the liver is fully in the scan: removed, or missed?"}
    score, reasons, signals, organs = score_case(coarse, refined, ORGANS, ALL_IDS, {SPLEEN.label: 0.9, LIVER.label: 0.1}, [flag], 0.01)
    assert reasons == ["pancreas not found although the liver is fully in the scan", "spleen: coarse and refine disagree (Dice 0.67)",
                       "spleen: refine patches unsure (90% of its voxels)"]
    assert signals["disagreement"] == pytest.approx((0 + 1 / 3) / 2, abs=1e-4) and signals["ambiguity"] == 0.5
    assert signals["implausibility"] == pytest.approx(1 / 3, abs=1e-4)
    assert score == pytest.approx(sum(signals.values()) / 3, abs=1e-4) and 0 < score < 1
    assert organs["pancreas"]["flags"] == ["pancreas not found although the liver is fully in the scan"]
    assert organs["spleen"]["coarse_ml"] == pytest.approx(2.16) and organs["spleen"]["refined_ml"] == pytest.approx(1.08)

    skipped, *_ = score_case(coarse, refined, ORGANS, ALL_IDS - {SPLEEN.label}, {}, [], 0.001)
    assert skipped == 0.0, "an organ the card does not refine gives no disagreement"


def test_a_case_without_any_organ_scores_full_implausibility():
    empty = np.zeros((4, 4, 4), dtype=np.uint8)
    score, reasons, signals, _ = score_case(empty, empty, ORGANS, ALL_IDS, {}, [], 0.001)
    assert signals["implausibility"] == 1.0 and reasons[0].startswith("no organ found") and score == pytest.approx(1 / 3, abs=1e-4)


def test_vote_ambiguity_is_low_for_confident_patches_and_high_for_hesitant_ones():
    centers = torch.tensor([[0, 4, 4], [0, 5, 5]])
    confident = VoteAccumulator(1, centers, 4, (1, 10, 10))
    confident.add(centers, torch.full((2, 4, 4), 0.95))
    hesitant = VoteAccumulator(1, centers, 4, (1, 10, 10))
    hesitant.add(centers, torch.stack([torch.full((4, 4), 0.9), torch.full((4, 4), 0.2)]))
    assert vote_ambiguity(confident) == 0.0
    assert vote_ambiguity(hesitant) == pytest.approx(9 / 16), "where both patches cover a pixel the mean is 0.55: unsure"
    nothing = VoteAccumulator(1, centers[:1], 4, (1, 10, 10))
    nothing.add(centers[:1], torch.zeros((1, 4, 4)))
    assert vote_ambiguity(nothing) is None


def test_order_and_table_put_unranked_cases_last():
    entries = order([CaseRank("b", 0.2, ["x"]), CaseRank("bad", None, ["could not be ranked: cut file"], error="cut file"),
                     CaseRank("a", 0.7, ["r1", "r2", "r3", "r4"]), CaseRank("c", 0.2)])
    assert [e.case for e in entries] == ["a", "b", "c", "bad"]
    table = format_ranking(entries).splitlines()
    assert table[2] == "| 1 | a | 0.70 | r1; r2; r3 (+1 more) |" and table[4] == "| 3 | c | 0.20 | no warning signs |"
    assert table[5] == "| 4 | bad | - | could not be ranked: cut file |"
    assert entries[3].to_json()["error"] == "cut file" and "error" not in entries[0].to_json()


def _bundled_ct_slab(first: int = 30, last: int = 90) -> Volume:
    """Slices ``first:last`` of the bundled real CT (the upper abdomen; half the full CT's time to segment)."""
    ct = read_image(BUNDLED_CT)
    step = np.asarray(ct.direction).reshape(3, 3)[:, 2] * ct.spacing[2]
    return Volume(ct.array[first:last], ct.spacing, tuple(np.asarray(ct.origin) + first * step), ct.direction)


def test_the_shipped_model_ranks_a_noisy_and_a_mirrored_ct_above_the_clean_one(tmp_path, capsys):
    ct = _bundled_ct_slab()
    dataset = Dataset.create(tmp_path / "ds")
    dataset.add_volumes("clean", ct, None, "non-contrast")
    noisy = ct.array.astype(np.float32) + np.random.default_rng(0).normal(0, 250, ct.shape).astype(np.float32)
    dataset.add_volumes("noisy", ct.with_array(noisy), None, "non-contrast")
    dataset.add_volumes("mirrored", ct.with_array(np.ascontiguousarray(ct.array[:, :, ::-1])), None, "non-contrast")  # sides swapped, header kept
    output = tmp_path / "ranking.json"
    assert main(["dataset", "rank", str(dataset.root), "--fast", "--device", "cpu", "--progress", "none", "--json-out", str(output)]) == 0
    ranking = {entry["case"]: entry for entry in json.loads(output.read_text(encoding="utf-8"))}
    assert list(ranking)[-1] == "clean", list(ranking)
    assert ranking["noisy"]["score"] > ranking["clean"]["score"] + 0.15, ranking
    assert ranking["noisy"]["signals"]["implausibility"] > ranking["clean"]["signals"]["implausibility"] and ranking["noisy"]["reasons"]
    assert ranking["mirrored"]["reasons"][0].startswith("the scan reads as a left-right mirror image"), ranking["mirrored"]["reasons"]
    assert set(ranking["clean"]["organs"]) == {o.key for o in ORGANS} and ranking["clean"]["draft"] is None
    printed = capsys.readouterr().out
    assert "3 unlabelled case(s)" in printed and "| 3 | clean |" in printed


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return register_tiny_model(tmp_path_factory.mktemp("store"))


def _phantom_dataset(root: Path) -> Dataset:
    """One labelled and two unlabelled small phantoms."""
    dataset = Dataset.create(root)
    for index, case_id in enumerate(("labelled", "u1", "u2")):
        ct, labels = procedural_phantom((20, 28, 32), seed=index)
        dataset.add_volumes(case_id, ct, labels if case_id == "labelled" else None, "portal-venous")
    return dataset


def test_rank_measures_only_unlabelled_cases_prefills_the_top_one_and_limits_the_list(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DCCSEG_MODEL_STORE", str(store))
    dataset = _phantom_dataset(tmp_path / "ds")
    (dataset.root / "images" / "u2.nii.gz").write_bytes(b"not a NIfTI file")  # a damaged image is listed, not fatal
    output = tmp_path / "ranking.json"
    args = ["dataset", "rank", str(dataset.root), "--model", "tiny-seg", "--device", "cpu", "--progress", "none", "--json-out", str(output)]
    assert main([*args, "--prefill", "1", "--limit", "1"]) == 0
    ranking = json.loads(output.read_text(encoding="utf-8"))
    assert [entry["case"] for entry in ranking] == ["u1"] and 0.0 <= ranking[0]["score"] <= 1.0
    assert ranking[0]["draft"] == "drafts/u1.seg.nrrd" and "| 2 |" not in capsys.readouterr().out
    reloaded = Dataset.load(dataset.root)
    assert reloaded.case("u1").draft.model == "tiny-seg@0.0.1" and reloaded.case("u1").label is None
    assert reloaded.case("u2").draft is None and reloaded.case("labelled").draft is None

    assert main(args) == 0, "an earlier ranking may be replaced"
    assert [entry["case"] for entry in json.loads(output.read_text(encoding="utf-8"))] == ["u1", "u2"]
    assert "| 2 | u2 | - | could not be ranked:" in capsys.readouterr().out


def test_rank_says_so_when_every_case_is_labelled_and_never_overwrites_other_files(tmp_path, capsys):
    dataset = Dataset.create(tmp_path / "ds")
    ct, labels = procedural_phantom((20, 28, 32), seed=0)
    dataset.add_volumes("a", ct, labels, "arterial")
    output = tmp_path / "ranking.json"
    assert main(["dataset", "rank", str(dataset.root), "--json-out", str(output), "--progress", "none"]) == 0
    assert "has no unlabelled cases" in capsys.readouterr().out and json.loads(output.read_text(encoding="utf-8")) == []
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}', encoding="utf-8")
    assert main(["dataset", "rank", str(dataset.root), "--json-out", str(notes), "--progress", "none"]) == 2
    assert "is not an earlier ranking" in capsys.readouterr().err and notes.read_text(encoding="utf-8") == '{"mine": true}'
    assert main(["dataset", "rank", str(dataset.root), "--limit", "0", "--progress", "none"]) == 2
