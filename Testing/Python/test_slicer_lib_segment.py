"""DCCSegmentLib outside Slicer: progress parsing, the process runner, Segment jobs, failures, models, organs, install."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "DCCSegment"))

from DCCSegmentLib import install  # noqa: E402
from DCCSegmentLib.engine import CallPoller, Engine, EngineCall, EngineError, error_message, parse_json_output  # noqa: E402
from DCCSegmentLib.failures import explain_failure  # noqa: E402
from DCCSegmentLib.models import list_models, newest, parse_model_list  # noqa: E402
from DCCSegmentLib.organ_table import load_organ_table, map_segments, match_organ, organs_from_card  # noqa: E402
from DCCSegmentLib.parameters import SegmentParameters  # noqa: E402
from DCCSegmentLib.process import SubprocessRunner, pid_alive  # noqa: E402
from DCCSegmentLib.progress import LineSplitter, StagedProgress, parse_progress_line  # noqa: E402
from DCCSegmentLib.segment_job import SegmentJob  # noqa: E402
from engine_stubs import fake_python  # noqa: E402


def drain(runner, timeout: float = 20.0) -> tuple[list[str], int]:
    """Poll like the widget's timer does until the process has ended."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines += runner.read_lines()
        code = runner.poll()
        if code is not None:
            return lines + runner.read_lines(), code
        time.sleep(0.02)
    raise AssertionError("process did not end in time")


# --- progress parsing -------------------------------------------------------------------------

def test_parse_progress_line_reads_engine_records_and_ignores_garbage():
    event = parse_progress_line('{"stage": "coarse", "fraction": 0.5, "message": "window 4/8"}\n')
    assert (event.stage, event.fraction, event.message) == ("coarse", 0.5, "window 4/8")
    log = parse_progress_line('{"stage": "write", "fraction": null, "message": "timing", "timings": {"load": 1.5}}')
    assert log.fraction is None and log.extra == {"timings": {"load": 1.5}}
    assert parse_progress_line('{"stage": "error", "fraction": null, "message": "no GPU"}').is_error
    for garbage in ("", "plain text", '{"stage": "coarse", "fract', "[1, 2]", '{"fraction": 0.5}', '{"stage": 3}', "{not json}"):
        assert parse_progress_line(garbage) is None, garbage
    assert parse_progress_line('{"stage": "refine", "fraction": 7}').fraction == 1.0
    assert parse_progress_line('{"stage": "refine", "fraction": true}').fraction is None


def test_line_splitter_keeps_partial_lines_until_finished():
    splitter = LineSplitter()
    assert splitter.feed(b'{"stage": "lo') == []
    assert splitter.feed(b'ad", "fraction": 1}\r\nsecond\nthi') == ['{"stage": "load", "fraction": 1}', "second"]
    assert splitter.feed("rd \u00e9\n".encode()) == ["thi" + "rd \u00e9"]
    assert splitter.feed(b"tail without newline") == []
    assert splitter.flush() == ["tail without newline"]
    assert splitter.flush() == []


def test_staged_progress_is_monotonic_and_spans_all_stages():
    progress = StagedProgress()
    values = [progress.update(parse_progress_line(json.dumps({"stage": s, "fraction": f}))) for s, f in
              [("load", 0.0), ("load", 1.0), ("coarse", 0.5), ("coarse", 0.2), ("refine", 1.0), ("fuse", 1.0), ("write", 1.0)]]
    assert values == sorted(values)
    assert values[0] == 0.0 and values[-1] == pytest.approx(1.0)
    assert progress.stage == "write"


# --- process runner -----------------------------------------------------------------------------

def test_runner_reads_json_lines_of_a_real_subprocess_including_split_writes():
    script = textwrap.dedent("""
        import json, sys, time
        print(json.dumps({"stage": "load", "fraction": 0.0, "message": "start"}), flush=True)
        sys.stdout.write('{"stage": "coarse", "fra'); sys.stdout.flush(); time.sleep(0.2)
        sys.stdout.write('ction": 0.5, "message": "half"}\\n'); sys.stdout.flush()
        print("a plain log line", file=sys.stderr, flush=True)
        sys.stdout.write('{"stage": "write", "fraction": 1.0, "message": "no newline at end"}')
        sys.exit(3)
    """)
    runner = SubprocessRunner()
    runner.start([sys.executable, "-c", script])
    assert runner.pid is not None
    lines, code = drain(runner)
    assert code == 3
    events = [parse_progress_line(line) for line in lines]
    assert [e.stage for e in events if e] == ["load", "coarse", "write"]
    assert [e.fraction for e in events if e] == [0.0, 0.5, 1.0]
    assert "a plain log line" in lines


