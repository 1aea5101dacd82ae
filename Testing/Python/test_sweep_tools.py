"""tools/coarse_scales_sweep.py and tools/fusion_trust_sweep.py: the rules they choose by, and --write, which puts the choice into a model folder's card."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from builders import load_tool
from dccseg.errors import DccsegError
from dccseg.store import ModelCard, ModelStore
from dccseg.training.export import set_preprocessing
from tiny_models import register_tiny_model
from train_fixtures import phantom_dataset, single_thread_env

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def tiny_folder(root: Path) -> Path:
    register_tiny_model(root)
    return ModelStore(root, builtin_root=root / "none").resolve("tiny-seg").path


def test_the_fusion_band_changes_only_for_a_clear_gain():
    choose = load_tool("fusion_trust_sweep").choose
    assert choose({None: 0.010, 0.3: 0.028, 0.1: 0.020}, 0.1) == 0.3, "the tenth rule: +0.008 over the card's band"
    assert choose({None: 0.010, 0.3: 0.024, 0.1: 0.020}, 0.1) == 0.1, "+0.004 is not enough"
    assert choose({None: 0.010, 0.3: 0.012}, None) is None and choose({None: -0.02, 0.3: 0.01}, None) == 0.3, "a plain majority vote is the baseline of a new card"


def test_the_fewest_scales_within_a_tie_win_and_one_scale_stays_without_a_clear_gain():
    choose = load_tool("coarse_scales_sweep").choose
    assert choose({(1.0,): 0.700, (0.9, 1.0): 0.709, (0.8, 0.9, 1.0): 0.710}) == (0.9, 1.0)
    assert choose({(1.0,): 0.700, (0.9, 1.0): 0.703}) == (1.0,)


def test_a_choice_is_written_into_the_card_and_nothing_else_changes(tmp_path):
    folder = tiny_folder(tmp_path / "store")
    weights = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.safetensors")}
    card = set_preprocessing(folder, coarse_scales=[0.9, 1.0], fusion_trust=0.3)
    assert card.preprocessing["coarse_scales"] == [0.9, 1.0] and ModelCard.read(folder / "model.json").preprocessing["fusion_trust"] == 0.3
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.safetensors")} == weights
    before = (folder / "model.json").read_bytes()
    with pytest.raises((DccsegError, ValueError)):
        set_preprocessing(folder, coarse_scales=[0.3])
    assert (folder / "model.json").read_bytes() == before, "a refused value leaves the card as it was"
    with pytest.raises(DccsegError, match="is no model folder"):
        set_preprocessing(tmp_path, fusion_trust=0.3)


@pytest.mark.parametrize("tool, options, key", [("fusion_trust_sweep", [], "fusion_trust"), ("coarse_scales_sweep", ["--sets", "1", "0.9,1"], "coarse_scales")])
def test_write_puts_the_sweeps_choice_into_a_model_folder(tmp_path, tool, options, key):
    folder = tiny_folder(tmp_path / "store")
    dataset = phantom_dataset(tmp_path / "validation", cases=1)
    refused = subprocess.run([sys.executable, str(TOOLS / f"{tool}.py"), "tiny-seg", str(dataset), "--write"], env=single_thread_env(), capture_output=True, text=True, encoding="utf-8")
    assert refused.returncode == 2 and "--write needs MODEL to be a model folder" in refused.stderr
    result = subprocess.run([sys.executable, str(TOOLS / f"{tool}.py"), str(folder), str(dataset), *options, "--write"],
                            env=single_thread_env(), capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    chosen = result.stdout.split("chosen: ")[1].splitlines()[0]
    written = ModelCard.read(folder / "model.json").preprocessing.get(key)
    if key == "fusion_trust":
        assert str(written) == chosen
    else:
        assert ",".join(f"{v:g}" for v in (written or [1.0])) == chosen
