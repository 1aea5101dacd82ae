"""Template anatomy for label-driven synthesis: the bundled TotalSegmentator case and user templates.

A template is a labelmap of structures plus their names (``names[i - 1]`` is label ``i``).
Structure names follow TotalSegmentator; the 13 organs may also use our organ keys.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import DccsegError
from ..fileutil import atomic_output
from ..organs import ORGANS
from ..volume import Volume
from .structures import STRUCTURE_ALIASES

BUNDLED = {"totalseg_example": "totalseg_example_structures.nii.gz"}
_ORGAN_FIRST = [next((alias for alias, key in STRUCTURE_ALIASES.items() if key == o.key), o.key) for o in ORGANS]


def _read(path: Path) -> Volume:
    try:
        return Volume.from_sitk(sitk.ReadImage(str(path)))
    except RuntimeError as exc:
        raise DccsegError(f"cannot read {path} as an image ({str(exc).strip().splitlines()[-1]}); give a NIfTI/NRRD labelmap") from None


def combine_structures(structure_dir: Path) -> tuple[Volume, list[str]]:
    """Combine per-structure binary masks ``<name>.nii.gz`` into one labelmap; the 13 organs come first, first wins."""
    files = {p.name[: -len(".nii.gz")]: p for p in Path(structure_dir).glob("*.nii.gz")}
    if not files:
        raise DccsegError(f"no <structure>.nii.gz masks in {structure_dir}; give a folder of TotalSegmentator-style masks")
    names = [n for n in _ORGAN_FIRST if n in files] + sorted(n for n in files if n not in _ORGAN_FIRST)
    if len(names) > 255:
        raise DccsegError(f"{structure_dir} holds {len(names)} structures; at most 255 fit one labelmap")
    first = _read(files[names[0]])
    combined = np.zeros(first.shape, dtype=np.uint8)
    for label, name in enumerate(names, start=1):
        mask = _read(files[name])
        if not mask.same_grid(first, 1e-3):
            raise DccsegError(f"mask {files[name]} is on another grid than {files[names[0]]}; all masks must share one grid")
        combined[(mask.array > 0) & (combined == 0)] = label
    return first.with_array(combined), names


def build_template_from_structure_dir(structure_dir: str | Path, out: str | Path) -> Path:
    """Write the combined labelmap to ``out`` (.nii.gz) and its names to ``structures.json`` beside it."""
    labels, names = combine_structures(Path(structure_dir))
    out = Path(out)
    with atomic_output(out) as tmp:
        sitk.WriteImage(labels.to_sitk(), str(tmp), True)
    with atomic_output(out.parent / "structures.json") as tmp:
        tmp.write_text(json.dumps({str(i): n for i, n in enumerate(names, start=1)}, indent=1) + "\n")
    return out


def _read_names(json_path: Path) -> list[str]:
    table = json.loads(json_path.read_text(encoding="utf-8"))
    return [table[str(i)] for i in range(1, len(table) + 1)]


def load_template(name: str = "totalseg_example") -> tuple[Volume, list[str]]:
    """Load a bundled template by name, or a user template.

    A user template is a TotalSegmentator subject folder (``segmentations/*.nii.gz``), a folder of
    structure masks, or a labelmap file with ``structures.json`` beside it (a labelmap without one is
    read as our organ ids 1..13).
    """
    if name in BUNDLED:
        folder = resources.files("dccseg") / "data" / "templates"
        with resources.as_file(folder) as path:
            return _read(path / BUNDLED[name]), _read_names(path / "structures.json")
    path = Path(name)
    if path.is_dir():
        return combine_structures(path / "segmentations" if (path / "segmentations").is_dir() else path)
    if path.is_file():
        sidecar = path.parent / "structures.json"
        names = _read_names(sidecar) if sidecar.is_file() else [o.key for o in ORGANS]
        return _read(path), names
    raise DccsegError(f"unknown template '{name}'; use one of {', '.join(BUNDLED)} or a path to a labelmap or structure folder")


def load_dataset_templates(dataset_dir: str | Path) -> list[tuple[Volume, list[str]]]:
    """Every label map of a dataset folder (``dataset.json`` cases) as an organ-id template."""
    manifest = Path(dataset_dir) / "dataset.json"
    if not manifest.is_file():
        raise DccsegError(f"{dataset_dir} has no dataset.json; give a dataset folder made by 'dccseg dataset'")
    cases = json.loads(manifest.read_text(encoding="utf-8")).get("cases", [])
    names = [o.key for o in ORGANS]
    return [(_read(Path(dataset_dir) / case["label"]), names) for case in cases if case.get("label")]


def load_templates(name: str = "totalseg_example") -> list[tuple[Volume, list[str]]]:
    """All templates a name gives: every case of a dataset folder, else the one template of ``load_template``."""
    if (Path(name) / "dataset.json").is_file():
        return load_dataset_templates(name)
    return [load_template(name)]
