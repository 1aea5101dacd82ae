"""``dccseg train release``: the GPU recipe runs end to end on a CPU at the tiny scale, where SimpleITK and
matplotlib cannot be imported (as on the GPU machine), within its budget, from training bodies only; its model
folder is a model that ``dccseg models import`` and ``dccseg segment --model`` accept."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dccseg.io import read_image, read_labelmap
from dccseg.io.nifti_direction import read_nifti_volume
from dccseg.phantoms.templates import BODY_SPLIT
from dccseg.preprocess import resample
from dccseg.training.configs import preset
from dccseg.training.release_data import CaseMaker, CaseRecipe, on_spacing
from train_fixtures import run_dccseg, single_thread_env

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "dccseg" / "data" / "totalseg_example"
BUDGET_MINUTES = 0.4
START_UP_S = 45.0  # interpreter and imports before the command's clock starts, and the workers' shutdown
BLOCKER = '''
import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("SimpleITK", "matplotlib"):
            raise ImportError(f"{name} is not installed on the GPU machine")
sys.meta_path.insert(0, _Blocked())
'''


def test_release_command_trains_within_budget_without_simpleitk_and_writes_a_usable_model(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")  # spawned workers load it too
    env = {**single_thread_env(), "PYTHONPATH": f"{blocker}{os.pathsep}{REPO}", "DCCSEG_MODEL_STORE": str(tmp_path / "store")}
    probe = subprocess.run([sys.executable, "-c", "import SimpleITK"], env=env, capture_output=True, text=True, encoding="utf-8")
    assert probe.returncode != 0 and "not installed on the GPU machine" in probe.stderr

    model = tmp_path / "model"
    command = [sys.executable, "-m", "dccseg", "train", "release", str(model), "--scale", "tiny", "--minutes", str(BUDGET_MINUTES),
               "--device", "cpu", "--workers", "1", "--name", "release-test", "--version", "0.0.1", "--progress", "none"]
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, encoding="utf-8", timeout=600)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    assert elapsed < BUDGET_MINUTES * 60 + START_UP_S, f"{elapsed:.0f} s for a {BUDGET_MINUTES} min budget"

    card = json.loads((model / "model.json").read_text(encoding="utf-8"))
    training = card["training"]
    bodies = training["data"]["bodies"]["train"]
    assert bodies and set(bodies) <= set(BODY_SPLIT["train"]) and not set(bodies) & set(BODY_SPLIT["test"])
    assert training["seconds"] <= BUDGET_MINUTES * 60 + 10 and training["recipe"].startswith("dccseg train release")
    assert training["stages"]["coarse"]["steps"] > 0 and training["stages"]["refine"]["steps"] > 0
    assert card["preprocessing"]["coarse_spacing"] == [8.0, 8.0, 8.0] and card["preprocessing"]["refine_slice_thickness"] == 6.0
    assert card["architecture"]["refine"]["sharpen_channels"] == 2, "the recipe trains the full-resolution refine head, as 0.4.6 ships it"
    assert set(card["preprocessing"]["size_reference_ml"]) & {"liver", "spleen", "kidney_right", "kidney_left"}, "--body-scale auto works with a GPU-trained model"
    assert {p.name for p in model.iterdir()} == {"model.json", "coarse.safetensors", "refine.safetensors"}
    assert all(p.stat().st_size < 16 * 2**20 for p in model.iterdir())

    store = tmp_path / "store"
    store_env = {**single_thread_env(), "DCCSEG_MODEL_STORE": str(store)}
    imported = subprocess.run([sys.executable, "-m", "dccseg", "models", "import", str(model)], env=store_env, capture_output=True, text=True, encoding="utf-8")
    assert imported.returncode == 0, imported.stderr[-2000:]
    run_dccseg("segment", str(EXAMPLE / "example_ct.nii.gz"), str(tmp_path / "labels.nii.gz"), "--model", str(model), "--device", "cpu",
               "--progress", "none")
    assert read_labelmap(tmp_path / "labels.nii.gz").shape == read_image(EXAMPLE / "example_ct.nii.gz").shape


def test_real_ct_reaches_the_working_grid_without_simpleitk_as_inference_puts_it_there():
    """nibabel + scipy (release workers) against SimpleITK (inference): same geometry, same grid, the same HU."""
    through_nibabel = read_nifti_volume(EXAMPLE / "example_ct.nii.gz")
    through_itk = read_image(EXAMPLE / "example_ct.nii.gz")
    assert through_nibabel.same_grid(through_itk) and np.array_equal(through_nibabel.array, through_itk.array)
    ours, theirs = on_spacing(through_nibabel, (3.5, 3.5, 3.5), is_label=False), resample(through_itk, (3.5, 3.5, 3.5), is_label=False)
    assert ours.same_grid(theirs)
    inside = tuple(slice(0, n - 1) for n in ours.shape)  # the last voxel may fall outside ITK's buffer
    assert np.abs(ours.array[inside] - theirs.array[inside]).max() < 1.0


def test_release_cases_carry_pathology_in_the_share_the_recipe_asks_for():
    def cases(share):
        recipe = CaseRecipe(preset("default").preprocessing, BODY_SPLIT["train"], template_step=4, real_fraction=0.0, pathology=share)
        maker = CaseMaker(recipe)
        return [maker.make("coarse", BODY_SPLIT["train"], (11, i), f"case-{i}") for i in range(3)]

    with_findings, without = cases(1.0), cases(0.0)
    assert all(c.pathology for c in with_findings) and not any(c.pathology for c in without)
    assert any(not np.array_equal(a.labels, b.labels) for a, b in zip(with_findings, without))  # same anatomies, findings change the organs
