"""Install the engine and its requirements into Slicer's Python, after asking, one install at a time.

Rules: nothing is installed at import time; Slicer older than ``MIN_SLICER`` is refused before anything is
installed; Slicer's own numpy/SimpleITK/vtk are never replaced (a version the engine cannot use is reported,
and a constraints file pins them for everything else); torch comes from the PyTorch extension. The engine is
installed from the copy shipped inside the extension (``dccseg-source/``), or from the repository root when
the modules run from a source checkout. This file must stay importable by Python 3.9 (Slicer 5.8) so that
old Slicer versions get the refusal message instead of a traceback.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ENGINE_SOURCE_FOLDER = "dccseg-source"
MIN_SLICER = (5, 10)
"""Slicer 5.10 ships Python 3.12; Slicer 5.8 ships Python 3.9, which the engine does not support."""
SLICER_OWNED = {"numpy": "numpy", "SimpleITK": "SimpleITK", "vtk": "vtk"}
"""Distribution name -> import name of the packages Slicer owns (never installed or replaced here)."""
PROTECTED_PACKAGES = {**SLICER_OWNED, "torch": "torch"}
"""Slicer's packages plus torch, which only the PyTorch extension installs."""


def slicer_version_problem(major: int, minor: int) -> str | None:
    """The refusal shown on a Slicer too old for the engine (None: supported)."""
    if (major, minor) >= MIN_SLICER:
        return None
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (f"DCC Segment needs 3D Slicer {MIN_SLICER[0]}.{MIN_SLICER[1]} or newer; this is Slicer {major}.{minor}, whose Python {python} "
            "cannot run the segmentation engine. Nothing was installed. Install a current Slicer from download.slicer.org.")


def engine_source_dir(module_dir: Path) -> Path | None:
    """The engine's source folder: shipped next to the module, or the checkout root above it."""
    for candidate in (module_dir / ENGINE_SOURCE_FOLDER, module_dir.parent):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file() and re.search(r'^name\s*=\s*"dccseg"', pyproject.read_text(encoding="utf-8"), re.M):
            return candidate
    return None


def source_version(source_dir: Path) -> str:
    """The engine version declared in ``pyproject.toml``."""
    match = re.search(r'^version\s*=\s*"([^"]+)"', (source_dir / "pyproject.toml").read_text(encoding="utf-8"), re.M)
    if match is None:
        raise ValueError(f"no version in {source_dir / 'pyproject.toml'}")
    return match.group(1)


