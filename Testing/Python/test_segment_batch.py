"""Planning ``dccseg segment`` jobs: single files, folders of CTs, datasets, torchrun shares."""

from pathlib import Path

import numpy as np
import pytest

from dccseg.dataset import Dataset
from dccseg.errors import DccsegError
from dccseg.inference.batch import Job, Rank, is_batch, plan_jobs
from dccseg.volume import Volume


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_single_file_into_a_file_or_an_existing_folder(tmp_path):
    ct = _touch(tmp_path / "in" / "case7.nii.gz")
    assert plan_jobs(ct, tmp_path / "new" / "x.nii.gz") == [Job("case7", ct, tmp_path / "new" / "x.nii.gz")]
    folder = tmp_path / "outdir"
    folder.mkdir()
    assert plan_jobs(ct, folder)[0].output == folder / "case7.seg.nrrd"
    with pytest.raises(DccsegError, match="one of"):
        plan_jobs(ct, tmp_path / "out.txt")


def test_folder_of_cts_skips_existing_outputs_unless_overwrite(tmp_path):
    for name in ("b.nrrd", "a.nii.gz", ".hidden.nii.gz", "notes.txt"):
        _touch(tmp_path / "cts" / name)
    out = tmp_path / "out"
    jobs = plan_jobs(tmp_path / "cts", out, ".nii.gz")
    assert [(j.case_id, j.output.name) for j in jobs] == [("a", "a.nii.gz"), ("b", "b.nii.gz")]
    _touch(out / "a.nii.gz")
    assert [j.case_id for j in plan_jobs(tmp_path / "cts", out, ".nii.gz")] == ["b"]
    assert [j.case_id for j in plan_jobs(tmp_path / "cts", out, ".nii.gz", overwrite=True)] == ["a", "b"]
    assert is_batch(tmp_path / "cts") and not is_batch(tmp_path / "cts" / "a.nii.gz")
    with pytest.raises(DccsegError, match="must be a folder"):
        plan_jobs(tmp_path / "cts", _touch(tmp_path / "file.seg.nrrd"))


def test_dataset_folder_uses_case_ids(tmp_path):
    dataset = Dataset.create(tmp_path / "ds", "demo")
    image = Volume(np.full((3, 4, 5), -1000.0, dtype=np.float32) + np.arange(5, dtype=np.float32) * 300, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), tuple(np.eye(3).reshape(-1)))
    dataset.add_volumes("liver_01", image, None, "portal-venous")
    jobs = plan_jobs(tmp_path / "ds", tmp_path / "out")
    assert [(j.case_id, j.output.name) for j in jobs] == [("liver_01", "liver_01.seg.nrrd")]
    assert jobs[0].source.is_file()


def test_a_folder_without_ct_files_is_a_dicom_series(tmp_path):
    _touch(tmp_path / "dicom" / "IM0001")
    assert not is_batch(tmp_path / "dicom")
    assert plan_jobs(tmp_path / "dicom", tmp_path / "seg.seg.nrrd")[0].case_id == "dicom"


def test_torchrun_ranks_split_cases_by_index(monkeypatch):
    jobs = [Job(str(i), Path(f"{i}.nii.gz"), Path(f"{i}.seg.nrrd")) for i in range(5)]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    rank = Rank.from_env()
    assert [j.case_id for j in rank.share(jobs)] == ["1", "3"]
    assert rank.device("cpu") == "cpu"
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert Rank.from_env().share(jobs) == jobs and Rank.from_env().device("auto") == "auto"
