"""DCCTrainLib outside Slicer: run-state polling, detached training runs, datasets through the engine."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "DCCSegment"), str(ROOT / "DCCTrain")]

from DCCSegmentLib.engine import Engine, EngineError  # noqa: E402
from DCCSegmentLib.process import pid_alive  # noqa: E402
from DCCTrainLib.dataset_client import CaseExists, NewCase, add_case, case_rows, guess_phase, suggest_case_id, validate  # noqa: E402
from DCCTrainLib.run_state import MetricsReader, read_status, series  # noqa: E402
from DCCTrainLib.runs import RunRecord, absolute_path, launch, list_runs, new_run_dir, stop  # noqa: E402
from DCCTrainLib.train_parameters import TrainParameters  # noqa: E402
from engine_stubs import fake_python  # noqa: E402



def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


# --- run state --------------------------------------------------------------------------------------

def test_read_status_skips_missing_and_half_written_files(tmp_path):
    assert read_status(tmp_path) is None
    (tmp_path / "status.json").write_text('{"state": "running", "stage": "coa', encoding="utf-8")
    assert read_status(tmp_path) is None
    (tmp_path / "status.json").write_text(json.dumps({
        "state": "running", "stage": "coarse", "epoch": 3, "epochs": 10, "fraction": 0.3, "message": "epoch 3", "pid": 42,
        "updated": "2026-01-01T00:00:00", "best": {"metric": "val_dice_mean", "value": 0.61, "epoch": 2}, "model_ref": None, "error": None}), encoding="utf-8")
    status = read_status(tmp_path)
    assert (status.state, status.epoch, status.epochs, status.pid, status.finished) == ("running", 3, 10, 42, False)
    assert status.line() == "running: coarse epoch 3/10, best val_dice_mean 0.610 (epoch 2) - epoch 3"


def test_metrics_reader_returns_only_completed_new_lines(tmp_path):
    reader = MetricsReader(tmp_path)
    assert reader.read_new() == []
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"stage": "coarse", "epoch": 1, "train_loss": 0.9, "val_dice_mean": 0.2}\n{"stage": "coarse", "epo', encoding="utf-8")
    assert [r["epoch"] for r in reader.read_new()] == [1]
    assert reader.read_new() == []
    with open(path, "a") as handle:
        handle.write('ch": 2, "train_loss": 0.5, "val_dice_mean": 0.4}\nnot json\n{"stage": "refine", "epoch": 1, "train_loss": 0.3}\n')
    assert [(r["stage"], r["epoch"]) for r in reader.read_new()] == [("coarse", 2), ("refine", 1)]
    assert series(reader.records, "train_loss") == [(1, 0.9), (2, 0.5), (3, 0.3)]
    assert series(reader.records, "val_dice_mean") == [(1, 0.2), (2, 0.4)]


# --- training parameters and detached runs -----------------------------------------------------------

def test_train_parameters_build_the_command_line(tmp_path):
    params = TrainParameters(tmp_path, stage="all", loss="agcl", epochs=2, device="cpu", config="tiny", name="mine")
    assert params.arguments(tmp_path / "run") == ["train", "all", tmp_path, "--output", tmp_path / "run", "--device", "cpu", "--config", "tiny",
                                                  "--epochs", "2", "--loss", "agcl", "--name", "mine", "--progress", "json"]
    coarse = TrainParameters(tmp_path, stage="coarse")
    assert "--loss" not in coarse.arguments(tmp_path) and coarse.arguments(tmp_path, resume=True)[-3] == "--resume"
    assert TrainParameters.from_dict(params.to_dict()) == params
    for bad in ({"stage": "x"}, {"loss": "x"}, {"epochs": 0}, {"stage": "pretrain", "loss": "none"}, {"device": "gpu"}):
        with pytest.raises(ValueError):
            TrainParameters(tmp_path, **bad)


FAKE_TRAINER = '''
import json, os, signal, sys, time
args = sys.argv[3:]
run = args[args.index("--output") + 1]
epochs = int(args[args.index("--epochs") + 1])
start = 0
if "--resume" in args and os.path.exists(os.path.join(run, "metrics.jsonl")):
    start = len(open(os.path.join(run, "metrics.jsonl")).read().splitlines())
def status(state, epoch):
    tmp = os.path.join(run, ".status.tmp")
    json.dump({"state": state, "stage": args[1], "epoch": epoch, "epochs": epochs, "fraction": epoch / epochs, "message": "",
               "pid": os.getpid(), "updated": "", "best": None, "model_ref": None, "error": None}, open(tmp, "w"))
    os.replace(tmp, os.path.join(run, "status.json"))
stopped = []
signal.signal(signal.SIGTERM, lambda *a: stopped.append(1))
print("training", args, flush=True)
for epoch in range(start + 1, epochs + 1):
    status("running", epoch - 1)
    deadline = time.time() + float(os.environ.get("FAKE_EPOCH_SECONDS", "0.05"))
    while time.time() < deadline and not stopped:
        time.sleep(0.01)
    if stopped:
        status("stopped", epoch - 1)
        sys.exit(0)
    with open(os.path.join(run, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"stage": args[1], "epoch": epoch, "train_loss": 1.0 / epoch, "val_dice_mean": 0.1 * epoch}) + "\\n")
status("finished", epochs)
'''


def test_detached_run_logs_follows_stops_and_resumes(tmp_path):
    dataset = tmp_path / "data"
    dataset.mkdir()
    engine = Engine(fake_python(tmp_path / "fake-python", FAKE_TRAINER), dict(os.environ, FAKE_EPOCH_SECONDS="30"))
    params = TrainParameters(dataset, stage="coarse", epochs=3, device="cpu", config="tiny")
    run_dir = new_run_dir(dataset)
    assert run_dir.parent == dataset / "runs" and new_run_dir(dataset) != run_dir
    record, proc = launch(engine, params, run_dir)
    assert os.getsid(record.pid) == record.pid, "the run must lead its own session to survive Slicer"
    wait_for(lambda: (s := read_status(run_dir)) is not None and s.state == "running")
    assert record.is_alive() and list_runs(dataset)[-1] == record and RunRecord.load(run_dir) == record
    with pytest.raises(RuntimeError):
        launch(engine, params, run_dir, resume=True)
    stop(record, grace_seconds=10)
    proc.wait(timeout=10)
    assert read_status(run_dir).state == "stopped" and not pid_alive(record.pid)
    assert "training" in (run_dir / "train.log").read_text(encoding="utf-8")

    quick = Engine(engine.python, dict(os.environ, FAKE_EPOCH_SECONDS="0.01"))
    resumed, proc = launch(quick, params, run_dir, resume=True)
    proc.wait(timeout=20)
    assert resumed.resumed == 1 and read_status(run_dir).state == "finished"
    log = (run_dir / "train.log").read_text(encoding="utf-8")
    commands = [line for line in log.splitlines() if line.startswith("$ ")]
    assert len(commands) == 2 and "--resume" not in commands[0] and commands[1].split()[-3] == "--resume"
    assert [r["epoch"] for r in MetricsReader(run_dir).read_new()] == [1, 2, 3]


LAUNCHER = """
import subprocess, sys
# Stands in for PythonSlicer (CTK AppLauncher): the real interpreter runs as a child with forwarded channels;
# the launcher has no SIGTERM handler and exits with the child's status.
child = subprocess.Popen([sys.executable, sys.argv[0] + ".trainer", *sys.argv[1:]])
sys.exit(child.wait())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_stop_resume_and_liveness_follow_the_trainer_behind_slicers_launcher(tmp_path):
    import signal

    dataset = tmp_path / "data"
    dataset.mkdir()
    launcher = fake_python(tmp_path / "PythonSlicer", LAUNCHER)
    Path(launcher + ".trainer").write_text(FAKE_TRAINER, encoding="utf-8")
    engine = Engine(launcher, dict(os.environ, FAKE_EPOCH_SECONDS="30"))
    params = TrainParameters(dataset, stage="coarse", epochs=3, device="cpu", config="tiny")
    record, proc = launch(engine, params, new_run_dir(dataset))
    wait_for(lambda: record.engine_pid() is not None)
    trainer = record.engine_pid()
    assert trainer != record.pid, "status.json holds the trainer's pid, not the launcher's"

    stop(record, grace_seconds=10)
    assert proc.wait(timeout=10) == 0, "Stop must reach the trainer, not kill the launcher (which would exit -15 at once)"
    assert read_status(record.run_dir).state == "stopped" and not record.is_alive()

    resumed, proc = launch(engine, params, record.run_dir, resume=True)
    wait_for(lambda: resumed.engine_pid() not in (None, trainer))
    os.kill(resumed.pid, signal.SIGKILL)  # the launcher alone is gone; its trainer still runs
    proc.wait(timeout=10)
    assert resumed.is_alive(), "a run whose trainer still runs is alive"
    with pytest.raises(RuntimeError, match="still going"):
        launch(engine, params, record.run_dir, resume=True)
    stop(resumed, grace_seconds=10)
    wait_for(lambda: not resumed.is_alive())
    assert read_status(record.run_dir).state == "stopped"


