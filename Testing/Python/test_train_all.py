"""``train_all``: coarse -> refine -> evaluation -> a new model version in the store; ``export_model``; presets."""

from __future__ import annotations

import json

import pytest

from dccseg.errors import DccsegError
from dccseg.store import ModelCard, ModelStore
from dccseg.training.configs import PRESETS, preset
from dccseg.training.export import export_model
from dccseg.training.pipeline import train_all
from dccseg.training.runstate import read_metrics, read_status
from train_fixtures import phantom_dataset

QUICK = {"coarse__epochs": 2, "refine__epochs": 1}


def test_train_all_registers_an_evaluated_model_and_resume_does_not_register_twice(tmp_path):
    dataset = phantom_dataset(tmp_path / "data", cases=3)
    store = ModelStore(tmp_path / "store", builtin_root=tmp_path / "none")
    run = tmp_path / "run"
    assert train_all(dataset, run, name="phantom-model", config="tiny", overrides=QUICK, device="cpu", store=store) == "finished"

    status = read_status(run)
    assert status["state"] == "finished" and status["model_ref"] == "phantom-model@0.1.0"
    assert [(r["stage"], r["epoch"]) for r in read_metrics(run)] == [("coarse", 1), ("coarse", 2), ("refine", 1)]
    entry = store.resolve("phantom-model")
    card = entry.card
    assert card.training["data"]["cases"] == 3 and card.training["data_hash"].startswith("sha256:")
    assert card.training["pretraining"] is None and card.training["preset"] == "tiny"
    assert 0.0 <= card.metrics["dice_mean"] <= 1.0 and "liver" in card.metrics["dice"]
    assert card.metrics["evaluated_on"].startswith("1 validation case")

    assert train_all(dataset, run, name="phantom-model", config="tiny", overrides=QUICK, device="cpu", store=store, resume=True) == "finished"
    assert [e.ref for e in store.list()] == ["phantom-model@0.1.0"]

    exported = export_model(run, "phantom-copy", "2.0.0", store=store)
    assert exported.ref == "phantom-copy@2.0.0" and exported.card.metrics == card.metrics


def test_unknown_pretraining_loss_is_a_user_error(tmp_path):
    with pytest.raises(DccsegError, match="unknown pretraining loss"):
        train_all(tmp_path, tmp_path / "run", loss="triplet")


@pytest.mark.parametrize("name", PRESETS)
def test_presets_fill_a_valid_model_card(name):
    config = preset(name)
    json.dumps(config.to_dict())
    assert config.refine.network.patch_size == config.preprocessing.patch_size
    assert all(c % config.coarse.network.size_divisor == 0 for c in config.coarse.crop)
    ModelCard(name="x", version="1.0.0", preprocessing=config.preprocessing.to_card(),
              architecture={"coarse": config.coarse.network.to_dict(), "refine": config.refine.network.to_dict()},
              training={"data": {}, "data_hash": ""})


def test_train_all_with_dcc_pretraining_runs_every_stage(tmp_path):
    dataset = phantom_dataset(tmp_path / "data", cases=3)
    store = ModelStore(tmp_path / "store", builtin_root=tmp_path / "none")
    run = tmp_path / "run"
    overrides = {**QUICK, "pretrain__epochs": 1}
    assert train_all(dataset, run, name="dcc-model", loss="dcc", config="tiny", overrides=overrides, device="cpu", store=store) == "finished"
    stages = [r["stage"] for r in read_metrics(run)]
    assert stages.index("coarse") < stages.index("pretrain") < stages.index("refine")
    card = store.resolve("dcc-model").card
    assert card.training["pretraining"] == "dcc" and 0.0 <= card.metrics["dice_mean"] <= 1.0
    assert (run / "pretrain" / "encoder.safetensors").is_file()
