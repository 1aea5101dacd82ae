"""Generic builders for tests: tiny CT volumes, label maps, DICOM series, source-tree hashes and the tools/ scripts as modules."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from dccseg.volume import Volume

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def load_tool(name: str):
    """The script ``tools/<name>.py`` imported as a module (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[2] / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def oblique_direction() -> tuple[float, ...]:
    """A rotation that is not axis-aligned (about 20, 10 and -15 degrees), row-major."""
    def rot(axis: int, degrees: float) -> np.ndarray:
        c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        i, j = [a for a in range(3) if a != axis]
        m = np.eye(3)
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m
    return tuple((rot(2, 20) @ rot(1, 10) @ rot(0, -15)).ravel().tolist())


def make_ct(
    shape: tuple[int, int, int] = (8, 8, 8),
    spacing: tuple[float, float, float] = (0.75, 1.25, 2.5),
    origin: tuple[float, float, float] = (-120.5, 88.25, -30.0),
    direction: tuple[float, ...] = IDENTITY,
    seed: int = 0,
) -> Volume:
    """Integer HU: air (-1000) around a soft-tissue block with a bright 'bone' voxel line."""
    rng = np.random.default_rng(seed)
    array = np.full(shape, -1000.0, dtype=np.float32)
    z, y, x = shape
    array[:, y // 4 : 3 * y // 4 + 1, x // 4 : 3 * x // 4 + 1] = 40.0
    array += rng.integers(-20, 21, size=shape).astype(np.float32)
    array[:, y // 2, x // 2] = 700.0
    return Volume(array, spacing, origin, direction)


def make_labels(ct: Volume, ids: tuple[int, ...] = (1, 6)) -> Volume:
    """Label boxes with the given ids inside the soft-tissue block, on the CT's grid."""
    labels = np.zeros(ct.shape, dtype=np.uint8)
    z, y, x = ct.shape
    for index, label in enumerate(ids):
        labels[index::len(ids), y // 4 + 1 : y // 2, x // 4 + 1 : x // 2 + 1] = label
    return ct.with_array(labels)


def write_dicom_series(
    ct: Volume,
    folder: Path,
    intercept: int = -1024,
    series_uid: str = "1.2.826.0.1.3680043.2.1125.8",
    prefix: str = "slice",
    extra_tags: dict[str, str] | None = None,
    sideways_mm: float = 0.0,
    first_instance: int = 1,
) -> None:
    """Write ``ct`` (integer HU) as a CT DICOM series: one file per slice with position, orientation, spacing and rescale tags.

    ``extra_tags`` overrides or adds tags in every file; ``sideways_mm`` shifts each slice's position along the
    column direction by that much per slice (a gantry tilt); ``first_instance`` numbers the slices (and their SOP UIDs).
    """
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(ct.array.astype(np.int16))
    image.SetSpacing(ct.spacing)
    image.SetOrigin(ct.origin)
    image.SetDirection(ct.direction)
    d = np.asarray(ct.direction).reshape(3, 3)
    orientation = "\\".join(f"{v:.14g}" for v in (*d[:, 0], *d[:, 1]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        position = np.asarray(image.TransformIndexToPhysicalPoint((0, 0, k))) + d[:, 1] * sideways_mm * k
        tags = {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{series_uid}.9.{k + first_instance}",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.7",
            "0020|000e": series_uid,
            "0020|0052": "1.2.826.0.1.3680043.2.1125.6",
            "0020|0013": str(k + first_instance),
            "0020|0032": "\\".join(f"{v:.10g}" for v in position),
            "0020|0037": orientation,
            "0028|0030": f"{ct.spacing[1]:.10g}\\{ct.spacing[0]:.10g}",
            "0018|0050": f"{ct.spacing[2]:.10g}",
            "0028|1052": str(intercept),
            "0028|1053": "1",
            **(extra_tags or {}),
        }
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{prefix}{k:03d}.dcm"))
        writer.Execute(slice_)


def tree_hash(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` by relative path, plus the set of folders (to detect any change)."""
    hashes = {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}
    hashes.update({p.relative_to(root).as_posix() + "/": "dir" for p in root.rglob("*") if p.is_dir()})
    return hashes