def test_relative_dataset_paths_are_resolved_before_the_trainer_starts_in_its_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("data").mkdir()
    engine = Engine(fake_python(tmp_path / "fake-python", FAKE_TRAINER), dict(os.environ, FAKE_EPOCH_SECONDS="0.01"))
    record, proc = launch(engine, TrainParameters(Path("data"), stage="coarse", epochs=1, config="tiny"), new_run_dir(Path("data")))
    assert proc.wait(timeout=20) == 0
    assert record.run_dir.is_absolute() and record.parameters.dataset == tmp_path / "data"
    assert read_status(record.run_dir).state == "finished"
    command = [line for line in record.log_path.read_text(encoding="utf-8").splitlines() if line.startswith("$ ")][0]
    assert f" train coarse {tmp_path / 'data'} --output {record.run_dir} " in command
    assert absolute_path("~") == Path.home()


# --- datasets ------------------------------------------------------------------------------------------

def test_suggest_case_id_makes_a_valid_id():
    assert suggest_case_id("CT abdomen (2) / arterial") == "CT_abdomen_2_arterial"
    assert suggest_case_id("...") == "case"


def test_case_rows_combine_dataset_json_and_the_validation_report(tmp_path):
    (tmp_path / "dataset.json").write_text(json.dumps({"cases": [
        {"id": "a", "image": "images/a.nii.gz", "label": "labels/a.nii.gz", "phase": "arterial", "reviewer": "jo", "added": "2026-01-01"},
        {"id": "b", "image": "images/b.nii.gz", "label": "labels/b.nii.gz", "phase": "delayed", "reviewer": "", "added": ""},
        {"id": "c", "image": "images/c.nii.gz", "label": None, "phase": "unknown"}]}), encoding="utf-8")
    report = {"ok": False, "problems": ["case 'b': label grid differs from the image grid; re-export the label"], "warnings": ["case 'a': organ 4 missing"]}
    rows = case_rows(tmp_path, report)
    assert [(r.id, r.phase, r.reviewer, r.status) for r in rows] == [
        ("a", "arterial", "jo", "ok (organ 4 missing)"),
        ("b", "delayed", "", "label grid differs from the image grid; re-export the label"),
        ("c", "unknown", "", "ok (no label)")]
    assert [r.status for r in case_rows(tmp_path, None)] == ["not checked"] * 3
    after_add = case_rows(tmp_path, report, checked_ids={"a", "b"})
    assert [r.status for r in after_add][1:] == ["label grid differs from the image grid; re-export the label", "not checked"], \
        "a case added after the last check is not reported as ok"


