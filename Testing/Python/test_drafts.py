"""Drafts: the model's segmentation of an unlabelled case, to correct; never a label, never trained on, never lost."""

import json

import numpy as np
import pytest
from builders import make_ct, make_labels
from tiny_models import register_tiny_model

import dccseg.io as io
from dccseg.cli import main
from dccseg.dataset import DATASET_FILE, Dataset
from dccseg.dataset_validate import validate_dataset
from dccseg.errors import DccsegError
from dccseg.organs import ORGANS
from dccseg.phantoms.procedural import procedural_phantom
from dccseg.store import dataset_hash
from dccseg.training.cases import labelled_cases, split_cases


def _dataset(root):
    """Two labelled cases and one unlabelled one."""
    ct = make_ct()
    dataset = Dataset.create(root)
    for case_id in ("a", "b"):
        dataset.add_volumes(case_id, ct, make_labels(ct), "arterial")
    dataset.add_volumes("u", ct, None, "arterial")
    return dataset, ct


def test_a_dataset_json_without_drafts_loads_and_gains_a_null_draft_when_saved(tmp_path):
    dataset, _ = _dataset(tmp_path / "ds")
    path = dataset.root / DATASET_FILE
    document = json.loads(path.read_text(encoding="utf-8"))
    for record in document["cases"]:
        del record["draft"]  # as written before drafts existed
    path.write_text(json.dumps(document), encoding="utf-8")
    loaded = Dataset.load(dataset.root)
    assert [c.draft for c in loaded.cases] == [None, None, None] and loaded.case("a").label is not None
    loaded.save()
    assert [r["draft"] for r in json.loads(path.read_text(encoding="utf-8"))["cases"]] == [None, None, None]
    assert validate_dataset(dataset.root).ok


def test_a_draft_is_stored_for_unlabelled_cases_only_and_training_never_sees_it(tmp_path):
    dataset, ct = _dataset(tmp_path / "ds")
    hash_before = dataset_hash(dataset)
    case = dataset.set_draft("u", make_labels(ct, ids=(6,)), ORGANS, "tiny@1.0.0")
    assert case.draft.file == dataset.root / "drafts" / "u.seg.nrrd" and case.label is None
    assert np.unique(io.read_labelmap(case.draft.file, reference=ct).array).tolist() == [0, 6]
    reloaded = Dataset.load(dataset.root)
    assert reloaded.case("u").draft.model == "tiny@1.0.0" and reloaded.case("u").label is None
    assert [c.id for c in labelled_cases(reloaded)] == ["a", "b"]
    assert set(sum(split_cases(labelled_cases(reloaded), 0.5, 0), [])) == {"a", "b"}
    assert dataset_hash(reloaded) == hash_before, "a draft is not training data"

    with pytest.raises(DccsegError, match="already has a draft .* pass --replace"):
        reloaded.set_draft("u", make_labels(ct), ORGANS, "tiny@1.0.0")
    label_a = reloaded.case("a").label.read_bytes()
    with pytest.raises(DccsegError, match="already has a reviewed label"):
        reloaded.set_draft("a", make_labels(ct, ids=(3,)), ORGANS, "tiny@1.0.0")
    assert reloaded.case("a").label.read_bytes() == label_a and not (dataset.root / "drafts" / "a.seg.nrrd").exists()
    with pytest.raises(DccsegError, match="no case 'zz'.*dccseg dataset add"):
        reloaded.set_draft("zz", make_labels(ct), ORGANS, "tiny@1.0.0")
    reloaded.set_draft("u", make_labels(ct, ids=(1,)), ORGANS, "tiny@2.0.0", replace=True)
    assert np.unique(io.read_labelmap(dataset.root / "drafts" / "u.seg.nrrd").array).tolist() == [0, 1]

    (dataset.root / "drafts" / "u.seg.nrrd").unlink()
    assert any("draft 'drafts/u.seg.nrrd' is missing" in w for w in validate_dataset(dataset.root).warnings)


def test_adding_the_corrected_label_archives_the_draft_with_the_old_version(tmp_path, capsys):
    dataset, ct = _dataset(tmp_path / "ds")
    dataset.set_draft("u", make_labels(ct, ids=(6,)), ORGANS, "tiny@1.0.0")
    draft_bytes = (dataset.root / "drafts" / "u.seg.nrrd").read_bytes()
    io.write_image(ct, tmp_path / "ct.nrrd")
    io.write_labelmap(make_labels(ct, ids=(6, 1)), tmp_path / "corrected.nii.gz")
    assert main(["dataset", "add", str(dataset.root), "--id", "u", "--image", str(tmp_path / "ct.nrrd"), "--label", str(tmp_path / "corrected.nii.gz"),
                 "--phase", "arterial", "--replace", "--json", "--progress", "none"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["label"] == "labels/u.nii.gz" and record["draft"] is None
    archive = dataset.root / record["replaced"][0]
    assert (archive / "draft.seg.nrrd").read_bytes() == draft_bytes and not (dataset.root / "drafts" / "u.seg.nrrd").exists()
    assert json.loads((archive / "case.json").read_text(encoding="utf-8"))["draft"]["model"] == "tiny@1.0.0"
    assert [c.id for c in labelled_cases(Dataset.load(dataset.root))] == ["a", "b", "u"]


def test_cli_prefill_writes_drafts_on_the_image_grid_and_refuses_labelled_cases_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DCCSEG_MODEL_STORE", str(register_tiny_model(tmp_path / "store")))
    dataset = Dataset.create(tmp_path / "ds")
    ct, labels = procedural_phantom((20, 28, 32), seed=0)
    dataset.add_volumes("done", ct, labels, "portal-venous")
    dataset.add_volumes("todo", ct, None, "portal-venous")
    args = ["dataset", "prefill", str(dataset.root), "--model", "tiny-seg", "--device", "cpu", "--progress", "none"]
    assert main([*args, "todo", "done"]) == 2
    assert "already has a reviewed label" in capsys.readouterr().err and not (dataset.root / "drafts").exists()
    assert main([*args, "todo", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)[0]
    assert record["id"] == "todo" and record["label"] is None and record["draft"]["file"] == "drafts/todo.seg.nrrd"
    draft = io.read_labelmap(dataset.root / record["draft"]["file"], reference=io.read_image(dataset.root / record["image"]))
    assert draft.shape == ct.shape and set(np.unique(draft.array).tolist()) <= set(range(14))
    assert main([*args, "todo"]) == 2 and "pass --replace" in capsys.readouterr().err
    assert main([*args, "todo", "--replace"]) == 0 and "correct it and add it as the label" in capsys.readouterr().out
