"""Template anatomy for label-driven synthesis: seven bundled real bodies and user templates.

A template is a labelmap of structures plus their names (``names[i - 1]`` is label ``i``). Structure names
follow TotalSegmentator, v1 (104 structures) or v2 (117); the 13 organs may also use our organ keys. The
bundled bodies are compact ``.npz`` files in ``dccseg/data/templates/`` (attribution in its README), made by
``tools/build_templates.py``; ``BODY_SPLIT`` says which of them training may use.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DccsegError
from ..fileutil import atomic_output
from ..organs import ORGANS
from ..volume import Volume
from .structures import ORGAN_PARTS, STRUCTURE_ALIASES, structure_group

BODY_SPLIT: dict[str, tuple[str, ...]] = {
    "train": ("totalseg_example", "s0001", "s0004", "s0327", "s0328"),
    "test": ("s0006", "s0009"),
}
"""The bundled real anatomies by role. Test bodies are never trained on: they stand in for unseen patients."""
BUNDLED: tuple[str, ...] = BODY_SPLIT["train"] + BODY_SPLIT["test"]
_ORGAN_FIRST = [next((alias for alias, key in STRUCTURE_ALIASES.items() if key == o.key), o.key) for o in ORGANS]


def _read(path: Path) -> Volume:
    from ..io.images import read_sitk  # SimpleITK loads only when masks are read, not for bundled templates

    return Volume.from_sitk(read_sitk(path))


def _structure_order(names: list[str]) -> list[str]:
    return [n for n in _ORGAN_FIRST if n in names] + sorted(n for n in names if n not in _ORGAN_FIRST)


def combine_structures(structure_dir: Path, grouped: bool = False) -> tuple[Volume, list[str]]:
    """Combine per-structure binary masks ``<name>.nii.gz`` into one labelmap; the 13 organs come first, first wins.

    ``grouped`` merges structures of one group into one label (``rib_left_3`` -> ``ribs``, see
    ``structure_group``), which makes a compact template; lesion masks inside an organ (``kidney_cyst_left``)
    keep their own label after the organs. TotalSegmentator v1 and v2 names are both understood.
    """
    files = {p.name[: -len(".nii.gz")]: p for p in Path(structure_dir).glob("*.nii.gz")}
    if not files:
        raise DccsegError(f"no <structure>.nii.gz masks in {structure_dir}; give a folder of TotalSegmentator-style masks")
    group_of = {n: structure_group(n) if grouped else n for n in files}
    names = _structure_order(sorted(set(group_of.values()) - set(ORGAN_PARTS)))
    names += sorted(set(group_of.values()) & set(ORGAN_PARTS))
    if len(names) > 255:
        raise DccsegError(f"{structure_dir} holds {len(names)} structures; at most 255 fit one labelmap")
    label_of = {name: i for i, name in enumerate(names, start=1)}
    order = sorted(files, key=lambda n: label_of[group_of[n]])
    first = _read(files[order[0]])
    combined = np.zeros(first.shape, dtype=np.uint8)
    for name in order:
        mask = _read(files[name])
        if not mask.same_grid(first, 1e-3):
            raise DccsegError(f"mask {files[name]} is on another grid than {files[order[0]]}; all masks must share one grid")
        combined[(mask.array > 0) & (combined == 0)] = label_of[group_of[name]]
    return first.with_array(combined), names


def build_template_from_structure_dir(structure_dir: str | Path, out: str | Path) -> Path:
    """Write the combined labelmap to ``out``: a compact ``.npz`` template, or ``.nii.gz`` with ``structures.json`` beside it."""
    out = Path(out)
    if out.suffix == ".npz":
        save_compact_template(*combine_structures(Path(structure_dir), grouped=True), out)
        return out
    import SimpleITK as sitk

    labels, names = combine_structures(Path(structure_dir))
    with atomic_output(out) as tmp:
        sitk.WriteImage(labels.to_sitk(), str(tmp), True)
    with atomic_output(out.parent / "structures.json") as tmp:
        tmp.write_text(json.dumps({str(i): n for i, n in enumerate(names, start=1)}, indent=1) + "\n")
    return out


def save_compact_template(labels: Volume, names: list[str], out: Path) -> None:
    """One body in one compressed numpy file: the labelmap (z, y, x), its geometry and its structure names."""
    with atomic_output(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, labels=labels.array.astype(np.uint8), spacing=labels.spacing, origin=labels.origin, direction=labels.direction, names=np.array(names))


def read_compact_template(path: Path) -> tuple[Volume, list[str]]:
    """Read a template written by ``save_compact_template`` (no pickled objects are ever loaded)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            volume = Volume(data["labels"], tuple(map(float, data["spacing"])), tuple(map(float, data["origin"])), tuple(map(float, data["direction"])))
            names = [str(n) for n in data["names"]]
    except (OSError, KeyError, ValueError) as exc:
        raise DccsegError(f"cannot read template {path} ({exc}); rebuild it with 'python tools/build_templates.py'") from None
    return volume, names


def _read_names(json_path: Path) -> list[str]:
    table = json.loads(json_path.read_text(encoding="utf-8"))
    return [table[str(i)] for i in range(1, len(table) + 1)]


def load_template(name: str = "totalseg_example") -> tuple[Volume, list[str]]:
    """Load a bundled body by name (``BUNDLED``), or a user template.

    A user template is a TotalSegmentator subject folder (``segmentations/*.nii.gz``), a folder of
    structure masks, a compact ``.npz`` template, or a labelmap file with ``structures.json`` beside it
    (a labelmap without one is read as our organ ids 1..13).
    """
    if name in BUNDLED:
        with resources.as_file(resources.files("dccseg") / "data" / "templates" / f"{name}.npz") as path:
            return read_compact_template(path)
    path = Path(name)
    if path.is_dir():
        return combine_structures(path / "segmentations" if (path / "segmentations").is_dir() else path)
    if path.is_file() and path.suffix == ".npz":
        return read_compact_template(path)
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