def test_a_broken_dataset_json_is_a_message_not_a_traceback(tmp_path):
    (tmp_path / "dataset.json").write_text('{"cases": [', encoding="utf-8")
    with pytest.raises(ValueError, match="dataset.json is not valid JSON .*; fix it or choose another dataset folder"):
        case_rows(tmp_path, None)


def test_add_case_never_overwrites_without_replace(tmp_path):
    dataset = tmp_path / "data"
    dataset.mkdir()
    (dataset / "dataset.json").write_text(json.dumps({"cases": [{"id": "p1", "image": "i", "phase": "arterial"}]}), encoding="utf-8")
    body = ("import json, sys\nargs = sys.argv[3:]\nopen(sys.argv[0] + '.args', 'w').write(json.dumps(args))\n"
            "if '--replace' not in args:\n    print(\"dccseg: error: case 'p1' already exists in x; pass --replace\", file=sys.stderr); sys.exit(2)\n"
            "print(json.dumps({'id': 'p1', 'replaced': ['replaced/p1/1']}))\n")
    python = fake_python(tmp_path / "fake-python", body)
    case = NewCase(dataset, "p1", tmp_path / "i.nrrd", tmp_path / "l.nrrd", "arterial", reviewer="jo")
    with pytest.raises(CaseExists):
        add_case(Engine(python), case)
    assert not Path(python + ".args").exists(), "an existing id is refused before the engine runs"
    with pytest.raises(CaseExists):
        add_case(Engine(python), NewCase(tmp_path / "other", "p1", case.image, case.label, "arterial"))
    assert add_case(Engine(python), case, replace=True)["replaced"] == ["replaced/p1/1"]
    args = json.loads(Path(python + ".args").read_text(encoding="utf-8"))
    assert args[:2] == ["dataset", "add"] and args[-2:] == ["--replace", "--json"]
    assert args[args.index("--reviewer") + 1] == "jo" and args[args.index("--id") + 1] == "p1"


