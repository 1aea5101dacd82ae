"""The Slicer extension's shape: files compile, Slicer imports stay where they belong, CMake ships every file."""

from __future__ import annotations

import ast
import importlib
import py_compile
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("DCCSegment", "DCCTrain")
SLICER_PACKAGES = {"slicer", "qt", "ctk", "vtk"}
SLICER_ONLY_FILES = {"case_adder.py", "segment_panel.py", "slicer_io.py", "slicer_plots.py", "train_panel.py", "results_panel.py", "label_next_panel.py"}


def top_level_imports(path: Path) -> set[str]:
    """Root package names imported at module level (not inside functions)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def module_python_files(module: str) -> list[Path]:
    return sorted((ROOT / module).rglob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_every_module_file_compiles(module, tmp_path):
    files = module_python_files(module)
    assert len(files) >= 5
    for path in files:
        py_compile.compile(str(path), cfile=str(tmp_path / (path.name + "c")), doraise=True)


@pytest.mark.parametrize("module", MODULES)
def test_module_files_parse_as_python_3_9(module):
    """Slicer 5.8 (Python 3.9) must reach the installer's version refusal instead of failing on a syntax error."""
    for path in module_python_files(module):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 9))


def test_engine_never_imports_slicer():
    pattern = re.compile(r"^\s*(import|from)\s+(slicer|qt|ctk|vtk)\b", re.M)
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "dccseg").rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


@pytest.mark.parametrize("module", MODULES)
def test_lib_files_import_without_slicer(module, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "DCCSegment"))
    monkeypatch.syspath_prepend(str(ROOT / "DCCTrain"))
    lib = ROOT / module / f"{module}Lib"
    for path in sorted(lib.glob("*.py")):
        imports = top_level_imports(path)
        if path.name in SLICER_ONLY_FILES:
            continue
        assert not imports & SLICER_PACKAGES, f"{path.name} imports {imports & SLICER_PACKAGES} at module level"
        importlib.import_module(f"{module}Lib.{path.stem}" if path.stem != "__init__" else f"{module}Lib")
    assert not SLICER_PACKAGES & set(sys.modules), "a Lib module pulled in a Slicer package"


@pytest.mark.parametrize("module", MODULES)
def test_module_file_imports_lib_lazily(module):
    """The thin module file must load in Slicer before the engine is installed: Lib imports only inside functions."""
    imports = top_level_imports(ROOT / module / f"{module}.py")
    assert not {i for i in imports if i.endswith("Lib") or i == "dccseg"}


@pytest.mark.parametrize("module", MODULES)
def test_cmake_ships_every_python_file_and_the_icon(module):
    cmake = (ROOT / module / "CMakeLists.txt").read_text(encoding="utf-8").replace("${MODULE_NAME}", module)
    listed = set(re.findall(r"^\s+(\S+\.py)\s*$", cmake, re.M))
    present = {p.relative_to(ROOT / module).as_posix() for p in module_python_files(module)}
    assert listed == present
    assert f"Resources/Icons/{module}.png" in cmake and (ROOT / module / "Resources" / "Icons" / f"{module}.png").is_file()
    assert "slicer_add_python_unittest(SCRIPT" in cmake


def test_root_cmake_is_a_slicer_extension():
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for needed in ("EXTENSION_HOMEPAGE", 'EXTENSION_CATEGORY "Segmentation"', "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL",
                   "EXTENSION_SCREENSHOTURLS", 'EXTENSION_DEPENDS "PyTorch"', "find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})",
                   "add_subdirectory(DCCSegment)", "add_subdirectory(DCCTrain)", "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert needed in cmake, needed
    assert "dccseg-source" in cmake, "the engine must ship inside the extension for the installer"
    from PIL import Image

    assert Image.open(ROOT / "Resources" / "Icons" / "DCCSegment.png").size == (128, 128)