def test_runner_refuses_a_second_start_while_running():
    runner = SubprocessRunner()
    runner.start([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(RuntimeError):
            runner.start([sys.executable, "-c", "pass"])
    finally:
        runner.cancel()
    assert runner.poll() is not None


def test_cancel_kills_the_whole_process_tree():
    script = textwrap.dedent("""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
    """)
    runner = SubprocessRunner()
    runner.start([sys.executable, "-c", script])
    child_pid = None
    deadline = time.monotonic() + 20
    while child_pid is None and time.monotonic() < deadline:
        digits = [line for line in runner.read_lines() if line.strip().isdigit()]
        child_pid = int(digits[0]) if digits else None
        time.sleep(0.02)
    parent_pid = runner.pid
    assert child_pid and pid_alive(child_pid) and pid_alive(parent_pid)
    started = time.monotonic()
    runner.cancel(grace_seconds=0.5)
    deadline = time.monotonic() + 10
    while pid_alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(parent_pid)
    assert not pid_alive(child_pid), "the grandchild that ignores SIGTERM survived the cancel"
    assert time.monotonic() - started < 10
    assert runner.poll() is not None


# --- short engine calls in the background -----------------------------------------------------

LAUNCHER = textwrap.dedent("""
    import subprocess, sys
    # Like Slicer's PythonSlicer (CTK AppLauncher): runs the real interpreter as a child and waits for it.
    child = subprocess.Popen([sys.executable, *sys.argv[2:]])
    open(sys.argv[1], "w").write(str(child.pid))
    sys.exit(child.wait())
""")


class FakeTimer:
    def __init__(self) -> None:
        self.active = False

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False


def test_engine_call_returns_at_once_and_reads_multiline_json_despite_stderr_noise():
    code = "import json, sys, time; time.sleep(1.0); print('warning: slow import', file=sys.stderr); print(json.dumps({'a': [1, 2]}, indent=2))"
    started = time.monotonic()
    call = EngineCall(Engine(sys.executable), [sys.executable, "-c", code]).start()
    assert call.poll() is None and time.monotonic() - started < 0.5, "starting and polling must not wait for the engine"
    result = call.wait()
    assert result.returncode == 0 and result.json() == {"a": [1, 2]} and "slow import" in result.stderr


def test_engine_call_timeout_ends_the_launcher_and_its_child(tmp_path):
    engine = Engine(sys.executable)
    pid_file = tmp_path / "child.pid"
    call = EngineCall(engine, [sys.executable, "-c", LAUNCHER, pid_file, "-c", "import time; time.sleep(60)"], timeout=1.0).start()
    deadline = time.monotonic() + 60
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)  # not polling: the timeout is only acted on by poll(), once the child surely runs
    child_pid = int(pid_file.read_text())
    time.sleep(1.0)  # the 1 s timeout, counted from start(), has now passed
    result = call.wait()
    assert result.error is not None and "did not answer within 1 s" in result.error.message
    with pytest.raises(EngineError):
        result.json()
    deadline = time.monotonic() + 5
    while pid_alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child_pid), "the launcher's child survived the timeout"
    with pytest.raises(EngineError, match="did not answer"):
        engine.run([sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.5)


def test_call_poller_hands_each_result_on_and_stops_its_timer():
    timer, answers = FakeTimer(), []
    poller = CallPoller(timer)
    engine = Engine(sys.executable)
    poller.add(EngineCall(engine, [sys.executable, "-c", "print('[1]')"]), lambda r: answers.append(r.json()))
    poller.add(EngineCall(engine, [sys.executable, "-c", "import sys; print('dccseg: error: no; do X', file=sys.stderr); sys.exit(2)"]),
               lambda r: answers.append(r.error.message))
    assert timer.active
    deadline = time.monotonic() + 20
    while timer.active and time.monotonic() < deadline:
        poller.step()
        time.sleep(0.02)
    assert sorted(map(str, answers)) == ["[1]", "no; do X"] and not timer.active
    slow = poller.add(EngineCall(engine, [sys.executable, "-c", "import time; time.sleep(60)"]), answers.append)
    poller.cancel_all()
    assert slow.result.error.message == "cancelled" and not timer.active and len(answers) == 2


# --- Segment jobs on a stand-in engine --------------------------------------------------------

FAKE_ENGINE = '''
import json, os, sys, time
assert sys.argv[1:3] == ["-m", "dccseg"], sys.argv
args = sys.argv[3:]
def emit(stage, fraction, message=""):
    print(json.dumps({"stage": stage, "fraction": fraction, "message": message}), flush=True)
assert args[0] == "segment" and args[-2:] == ["--progress", "json"], args
mode = os.environ["FAKE_MODE"]
with open(os.environ["FAKE_ARGS"], "w") as f:
    json.dump(args, f)
if mode == "no_gpu":
    emit("error", None, "CUDA is not available on this machine; use --device cpu")
    print("dccseg: error: CUDA is not available on this machine; use --device cpu", file=sys.stderr)
    sys.exit(2)
for stage in ("load", "coarse", "refine", "fuse", "write"):
    emit(stage, 0.0, stage)
    emit(stage, 1.0, stage + " done")
if mode == "ok":
    open(args[2], "w").write("seg")
print(json.dumps({"stage": "write", "fraction": None, "message": "timing", "timings": {"load": 0.1, "coarse": 0.2}}), flush=True)
'''



@pytest.fixture
def fake_engine(tmp_path):
    python = fake_python(tmp_path / "fake-python", FAKE_ENGINE)
    return tmp_path, python, dict(os.environ, FAKE_ARGS=str(tmp_path / "args.json"))


def run_job(job: SegmentJob):
    job.start()
    deadline = time.monotonic() + 30
    log: list[str] = []
    fractions: list[float] = []
    while time.monotonic() < deadline:
        update = job.step()
        log += update.log
        fractions.append(update.fraction)
        if update.finished:
            return update, log, fractions
        time.sleep(0.02)
    raise AssertionError("job did not finish")


def test_segment_job_success_reports_stages_timings_and_output(fake_engine):
    tmp, python, env = fake_engine
    params = SegmentParameters(tmp / "in.nrrd", tmp / "out.seg.nrrd", model="dccseg-abdomen@0.1.0", device="cpu", organs=("liver", "spleen"), fast=True)
    job = SegmentJob(Engine(python, dict(env, FAKE_MODE="ok")), params)
    update, log, fractions = run_job(job)
    assert update.succeeded and update.advice is None and update.fraction == 1.0
    assert fractions == sorted(fractions)
    assert "[refine 100%] refine done" in log
    assert job.timings == {"load": 0.1, "coarse": 0.2}
    assert json.loads((tmp / "args.json").read_text(encoding="utf-8")) == [
        "segment", str(tmp / "in.nrrd"), str(tmp / "out.seg.nrrd"), "--device", "cpu", "--model", "dccseg-abdomen@0.1.0",
        "--organs", "liver,spleen", "--fast", "--progress", "json"]


def test_segment_job_maps_engine_error_to_a_cpu_retry(fake_engine):
    tmp, python, env = fake_engine
    job = SegmentJob(Engine(python, dict(env, FAKE_MODE="no_gpu")), SegmentParameters(tmp / "in.nrrd", tmp / "out.seg.nrrd", device="cuda"))
    update, log, _ = run_job(job)
    assert not update.succeeded
    assert update.advice.kind == "no_gpu" and update.advice.retry == {"device": "cpu"}
    assert any(line.startswith("ERROR: CUDA is not available") for line in log)
    assert not any(line.startswith("dccseg: error:") for line in log), "the stderr copy of the error is not repeated"
    retry = job.parameters.with_changes(**update.advice.retry)
    assert retry.device == "cpu" and retry.input_path == job.parameters.input_path


def test_segment_job_without_output_file_is_a_failure(fake_engine):
    tmp, python, env = fake_engine
    job = SegmentJob(Engine(python, dict(env, FAKE_MODE="no_output")), SegmentParameters(tmp / "in.nrrd", tmp / "out.seg.nrrd"))
    update, _, _ = run_job(job)
    assert not update.succeeded and update.advice.kind == "other" and "without writing" in update.advice.text


def test_segment_job_cancel_is_reported_as_cancelled(tmp_path):
    python = fake_python(tmp_path / "fake-python", "import time\nprint('{\"stage\": \"load\", \"fraction\": 0}', flush=True)\ntime.sleep(60)\n")
    job = SegmentJob(Engine(python, dict(os.environ)), SegmentParameters(tmp_path / "a.nrrd", tmp_path / "b.seg.nrrd"))
    job.start()
    time.sleep(0.3)
    job.cancel()
    update = job.step()
    while not update.finished:
        update = job.step()
    assert update.advice.kind == "cancelled" and not update.succeeded


CTK_LAUNCHER = """
import subprocess, sys
# Stands in for PythonSlicer (CTK AppLauncher): forwarded channels; a child killed by a signal is a CrashExit,
# reported on stderr and turned into exit status 1.
child = subprocess.Popen([sys.executable, "-c", "import os, signal; print('{\\"stage\\": \\"load\\", \\"fraction\\": 0}', flush=True); os.kill(os.getpid(), signal.SIGKILL)"])
code = child.wait()
if code < 0:
    print("error: [/opt/Slicer/bin/python-real] exit abnormally - Report the problem.", file=sys.stderr, flush=True)
    sys.exit(1)
sys.exit(code)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_kill_reported_by_slicers_launcher_offers_fast_mode(tmp_path):
    python = fake_python(tmp_path / "PythonSlicer", CTK_LAUNCHER)
    job = SegmentJob(Engine(python, dict(os.environ)), SegmentParameters(tmp_path / "in.nrrd", tmp_path / "out.seg.nrrd"))
    update, log, _ = run_job(job)
    assert not update.succeeded and update.advice.kind == "out_of_memory" and update.advice.retry == {"fast": True}
    assert "killed" in update.advice.text and any("exit abnormally" in line for line in log)
    assert explain_failure("error: something else", 1).kind == "other", "an ordinary exit status 1 is no kill"


def test_segment_parameters_validate_device_and_organs(tmp_path):
    with pytest.raises(ValueError):
        SegmentParameters(tmp_path / "a", tmp_path / "b", device="gpu")
    with pytest.raises(ValueError):
        SegmentParameters(tmp_path / "a", tmp_path / "b", organs=())
    args = SegmentParameters(tmp_path / "a", tmp_path / "b").arguments()
    assert "--model" not in args and "--organs" not in args and "--fast" not in args and "--body-scale" not in args
    child = SegmentParameters(tmp_path / "a", tmp_path / "b", child=True).arguments()
    assert child[child.index("--body-scale") + 1] == "auto"


# --- failures and engine output -------------------------------------------------------------------

@pytest.mark.parametrize("message, code, kind, retry", [
    ("CUDA is not available; use --device cpu", 2, "no_gpu", {"device": "cpu"}),
    ("Torch not compiled with CUDA enabled", 1, "no_gpu", {"device": "cpu"}),
    ("CUDA out of memory. Tried to allocate 2.00 GiB", 1, "out_of_memory", {"fast": True}),
    ("", -9, "out_of_memory", {"fast": True}),
    ("input.nrrd is not a CT: values are not in Hounsfield units (MR-like); give a CT", 2, "not_ct", {}),
    ("cannot read input.nii.gz: not an image file", 2, "other", {}),
])
def test_explain_failure(message, code, kind, retry):
    advice = explain_failure(message, code)
    assert advice.kind == kind and advice.retry == retry
    assert advice.text


def test_error_message_prefers_the_json_error_line():
    stdout = '{"stage": "load", "fraction": 0}\n{"stage": "error", "fraction": null, "message": "unknown model x"}\n'
    assert error_message(stdout, "dccseg: error: other") == "unknown model x"
    assert error_message("", "Traceback...\ndccseg: error: unknown model y\n") == "unknown model y"
    assert error_message("", "") == "the engine stopped without saying why"
    assert parse_json_output('progress\n{"a": 1}\n') == {"a": 1}
    with pytest.raises(EngineError):
        parse_json_output("no json here")


def test_engine_run_raises_engine_error_with_the_engine_message(tmp_path):
    engine = Engine(sys.executable)
    with pytest.raises(EngineError) as info:
        engine.run([sys.executable, "-c", "import sys; print('dccseg: error: bad input; do X', file=sys.stderr); sys.exit(2)"])
    assert info.value.message == "bad input; do X" and info.value.exit_code == 2


# --- models ---------------------------------------------------------------------------------------

def card(name, version, created, dice, data):
    metrics = {"dice": {"liver": dice - 0.1, "spleen": dice + 0.1}} if dice is not None else {}
    return {"name": name, "version": version, "created": created, "description": "d", "metrics": metrics,
            "training": {"data": data}, "organs": [{"label": 1, "key": "spleen", "name": "spleen"}]}


def test_parse_model_list_summarises_cards_and_picks_the_newest():
    document = [
        {"name": "dccseg-abdomen", "version": "0.1.0", "path": "/b", "builtin": True, "card": card("dccseg-abdomen", "0.1.0", "2026-01-02T03:04:05", 0.81, {"cases": 12, "phases": {"arterial": 4, "portal-venous": 8}})},
        {"name": "dccseg-abdomen", "version": "0.10.0", "path": "/u", "builtin": False, "card": card("dccseg-abdomen", "0.10.0", "2026-03-01T00:00:00", 0.9, "my 30 cases")},
        {"name": "dccseg-abdomen", "version": "0.2.0", "path": "/u2", "builtin": False, "card": card("dccseg-abdomen", "0.2.0", "", None, None)},
    ]
    models = parse_model_list(document)
    assert [m.version for m in models] == ["0.10.0", "0.2.0", "0.1.0"]
    assert newest(models).ref == "dccseg-abdomen@0.10.0"
    builtin = models[-1]
    assert builtin.label() == "dccseg-abdomen 0.1.0 (built-in)"
    assert builtin.summary() == "created 2026-01-02; mean Dice 0.810; trained on 12 cases (arterial 4, portal-venous 8)"
    assert models[1].summary() == "creation date unknown; no Dice recorded"
    assert parse_model_list({"models": document[:1]})[0].organs[0]["key"] == "spleen"
    document[0]["card"]["metrics"]["dice_mean"] = 0.5
    assert parse_model_list(document)[-1].mean_dice == 0.5, "dice_mean wins over the per-organ table"


def test_the_model_panel_names_the_organs_the_card_measured_weak_on_unseen_cases():
    entry = {"name": "dccseg-abdomen", "version": "0.4.4", "builtin": True, "card": card("dccseg-abdomen", "0.4.4", "", 0.55, None)}
    entry["card"]["organs"].append({"label": 4, "key": "gallbladder", "name": "gallbladder"})
    entry["card"]["metrics"]["unseen"] = {"synthetic": {"dice_per_organ": {"spleen": 0.7, "gallbladder": 0.49}},
                                          "real": {"dice_per_organ": {"spleen": 0.45, "gallbladder": None, "pancreas": 0.2}}}
    (model,) = parse_model_list([entry])
    assert model.weak_organs == ("gallbladder", "spleen", "pancreas")
    assert model.caution() == "Dice below 0.5 on cases it did not train on: gallbladder, spleen, pancreas. Check these first."
    del entry["card"]["metrics"]["unseen"]
    (model,) = parse_model_list([entry])
    assert model.weak_organs == ("liver",), "without unseen sets, the card's own validation table"
    entry["card"]["metrics"] = {}
    assert parse_model_list([entry])[0].caution() == ""


def test_the_child_box_needs_a_card_with_organ_volumes():
    entry = {"name": "dccseg-abdomen", "version": "0.4.5", "builtin": True, "card": card("dccseg-abdomen", "0.4.5", "", 0.6, None)}
    assert not parse_model_list([entry])[0].measures_children
    entry["card"]["preprocessing"] = {"size_reference_ml": {"liver": 1409.9, "spleen": 323.7}}
    assert parse_model_list([entry])[0].measures_children
    assert parse_model_list([entry])[0].caution() == ""
    entry["card"]["training"] = {"body_scale": "auto"}
    assert parse_model_list([entry])[0].caution() == "Fine-tuned on children at an adult's size: tick Child for a child's scan."


@functools.cache
def engine_cli_builds() -> bool:
    try:
        from dccseg.cli import build_parser

        build_parser()
    except ImportError:
        return False
    return True


def engine_has(*command_modules: str) -> bool:
    """The engine's CLI builds and has these subcommand modules (other helpers are still adding them)."""
    import importlib.util
    return engine_cli_builds() and all(importlib.util.find_spec(f"dccseg.commands.{m}") for m in command_modules)


@pytest.mark.skipif(not engine_has("models"), reason="engine CLI or its models command not landed yet")
def test_runner_lists_models_from_the_real_engine_with_a_temp_store(tmp_path):
    """One real engine process (its start-up costs seconds): the runner reads it, the list parser reads its JSON."""
    runner = SubprocessRunner()
    engine = Engine(sys.executable, dict(os.environ, DCCSEG_MODEL_STORE=str(tmp_path / "store")))
    runner.start(engine.command("models", "list", "--json"), env=engine.environment())
    lines, code = drain(runner, timeout=240)
    assert code == 0, lines
    models = parse_model_list(parse_json_output("\n".join(lines)))
    assert all(m.builtin for m in models), "an empty user store must list only built-in models"
    assert all(m.name and m.version and m.ref == f"{m.name}@{m.version}" for m in models)


# --- organ table ----------------------------------------------------------------------------------

def test_segments_map_to_organ_ids_by_terminology_or_name():
    from dccseg.organs import ORGANS

    organs = load_organ_table()
    assert [o.label for o in organs] == list(range(1, 14))
    by_key = {o.key: o for o in ORGANS}
    segments = [
        ("s1", "Segment_1", by_key["kidney_left"].terminology_string()),
        ("s2", "Kidney right", ""),
        ("s3", "kidney_right", ""),
        ("s4", "IVC", ""),
        ("s5", "tumour", ""),
        ("s6", "6", ""),
        ("s7", "Portal vein", ""),
        ("s8", "Adrenal gland, left", ""),
    ]
    labels = [m.label for m in map_segments(segments, organs)]
    assert labels == [3, 2, None, 9, None, 6, 10, 13]
    assert match_organ("Right Kidney", "", organs).key == "kidney_right"
    assert match_organ("spleen", ORGANS[5].terminology_string(), organs).key == "liver", "terminology wins over the name"


def test_organ_table_from_a_model_card():
    entries = organs_from_card([{"label": 2, "key": "kidney_right", "name": "right kidney"}, {"label": 1, "key": "spleen", "name": "spleen"}])
    assert [e.label for e in entries] == [1, 2]
    assert match_organ("right kidney", "", entries).label == 2


# --- install helpers ------------------------------------------------------------------------------

def test_install_finds_the_engine_source_and_its_requirements():
    source = install.engine_source_dir(ROOT / "DCCSegment")
    assert source == ROOT
    assert install.source_version(source) == install.installed_version("dccseg")
    dependencies = install.source_dependencies(source)
    assert any(d.startswith("monai") for d in dependencies) and any(d.startswith("torch") for d in dependencies)
    assert install.requirement_name("SimpleITK>=2.2; python_version>'3'") == "SimpleITK"
    assert install.engine_is_current(source)


def test_install_constraints_pin_slicer_owned_packages(tmp_path):
    import numpy

    text = install.constraints_text()
    assert f"numpy=={numpy.__version__}" in text.splitlines()
    steps = install.pip_steps(ROOT, tmp_path / "c.txt")
    assert steps[0] == ["--upgrade", "--no-deps", str(ROOT)]
    assert len(steps) == 1, "everything is installed here, so only the engine itself is (re)installed"
    shipped = tmp_path / "module"
    (shipped / install.ENGINE_SOURCE_FOLDER).mkdir(parents=True)
    (shipped / install.ENGINE_SOURCE_FOLDER / "pyproject.toml").write_text('[project]\nname = "dccseg"\nversion = "9.9.9"\n', encoding="utf-8")
    assert install.engine_source_dir(shipped) == shipped / install.ENGINE_SOURCE_FOLDER
    assert install.engine_source_dir(tmp_path / "elsewhere" / "x") is None
