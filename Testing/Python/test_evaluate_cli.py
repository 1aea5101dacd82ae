"""`dccseg evaluate` (files, folders, dataset + model, compare) and `dccseg models` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dccseg import cli
from dccseg.dataset import Dataset
from dccseg.io import write_image, write_labelmap
from dccseg.phantoms.procedural import procedural_phantom
from dccseg.store import ModelStore
from dccseg.volume import Volume

from test_store import make_card, make_weights

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@pytest.fixture
def dccseg(monkeypatch, capsys, tmp_path: Path):
    """Run the CLI in-process with only this area's commands and an empty user store; returns (rc, stdout, stderr)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("models", "evaluate"))
    monkeypatch.setenv("DCCSEG_MODEL_STORE", str(tmp_path / "store"))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def labels(liver_x_end: int) -> Volume:
    array = np.zeros((10, 16, 16), np.uint8)
    array[2:6, 2:8, 2:liver_x_end] = 6
    return Volume(array, (0.8, 0.8, 2.0), (0.0, 0.0, 0.0), IDENTITY)


def test_evaluate_files_folders_and_compare(dccseg, tmp_path: Path) -> None:
    for folder, ends in (("ref", {"c1": 8, "c2": 8}), ("pred_a", {"c1": 5, "c2": 8}), ("pred_b", {"c1": 8, "c2": 8})):
        (tmp_path / folder).mkdir()
        for case, end in ends.items():
            write_labelmap(labels(end), tmp_path / folder / f"{case}.nii.gz")
    code, out, _ = dccseg("evaluate", str(tmp_path / "pred_a/c1.nii.gz"), str(tmp_path / "ref/c1.nii.gz"), "--organs", "liver", "--json")
    assert code == 0
    assert json.loads(out)["cases"][0]["organs"]["liver"]["dice"] == pytest.approx(2 / 3)

    for name in ("a", "b"):
        code, out, _ = dccseg("evaluate", str(tmp_path / f"pred_{name}"), str(tmp_path / "ref"), "--phase", "arterial", "--json-out", str(tmp_path / f"{name}.json"))
        assert code == 0 and "Dice, mean over organs per case then over cases" in out
    document = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    assert [c["case"] for c in document["cases"]] == ["c1", "c2"]
    assert document["summary"]["per_organ"]["liver"]["dice_mean"] == pytest.approx((2 / 3 + 1) / 2)
    assert list(document["summary"]["per_phase"]) == ["arterial"]
    assert document["cases"][0]["organs"]["spleen"]["dice"] is None  # absent in both: undefined, not 0

    code, out, _ = dccseg("evaluate", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json")
    comparison = json.loads(out)
    assert code == 0 and comparison["n"] == 2 and comparison["cases"] == ["c1", "c2"]
    assert comparison["median_difference"] == pytest.approx(-1 / 6) and "no power" in comparison["note"]

    (tmp_path / "pred_a/c2.nii.gz").unlink()
    code, _, err = dccseg("evaluate", str(tmp_path / "pred_a"), str(tmp_path / "ref"))
    assert code == 2 and "no prediction" in err and "c2" in err and "Traceback" not in err


def test_evaluate_dataset_with_a_stored_model(dccseg, tmp_path: Path) -> None:
    dataset = Dataset.create(tmp_path / "data", "tiny")
    for index, phase in enumerate(("arterial", "portal-venous")):
        ct, organ_labels = procedural_phantom((24, 32, 32), phase=phase, seed=index)
        write_image(ct, tmp_path / f"ct{index}.nii.gz")
        write_labelmap(organ_labels, tmp_path / f"lab{index}.nii.gz")
        dataset.add_case(tmp_path / f"ct{index}.nii.gz", tmp_path / f"lab{index}.nii.gz", phase, case_id=f"case{index}")
    dataset.save()
    card = make_card(version="9.0.0")  # newer than the built-in model, so it is the default
    card.preprocessing.update(coarse_spacing=[12.0, 12.0, 12.0], refine_spacing=[6.0, 6.0], patches_per_slice=2)
    ModelStore().register(card, make_weights())
    code, out, err = dccseg(
        "evaluate", "--dataset", str(tmp_path / "data"), "--device", "cpu", "--organs", "liver,spleen",
        "--save-predictions", str(tmp_path / "pred"), "--json",
    )
    assert code == 0, err
    document = json.loads(out)
    assert document["model"] == "dccseg-abdomen@9.0.0"
    assert sorted(document["summary"]["per_phase"]) == ["arterial", "portal-venous"]
    assert set(document["cases"][0]["organs"]) == {"liver", "spleen"}
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["case0.nii.gz", "case1.nii.gz"]


def test_models_cli(dccseg, tmp_path: Path) -> None:
    store = ModelStore()
    preprocessing = {**make_card().preprocessing, "coarse_scales": [0.8, 1]}
    store.register(make_card(version="1.0.0", preprocessing=preprocessing), make_weights())
    code, out, _ = dccseg("models", "list", "--json")
    entries = [e for e in json.loads(out) if not e["builtin"]]
    assert code == 0 and len(entries) == 1
    entry = entries[0]
    assert set(entry) == {"ref", "name", "version", "path", "builtin", "created", "description", "metrics", "card"}
    assert entry["ref"] == "dccseg-abdomen@1.0.0" and entry["metrics"] == {"dice_mean": 0.5}
    assert entry["card"]["architecture"]["refine"]["width"] == 4 and Path(entry["path"]).is_dir()

    code, out, _ = dccseg("models", "list")
    assert code == 0 and "dccseg-abdomen  1.0.0" in out and "0.500" in out and "user" in out
    code, out, _ = dccseg("models", "show", "dccseg-abdomen@1.0.0")
    assert code == 0 and "organs:" in out and "spleen" in out and "read at scales 0.8, 1 (probabilities averaged)" in out
    code, _, err = dccseg("models", "show", "nope")
    assert code == 2 and "run `dccseg models list`" in err

    code, _, _ = dccseg("models", "export", "dccseg-abdomen", str(tmp_path / "m.zip"))
    assert code == 0 and (tmp_path / "m.zip").is_file()
    code, _, err = dccseg("models", "import", str(tmp_path / "m.zip"))
    assert code == 2 and "never overwritten" in err
    code, _, err = dccseg("models", "remove", "dccseg-abdomen@1.0.0")
    assert code == 2 and "--yes" in err
    code, _, _ = dccseg("models", "remove", "dccseg-abdomen@1.0.0", "--yes")
    assert code == 0 and not any(e.builtin is False for e in store.list())
    code, out, _ = dccseg("models", "import", str(tmp_path / "m.zip"))
    assert code == 0 and store.resolve("dccseg-abdomen@1.0.0").path.is_dir()