def source_dependencies(source_dir: Path) -> list[str]:
    """The ``[project] dependencies`` requirement strings of the engine."""
    text = (source_dir / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^dependencies\s*=\s*\[(.*?)\]", text, re.M | re.S)
    return re.findall(r'"([^"]+)"', block.group(1)) if block else []


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[@]", requirement.strip(), maxsplit=1)[0]


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_present(distribution: str) -> bool:
    """Installed as a distribution, or (for Slicer-owned packages built without metadata) importable."""
    if installed_version(distribution) is not None:
        return True
    module = PROTECTED_PACKAGES.get(distribution)
    return module is not None and importlib.util.find_spec(module) is not None


def unsatisfied_requirements(requirements: list[str]) -> list[str]:
    """The requirements (for this Python) whose package is missing or installed at a version outside the specifier.

    A Slicer-owned package present without metadata counts as satisfied: its version cannot be read.
    """
    from packaging.requirements import Requirement

    unsatisfied = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = installed_version(requirement.name)
        if version is None:
            if not is_present(requirement.name):
                unsatisfied.append(text)
        elif not requirement.specifier.contains(version, prereleases=True):
            unsatisfied.append(text)
    return unsatisfied


def constraints_text() -> str:
    """A pip constraints file pinning the installed versions of the Slicer-owned packages."""
    lines = [f"{name}=={version}" for name in PROTECTED_PACKAGES if (version := installed_version(name))]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class InstallPlan:
    """What is missing or too old: the engine itself, torch, other packages; ``conflicts`` cannot be fixed here."""

    engine: bool
    torch: str | None
    packages: tuple[str, ...]
    conflicts: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not (self.engine or self.torch or self.packages or self.conflicts)


def plan_install(source_dir: Path) -> InstallPlan:
    """Compare the installed packages with the engine's version and requirement specifiers."""
    unsatisfied = unsatisfied_requirements(source_dependencies(source_dir))
    torch = next((r for r in unsatisfied if requirement_name(r) == "torch"), None)
    conflicts = []
    for requirement in unsatisfied:
        name = requirement_name(requirement)
        if name in SLICER_OWNED:
            conflicts.append(f"{requirement} (Slicer has {name} {installed_version(name) or 'missing'})")
    packages = tuple(r for r in unsatisfied if requirement_name(r) not in PROTECTED_PACKAGES)
    return InstallPlan(installed_version("dccseg") != source_version(source_dir), torch, packages, tuple(conflicts))


def engine_is_current(source_dir: Path) -> bool:
    """The engine is installed at the shipped version and every requirement is satisfied."""
    return plan_install(source_dir).ready


def pip_steps(source_dir: Path, constraints_path: Path) -> list[list[str]]:
    """pip argument lists: the engine without its dependencies, then the missing or too old ones, constrained."""
    steps = [["--upgrade", "--no-deps", str(source_dir)]]
    packages = plan_install(source_dir).packages
    if packages:
        steps.append([*packages, "-c", str(constraints_path)])
    return steps


def install_failure_message(what: str, error: Exception) -> str:
    """What failed and what to do, for an install step that raised (pip's exit status or an OS error)."""
    detail = f"exit status {error.returncode}" if isinstance(error, subprocess.CalledProcessError) else str(error)
    return (f"Installing {what} failed ({detail}). Check the internet connection (and proxy settings), then click the button "
            "again to retry; pip's messages are in the Python console (View > Python Console).")


_installing = False


def ensure_engine(module_dir: Path, ask: bool = True) -> bool:
    """In Slicer: make sure torch and the engine are installed, asking once per click. True when ready."""
    global _installing
    import slicer

    if _installing:
        slicer.util.showStatusMessage("DCC Segment is still installing its engine; wait until it has finished.", 5000)
        return False
    problem = slicer_version_problem(int(slicer.app.majorVersion), int(slicer.app.minorVersion))
    if problem is not None:
        slicer.util.errorDisplay(problem, windowTitle="DCC Segment")
        return False
    source = engine_source_dir(module_dir)
    if source is None:
        slicer.util.errorDisplay(f"The DCC Segment engine was not found next to {module_dir}; reinstall the extension.")
        return False
    plan = plan_install(source)
    if plan.ready:
        return True
    if plan.conflicts:
        slicer.util.errorDisplay("Slicer's own Python packages are too old for DCC Segment: " + "; ".join(plan.conflicts)
                                 + ". Install a current Slicer.", windowTitle="DCC Segment")
        return False
    if ask and not slicer.util.confirmOkCancelDisplay(
        "DCC Segment needs its engine and a few Python packages (MONAI, safetensors, pynrrd, ...) and PyTorch "
        "installed into Slicer's Python. This downloads several hundred MB and can take a few minutes. "
        "Slicer's own numpy, SimpleITK and VTK are left untouched. Install now?",
        windowTitle="DCC Segment: install dependencies",
    ):
        slicer.util.showStatusMessage("Nothing was installed; click again to install.", 5000)
        return False
    _installing = True
    try:
        return _install(source, plan)
    finally:
        _installing = False


def _install(source: Path, plan: InstallPlan) -> bool:
    import slicer

    if plan.torch and not _install_torch(plan.torch):
        return False
    constraints = Path(slicer.app.temporaryPath) / "dccseg-constraints.txt"
    try:
        constraints.write_text(constraints_text(), encoding="utf-8")
        with slicer.util.WaitCursor():
            for args in pip_steps(source, constraints):
                slicer.util.pip_install(args)
    except (subprocess.CalledProcessError, OSError) as exc:
        slicer.util.errorDisplay(install_failure_message("the DCC Segment engine", exc), windowTitle="DCC Segment")
        return False
    left = plan_install(source)
    if not left.ready:
        slicer.util.errorDisplay("After installing, these are still missing or too old: "
                                 + ", ".join([*left.packages, *([left.torch] if left.torch else []), *(["dccseg"] if left.engine else [])])
                                 + ". Restart Slicer and try again.", windowTitle="DCC Segment")
    return left.ready


def _install_torch(requirement: str) -> bool:
    """Install torch through the PyTorch extension without a second question (the user was asked already)."""
    import slicer

    try:
        import PyTorchUtils
    except ModuleNotFoundError:
        slicer.util.errorDisplay("DCC Segment needs the PyTorch extension: install it from the Extensions Manager, restart Slicer, and try again.")
        return False
    specifier = requirement[len(requirement_name(requirement)):].split(";")[0].strip()
    try:
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=specifier or None)
    except (subprocess.CalledProcessError, OSError) as exc:
        slicer.util.errorDisplay(install_failure_message("PyTorch", exc), windowTitle="DCC Segment")
        return False
    return torch is not None
