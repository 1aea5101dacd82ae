"""tools/train_release_model.py: a continuation keeps the recipe's schedule, at the learning rate scale asked for; the coarse step's crops; the coarse prior comes from the start model; the card's organ volumes come from the validation anatomies; combine joins the variant's coarse run to a kept refine network, and says which stage to finish when that run has not exported one."""

import sys

import pytest
from builders import load_tool

from dccseg.errors import DccsegError
from dccseg.training.configs import preset


def test_continuation_scales_the_recipe_learning_rate():
    recipe = load_tool("train_release_model")
    rate = preset("default").coarse.optimizer.lr
    assert recipe.continued(None) == {}
    full, gentle = recipe.continued("dccseg-abdomen", 1.0), recipe.continued("dccseg-abdomen", 0.2)
    assert full["coarse__optimizer"]["lr"] == rate
    assert gentle["coarse__optimizer"]["lr"] == pytest.approx(rate / 5)
    assert gentle["coarse__optimizer"] == {**full["coarse__optimizer"], "lr": gentle["coarse__optimizer"]["lr"]}
    assert gentle["coarse__patience"] == 0


def test_the_coarse_step_trains_on_the_variants_crops_unless_an_edge_is_given():
    recipe = load_tool("train_release_model")
    assert recipe.coarse_overrides("5mm", 30)["coarse__crop"] == (48, 48, 48)
    larger = recipe.coarse_overrides("5mm", 30, crop_edge=64)
    assert larger["coarse__crop"] == (64, 64, 64) and larger["preprocessing__coarse_spacing"] == (5.0, 5.0, 5.0) and larger["coarse__epochs"] == 30
    with pytest.raises(DccsegError, match="multiple of 8"):
        recipe.coarse_overrides("5mm", 30, crop_edge=60)
    wide = recipe.coarse_overrides("5mm-wide", 30)
    assert wide["coarse__network"]["channels"] == [32, 64, 128, 256] and wide["coarse__crop"] == (48, 48, 48) and wide["preprocessing__coarse_spacing"] == (5.0, 5.0, 5.0)


def test_the_coarse_prior_is_drawn_by_the_start_models_coarse_network():
    recipe = load_tool("train_release_model")
    assert recipe.prior_coarse("coarse", "dccseg-abdomen@0.4.4") == "dccseg-abdomen@0.4.4"
    assert recipe.prior_coarse("degraded", "dccseg-abdomen@0.4.4") is None and recipe.prior_coarse("realistic", None) is None
    with pytest.raises(DccsegError, match="needs --start MODEL"):
        recipe.prior_coarse("coarse", None)


def test_the_card_size_reference_is_the_mean_whole_organ_volume_of_the_validation_anatomies(tmp_path):
    import numpy as np

    from dccseg.dataset import Dataset
    from dccseg.organs import ORGAN_BY_KEY
    from dccseg.volume import Volume

    dataset = Dataset.new(tmp_path / "val", name="validation")
    for index, edge in enumerate((4, 6)):  # kidneys of 4 and 6 voxels of 10 mm: 64 and 216 ml
        labels = np.zeros((10, 10, 10), dtype=np.uint8)
        labels[2:2 + edge, 2:2 + edge, 2:2 + edge] = ORGAN_BY_KEY["kidney_left"].label
        labels[0:3, 0:1, 0:1] = ORGAN_BY_KEY["liver"].label  # touches the first slice: never whole
        grid = Volume(labels, (10.0, 10.0, 10.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()))
        dataset.add_volumes(f"case{index}", grid.with_array(np.zeros_like(labels, dtype=np.int16)), grid, "arterial", source="test")
    assert load_tool("train_release_model").size_reference_of(tmp_path / "val") == {"kidney_left": 140.0}


def test_a_release_of_a_new_coarse_net_keeps_the_shipped_refine_network_and_its_record(tmp_path, monkeypatch, capsys):
    import torch

    from dccseg.networks import CoarseConfig, build_coarse_net
    from dccseg.store import ModelStore, load_model
    from dccseg.training.export import save_part

    recipe = load_tool("train_release_model")
    shipped = ModelStore().resolve("dccseg-abdomen@0.4.6")
    training = shipped.card.training
    wide = {**shipped.card.architecture["coarse"], "channels": [32, 64, 128, 256]}
    info = {"part": "coarse", "architecture": wide, "preprocessing": shipped.card.preprocessing, "data": training["data"]["coarse"],
            "data_hash": "sha256:new", "epochs": 30, "best": {"metric": "val_dice_mean", "value": 0.7}}
    save_part(tmp_path / "coarse-run-5mm-wide" / "coarse", build_coarse_net(CoarseConfig.from_dict(wide)).state_dict(), info)
    save_part(tmp_path / "coarse-run-5mm" / "coarse", load_model("dccseg-abdomen@0.4.6", "cpu").coarse.state_dict(), {**info, "architecture": shipped.card.architecture["coarse"]})
    # without --coarse-run, combine joins the run that --stage coarse of the same variant trained, not the 5 mm one beside it
    monkeypatch.setattr(sys, "argv", ["train_release_model", str(tmp_path), "--stage", "combine", "--coarse-variant", "5mm-wide", "--keep-refine", "dccseg-abdomen@0.4.6",
                                      "--version", "9.9.9", "--fusion-trust", "0.3"])
    recipe.main()
    folder = capsys.readouterr().out.strip().splitlines()[-1]
    made = ModelStore().resolve(folder)
    assert made.card.architecture == {**shipped.card.architecture, "coarse": wide} and made.card.preprocessing["fusion_trust"] == 0.3
    assert made.card.training["stages"]["refine"] == training["stages"]["refine"] and made.card.training["data"]["refine"] == training["data"]["refine"]
    assert made.card.training["data_hash"] == f"coarse sha256:new; refine {training['data_hash'].split('; refine ')[1]}"
    refine, shipped_refine = load_model(folder, "cpu").refine.state_dict(), load_model("dccseg-abdomen@0.4.6", "cpu").refine.state_dict()
    assert all(torch.equal(value, shipped_refine[key]) for key, value in refine.items())


def test_combine_before_the_coarse_run_finished_says_which_stage_to_finish(tmp_path, monkeypatch, capsys):
    (tmp_path / "coarse-run-5mm-wide" / "coarse").mkdir(parents=True)  # a run still training: checkpoints, no exported part
    monkeypatch.setattr(sys, "argv", ["train_release_model", str(tmp_path), "--stage", "combine", "--coarse-variant", "5mm-wide", "--keep-refine", "dccseg-abdomen@0.4.6"])
    with pytest.raises(SystemExit):
        load_tool("train_release_model").main()
    error = capsys.readouterr().err
    assert "coarse-run-5mm-wide/coarse holds no trained coarse network" in error and "finish --stage coarse --coarse-variant 5mm-wide" in error