def test_guess_phase_parses_the_engine_answer_or_gives_none(tmp_path):
    good = fake_python(tmp_path / "good", "import json\nprint(json.dumps({'phase': 'arterial', 'confidence': 0.8, 'evidence': 'aorta 250 HU'}))\n")
    guess = guess_phase(Engine(good), tmp_path / "i.nrrd", tmp_path / "l.nrrd")
    assert (guess.phase, guess.confidence, guess.evidence) == ("arterial", 0.8, "aorta 250 HU")
    detailed = fake_python(tmp_path / "dict", "import json\nprint(json.dumps({'phase': 'delayed', 'confidence': 0.5, 'evidence': {'means': {'aorta': 151.234}, 'rule': 'x'}}))\n")
    assert guess_phase(Engine(detailed), tmp_path / "i.nrrd", None).evidence == "means (aorta 151), rule x"
    bad = fake_python(tmp_path / "bad", "import sys\nsys.exit(2)\n")
    assert guess_phase(Engine(bad), tmp_path / "i.nrrd", None) is None


@functools.cache
def engine_cli_builds() -> bool:
    try:
        from dccseg.cli import build_parser

        build_parser()
    except ImportError:
        return False
    return importlib.util.find_spec("dccseg.commands.dataset") is not None


def write_tiny_case(folder: Path) -> tuple[Path, Path]:
    import SimpleITK as sitk

    ct = np.full((12, 24, 24), -1000, dtype=np.int16)
    ct[:, 4:20, 4:20] = 40
    ct[:, 10:14, 10:14] = 700
    labels = np.zeros(ct.shape, dtype=np.uint8)
    labels[3:9, 5:10, 5:10] = 6
    labels[3:9, 14:18, 14:18] = 1
    paths = folder / "image.nrrd", folder / "label.nrrd"
    for array, path in zip((ct, labels), paths):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((2.0, 2.0, 3.0))
        sitk.WriteImage(image, str(path))
    return paths


@pytest.mark.skipif(not engine_cli_builds(), reason="engine CLI does not build yet (commands still landing)")
def test_add_case_through_the_real_engine_keeps_replaced_versions(tmp_path):
    engine = Engine(sys.executable)
    image, label = write_tiny_case(tmp_path)
    dataset = tmp_path / "data"
    case = NewCase(dataset, suggest_case_id("Phantom 1"), image, label, "portal-venous", reviewer="tester")
    record = add_case(engine, case)
    assert record["id"] == "Phantom_1" and record["reviewer"] == "tester"
    with pytest.raises(CaseExists):
        add_case(engine, case)
    record = add_case(engine, case, replace=True)
    assert record["replaced"], "the replaced version must be kept"
    assert any((dataset / "replaced" / "Phantom_1").rglob("image.*"))
    rows = case_rows(dataset, {"ok": True, "problems": [], "warnings": []})
    assert [(r.id, r.phase, r.reviewer, r.status) for r in rows] == [("Phantom_1", "portal-venous", "tester", "ok")]


def test_validate_refuses_a_folder_that_is_no_dataset(tmp_path):
    script = fake_python(tmp_path / "fake", "import sys\nprint('dccseg: error: x is not a dataset (no dataset.json)', file=sys.stderr)\nsys.exit(2)\n")
    with pytest.raises(EngineError, match="not a dataset"):
        validate(Engine(script), tmp_path)
