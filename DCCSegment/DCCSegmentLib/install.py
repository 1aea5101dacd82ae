"""Install the engine and its requirements into Slicer's Python, once, after asking.

Rules: nothing is installed at import time; Slicer's own numpy/SimpleITK/vtk (and the torch the
PyTorch extension installed) are never replaced: they are skipped when present and pinned by a
constraints file for everything else; torch itself comes from the PyTorch extension. The engine is
installed from the copy shipped inside the extension (``dccseg-source/``), or from the repository
root when the modules run from a source checkout.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path

ENGINE_SOURCE_FOLDER = "dccseg-source"
PROTECTED_PACKAGES = {"numpy": "numpy", "SimpleITK": "SimpleITK", "vtk": "vtk", "torch": "torch"}
"""Distribution name -> import name of the packages Slicer (or the PyTorch extension) owns."""


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


def missing_requirements(requirements: list[str]) -> list[str]:
    """The requirements whose package is not present at all (present ones are never upgraded)."""
    return [r for r in requirements if not is_present(requirement_name(r))]


def constraints_text() -> str:
    """A pip constraints file pinning the installed versions of the Slicer-owned packages."""
    lines = [f"{name}=={version}" for name in PROTECTED_PACKAGES if (version := installed_version(name))]
    return "\n".join(lines) + "\n"


def engine_is_current(source_dir: Path) -> bool:
    """The engine is installed at the shipped version and nothing it needs is missing."""
    return installed_version("dccseg") == source_version(source_dir) and not missing_requirements(source_dependencies(source_dir))


def pip_steps(source_dir: Path, constraints_path: Path) -> list[list[str]]:
    """pip argument lists: the engine without its dependencies, then only the missing ones, constrained."""
    steps = [["--upgrade", "--no-deps", str(source_dir)]]
    missing = [r for r in missing_requirements(source_dependencies(source_dir)) if requirement_name(r) != "torch"]
    if missing:
        steps.append([*missing, "-c", str(constraints_path)])
    return steps


_declined = False


def ensure_engine(module_dir: Path, ask: bool = True) -> bool:
    """In Slicer: make sure torch and the engine are installed; ask the user once. True when ready."""
    global _declined
    import slicer

    source = engine_source_dir(module_dir)
    if source is None:
        slicer.util.errorDisplay(f"The DCC Segment engine was not found next to {module_dir}; reinstall the extension.")
        return False
    if engine_is_current(source) and is_present("torch"):
        return True
    if _declined:
        return False
    if ask and not slicer.util.confirmOkCancelDisplay(
        "DCC Segment needs its engine and a few Python packages (MONAI, safetensors, pynrrd, ...) and PyTorch "
        "installed into Slicer's Python. This downloads several hundred MB and can take a few minutes. "
        "Slicer's own numpy, SimpleITK and VTK are left untouched. Install now?",
        windowTitle="DCC Segment: install dependencies",
    ):
        _declined = True
        return False
    if not is_present("torch") and not _install_torch(ask):
        return False
    constraints = Path(slicer.app.temporaryPath) / "dccseg-constraints.txt"
    constraints.write_text(constraints_text(), encoding="utf-8")
    with slicer.util.WaitCursor():
        for args in pip_steps(source, constraints):
            slicer.util.pip_install(args)
    return engine_is_current(source)


def _install_torch(ask: bool) -> bool:
    import slicer

    try:
        import PyTorchUtils
    except ModuleNotFoundError:
        slicer.util.errorDisplay("DCC Segment needs the PyTorch extension: install it from the Extensions Manager, restart Slicer, and try again.")
        return False
    return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=ask) is not None
