"""Acceptance: ``dccseg train coarse`` + ``dccseg train refine`` + ``dccseg segment`` on phantoms (tiny, CPU),
and the trained model beats an untrained one of the same architecture on a held-out phantom."""

from __future__ import annotations

import json

import pytest
import torch

from dccseg.evaluation import evaluate_pair
from dccseg.inference import segment_volume
from dccseg.io import read_labelmap, write_image
from dccseg.phantoms import procedural_phantom
from dccseg.store import ModelCard, build_networks, load_model
from dccseg.training.export import write_model_folder
from dccseg.training.runstate import read_metrics
from train_fixtures import SHAPE, phantom_dataset, run_dccseg


def test_train_coarse_refine_then_segment_beats_an_untrained_model(tmp_path):
    dataset = phantom_dataset(tmp_path / "data", cases=4)
    ct, reference = procedural_phantom(SHAPE, phase="arterial", seed=50)
    write_image(ct, tmp_path / "held_out.nii.gz")

    coarse_run, refine_run = tmp_path / "coarse_run", tmp_path / "refine_run"
    common = ["--config", "tiny", "--device", "cpu", "--progress", "json"]
    run_dccseg("train", "coarse", str(dataset), "--output", str(coarse_run), *common)
    run_dccseg("train", "refine", str(dataset), "--output", str(refine_run), "--coarse", str(coarse_run), *common)
    for run, stage in ((coarse_run, "coarse"), (refine_run, "refine")):
        status = json.loads((run / "status.json").read_text(encoding="utf-8"))
        assert status["state"] == "finished" and status["best"]["value"] > 0
        assert {r["stage"] for r in read_metrics(run)} == {stage}
    assert json.loads((refine_run / "split.json").read_text(encoding="utf-8")) == json.loads((coarse_run / "split.json").read_text(encoding="utf-8"))

    model_dir = refine_run / "model"
    run_dccseg("segment", str(tmp_path / "held_out.nii.gz"), str(tmp_path / "trained.nii.gz"), "--model", str(model_dir), "--device", "cpu", "--progress", "none")
    trained = evaluate_pair(read_labelmap(tmp_path / "trained.nii.gz", reference=ct), reference)

    card = ModelCard.read(model_dir / "model.json")
    assert card.preprocessing["coarse_spacing"] == [8.0, 8.0, 8.0] and card.training["data"]["cases"] == 4
    torch.manual_seed(0)
    networks = build_networks(card)
    write_model_folder(tmp_path / "untrained", card, {part: net.state_dict() for part, net in networks.items()})
    untrained = evaluate_pair(segment_volume(ct, load_model(str(tmp_path / "untrained"), "cpu")), reference)

    print(f"held-out Dice: trained {trained['dice_mean']:.3f} (liver {trained['organs']['liver']['dice']:.3f}), untrained {untrained['dice_mean']:.3f}")
    assert trained["organs"]["liver"]["dice"] > 0.5
    assert trained["dice_mean"] > untrained["dice_mean"] + 0.1
    assert trained["dice_mean"] > 2 * untrained["dice_mean"]


def test_a_coarse_crop_the_network_cannot_halve_is_a_clear_error_before_training(tmp_path):
    from dccseg.errors import DccsegError
    from dccseg.training.pipeline import train_coarse

    with pytest.raises(DccsegError, match=r"coarse__crop must be a multiple of 4 \(the network halves its grid 2 times\), got 30x30x30"):
        train_coarse(phantom_dataset(tmp_path / "data", cases=2), tmp_path / "run", config="tiny", overrides={"coarse__crop": (30, 30, 30)}, device="cpu")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_starting_model_whose_coarse_network_has_another_shape_is_a_clear_error_before_any_case_is_read(tmp_path, monkeypatch):
    from dccseg.errors import DccsegError
    from dccseg.networks import CoarseConfig
    from dccseg.training import pipeline
    from dccseg.training.pipeline import train_coarse

    def no_reading(*args, **kwargs):
        raise AssertionError("the cases were read before the starting model was checked")

    monkeypatch.setattr(pipeline, "load_coarse_cases", no_reading)

    narrower = {"coarse__network": CoarseConfig(channels=(8, 16, 32), num_res_units=0).to_dict()}  # a run's own network replaces the start's (train_release_model's variants)
    with pytest.raises(DccsegError, match=r"other widths or levels than this run's \(unet, channels 8, 16, 32\); a network of another shape trains from scratch"):
        train_coarse(phantom_dataset(tmp_path / "data", cases=2), tmp_path / "run", config="tiny", overrides=narrower, device="cpu", start="dccseg-abdomen@0.4.6")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
