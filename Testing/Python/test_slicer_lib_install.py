"""The first-use installer outside Slicer: version gate, one question per click, one install at a time, failures shown.

``slicer`` is replaced by a stub that records every ``slicer.util`` call the installer makes.
"""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "DCCSegment"))

from DCCSegmentLib import install  # noqa: E402


class StubUtil:
    """Records the ``slicer.util`` calls; ``answers`` are the user's replies to confirmation dialogs."""

    def __init__(self, answers=(), pip=None) -> None:
        self.answers = list(answers)
        self.pip = pip
        self.calls: list[tuple[str, object]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def texts(self, name: str) -> list[str]:
        return [str(arg) for n, arg in self.calls if n == name]

    def errorDisplay(self, text, **_):
        self.calls.append(("errorDisplay", text))

    def confirmOkCancelDisplay(self, text, **_):
        self.calls.append(("confirmOkCancelDisplay", text))
        return self.answers.pop(0)

    def showStatusMessage(self, text, duration=0):
        self.calls.append(("showStatusMessage", text))

    def pip_install(self, args):
        self.calls.append(("pip_install", args))
        if self.pip is not None:
            self.pip(args)

    class WaitCursor:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False


def stub_slicer(monkeypatch, tmp_path, util: StubUtil, version=(5, 10)):
    stub = types.ModuleType("slicer")
    stub.app = types.SimpleNamespace(majorVersion=version[0], minorVersion=version[1], temporaryPath=str(tmp_path))
    stub.util = util
    monkeypatch.setitem(sys.modules, "slicer", stub)
    return stub


def module_with_engine(tmp_path: Path, dependencies: list[str]) -> Path:
    """A module folder shipping an engine source whose version is not installed and whose requirements are given."""
    module = tmp_path / "module"
    source = module / install.ENGINE_SOURCE_FOLDER
    source.mkdir(parents=True)
    listed = ", ".join(f'"{d}"' for d in dependencies)
    (source / "pyproject.toml").write_text(f'[project]\nname = "dccseg"\nversion = "9.9.9"\ndependencies = [{listed}]\n', encoding="utf-8")
    return module


def test_slicer_older_than_5_10_is_refused_before_anything_is_installed(monkeypatch, tmp_path):
    assert install.slicer_version_problem(5, 10) is None and install.slicer_version_problem(6, 0) is None
    util = StubUtil()
    stub_slicer(monkeypatch, tmp_path, util, version=(5, 8))
    assert install.ensure_engine(module_with_engine(tmp_path, ["numpy>=1"])) is False
    assert util.names() == ["errorDisplay"]
    assert "Slicer 5.10 or newer" in util.texts("errorDisplay")[0] and "Slicer 5.8" in util.texts("errorDisplay")[0]


def test_cancel_does_not_latch_and_the_user_is_asked_once_per_click(monkeypatch, tmp_path):
    module = module_with_engine(tmp_path, ["numpy>=1", "surely-not-installed-pkg>=1.0"])
    util = StubUtil(answers=[False, True])
    stub_slicer(monkeypatch, tmp_path, util)
    assert install.ensure_engine(module) is False
    assert util.names() == ["confirmOkCancelDisplay", "showStatusMessage"]
    install.ensure_engine(module)
    assert util.names().count("confirmOkCancelDisplay") == 2, "a second click asks again"
    pips = util.texts("pip_install")
    assert pips[0] == str(["--upgrade", "--no-deps", str(module / install.ENGINE_SOURCE_FOLDER)])
    assert "surely-not-installed-pkg>=1.0" in pips[1] and "numpy>=1" not in pips[1]
    assert "still missing" in util.texts("errorDisplay")[-1], "what the install could not fix is reported"


def test_a_second_click_while_pip_runs_starts_no_second_install(monkeypatch, tmp_path):
    module = module_with_engine(tmp_path, ["surely-not-installed-pkg>=1.0"])
    nested: list[bool] = []
    util = StubUtil(answers=[True], pip=lambda args: nested.append(install.ensure_engine(module)))
    stub_slicer(monkeypatch, tmp_path, util)
    install.ensure_engine(module)
    assert nested == [False, False], "clicks delivered while pip processes events are refused"
    assert util.names().count("pip_install") == 2 and util.names().count("confirmOkCancelDisplay") == 1
    assert "still installing" in util.texts("showStatusMessage")[0]


def test_an_install_failure_says_what_failed_and_what_to_do(monkeypatch, tmp_path):
    module = module_with_engine(tmp_path, ["surely-not-installed-pkg>=1.0"])

    def offline(args):
        raise subprocess.CalledProcessError(1, ["PythonSlicer", "-m", "pip", "install", *args])

    util = StubUtil(answers=[True, True], pip=offline)
    stub_slicer(monkeypatch, tmp_path, util)
    assert install.ensure_engine(module) is False
    error = util.texts("errorDisplay")[0]
    assert "exit status 1" in error and "internet" in error and "click" in error
    assert install.ensure_engine(module) is False and util.names().count("pip_install") == 2, "a failed install can be retried"


def test_torch_comes_from_the_pytorch_extension_without_a_second_question(monkeypatch, tmp_path):
    module = module_with_engine(tmp_path, ["torch>=999"])
    requests = []

    class Logic:
        def installTorch(self, askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=None):
            requests.append((askConfirmation, torchVersionRequirement))
            raise subprocess.CalledProcessError(2, "ltt")

    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=Logic))
    util = StubUtil(answers=[True])
    stub_slicer(monkeypatch, tmp_path, util)
    assert install.ensure_engine(module) is False
    assert requests == [(False, ">=999")], "an installed torch older than required is not accepted"
    assert "Installing PyTorch failed (exit status 2)" in util.texts("errorDisplay")[0]
    assert "pip_install" not in util.names()


def test_installed_versions_are_checked_against_the_specifiers(tmp_path):
    import numpy

    assert install.unsatisfied_requirements(["numpy>=1", "numpy>=999", "surely-not-installed-pkg>=1", "numpy>=999; python_version<'3'"]) == [
        "numpy>=999", "surely-not-installed-pkg>=1"]
    module = module_with_engine(tmp_path, ["numpy>=999", "surely-not-installed-pkg>=1.0", "pytest>=999"])
    plan = install.plan_install(module / install.ENGINE_SOURCE_FOLDER)
    assert plan.engine and plan.torch is None and not plan.ready
    assert plan.packages == ("surely-not-installed-pkg>=1.0", "pytest>=999"), "an old package is upgraded, a Slicer-owned one never"
    assert plan.conflicts == (f"numpy>=999 (Slicer has numpy {numpy.__version__})",)


def test_slicer_owned_package_too_old_is_reported_not_replaced(monkeypatch, tmp_path):
    util = StubUtil()
    stub_slicer(monkeypatch, tmp_path, util)
    assert install.ensure_engine(module_with_engine(tmp_path, ["numpy>=999"])) is False
    assert util.names() == ["errorDisplay"] and "numpy>=999" in util.texts("errorDisplay")[0]
