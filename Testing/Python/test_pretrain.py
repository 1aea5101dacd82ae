"""Contrastive pretraining: d on the fixed HU scale before any intensity change, the CLI stage, resume, and refine --encoder."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from dccseg.cli import main
from dccseg.dataset import Dataset
from dccseg.inference.settings import InferenceSettings
from dccseg.losses import build_pretrain_loss, mean_mask_intensity
from dccseg.networks import RefineConfig, build_encoder, build_refine_net
from dccseg.phantoms import procedural_phantom
from dccseg.preprocess import IntensityConfig, intensity_bounds
from dccseg.training.pipeline import train_refine
from dccseg.training.pretrain import PretrainObjective
from dccseg.training.pretrain_data import batch_views, gather_batch, patch_rows, pretrain_case
from dccseg.training.runstate import read_metrics, read_status
from dccseg.training.views import ViewConfig
from dccseg.volume import Volume

ORGAN_HU = 100.0
FIXED_D = (ORGAN_HU + 175.0) / 425.0 * 2 - 1


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks run fastest on one thread, and the test machine's cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def toy_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain") / "ds"
    dataset = Dataset.create(root, "toy")
    for index, phase in enumerate(("non-contrast", "arterial")):
        ct, labels = procedural_phantom((12, 32, 32), (6.0, 6.0, 6.0), phase, index)
        dataset.add_volumes(f"c{index}", ct, labels, phase)
    return root


@pytest.fixture(scope="module")
def pretrain_run(toy_dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("pretrain-run") / "run"
    args = ["train", "pretrain", str(toy_dataset), "--output", str(run), "--config", "tiny", "--loss", "dcc", "--device", "cpu",
            "--progress", "none", "--val-fraction", "0", "--batch-size", "8", "--seed", "7"]  # not refine's seed: another initialisation
    assert main(args) == 0
    return run, args


def flat_organ_case(d_scale: str):
    """An organ of constant 100 HU inside a 100 HU block, with a bright ramp elsewhere that moves the percentiles."""
    ct = np.full((6, 64, 64), ORGAN_HU, dtype=np.float32)
    ct[:, 48:, :] = np.linspace(-1000, 1000, 64, dtype=np.float32)[None, None, :]
    labels = np.zeros(ct.shape, dtype=np.uint8)
    labels[:, 16:30, 16:48] = 6
    volume = Volume(ct, (3.0, 3.0, 3.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    settings = InferenceSettings(IntensityConfig(mode="percentile"), (6.0, 6.0, 6.0), (3.0, 3.0), None, 32, 3)
    return pretrain_case("flat", "arterial", volume, volume.with_array(labels), settings, d_scale), settings


@pytest.mark.parametrize("d_scale", ["fixed", "percentile"])
def test_d_is_measured_before_intensity_changes_on_the_chosen_scale(d_scale):
    case, settings = flat_organ_case(d_scale)
    rows = patch_rows([case], 6, np.random.default_rng(0))
    batch = gather_batch([case], rows, 32)
    views = ViewConfig(size=32, intensity_jitter=0.5)
    inputs, targets = batch_views(batch, views, 2, torch.Generator().manual_seed(0), torch.device("cpu"))
    d, valid = mean_mask_intensity(targets.image, targets.mask)
    low, high = intensity_bounds(case_hu(), settings.intensity)
    expected = FIXED_D if d_scale == "fixed" else (ORGAN_HU - low) / (high - low) * 2 - 1
    assert valid.any()
    assert torch.allclose(d[valid], torch.full_like(d[valid], expected), atol=1e-5)
    network_d, _ = mean_mask_intensity(inputs[:, 0], inputs[:, 1])
    assert not torch.allclose(network_d[valid], d[valid], atol=1e-3)  # the jitter changed only the network input
    assert targets.organ.tolist() == [5] * 6 and targets.phase.tolist() == [1] * 6


def case_hu() -> np.ndarray:
    ct = np.full((6, 64, 64), ORGAN_HU, dtype=np.float32)
    ct[:, 48:, :] = np.linspace(-1000, 1000, 64, dtype=np.float32)[None, None, :]
    return ct


@pytest.mark.parametrize("loss, form", [("agcl", "paper"), ("ce", "paper"), ("dcc", "paper"), ("dcc", "code")])
def test_every_loss_trains_the_encoder(loss, form):
    case, _ = flat_organ_case("fixed")
    batch = gather_batch([case], patch_rows([case], 4, np.random.default_rng(1)), 32)
    inputs, targets = batch_views(batch, ViewConfig(size=32), 2, torch.Generator().manual_seed(1), torch.device("cpu"))
    encoder = build_encoder(RefineConfig.tiny())
    objective = PretrainObjective(encoder, build_pretrain_loss(loss, preset=form, feature_dim=encoder.out_channels[1]))
    value, _ = objective(inputs, targets)
    value.backward()
    assert torch.isfinite(value)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in encoder.parameters())


def test_pretrain_command_writes_encoder_card_and_metrics_and_resumes(pretrain_run):
    run, args = pretrain_run
    folder = run / "pretrain"
    state = load_file(str(folder / "encoder.safetensors"))
    assert set(state) == set(build_encoder(RefineConfig.tiny()).state_dict())
    card = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    assert (card["loss"], card["form"], card["temperature"], card["d_scale"], card["epochs"]) == ("dcc", "paper", 0.07, "fixed", 1)
    assert RefineConfig.from_dict(card["encoder"]) == RefineConfig.tiny()
    assert card["data_hash"].startswith("sha256:") and card["data"]["phases"] == ["arterial", "non-contrast"]
    records = read_metrics(run)
    assert [r["epoch"] for r in records] == [1] and 0.0 <= records[0]["empty_view_rate"] <= 1.0
    assert read_status(run)["state"] == "finished"

    assert main(args + ["--resume", "--epochs", "2"]) == 0
    assert [r["epoch"] for r in read_metrics(run)] == [1, 2]
    assert json.loads((folder / "encoder.json").read_text(encoding="utf-8"))["epochs"] == 2
    resumed = load_file(str(folder / "encoder.safetensors"))
    assert any(not torch.equal(resumed[k], state[k]) for k in state)


def test_refine_finetunes_from_the_pretrained_encoder(pretrain_run, toy_dataset, tmp_path):
    run, _ = pretrain_run
    pretrained = load_file(str(run / "pretrain" / "encoder.safetensors"))
    overrides = {"refine__epochs": 1, "refine__patches_per_organ": 2, "refine__phase_variants": 0, "val_fraction": 0.0}
    assert train_refine(toy_dataset, tmp_path / "refine", encoder=run, config="tiny", overrides=overrides, device="cpu") == "finished"
    tuned = load_file(str(tmp_path / "refine" / "refine" / "model.safetensors"))
    torch.manual_seed(0)
    scratch = build_refine_net(RefineConfig.tiny()).encoder.state_dict()
    key = "stem.0.weight" if "stem.0.weight" in pretrained else next(k for k, v in pretrained.items() if v.ndim == 4)
    start_gap = (pretrained[key] - scratch[key]).norm()
    assert start_gap > 0
    assert (tuned["encoder." + key] - pretrained[key]).norm() < 0.5 * (tuned["encoder." + key] - scratch[key]).norm()
