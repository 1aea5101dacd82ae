"""PNG overlays of a labelmap on its CT: axial, coronal and sagittal views side by side."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from .fileutil import atomic_output  # noqa: E402
from .organs import ORGAN_BY_LABEL, ORGANS  # noqa: E402
from .volume import Volume  # noqa: E402

WINDOW = (-175.0, 250.0)


def _to_lps(volume: Volume, is_label: bool) -> np.ndarray:
    """The array reoriented so that x = patient left, y = posterior, z = superior (display order)."""
    image = volume.to_sitk()
    if is_label:
        image = sitk.Cast(image, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(sitk.DICOMOrient(image, "LPS"))


def _colour_lut() -> np.ndarray:
    lut = np.zeros((256, 4), dtype=np.float32)
    for organ in ORGANS:
        lut[organ.label, :3] = organ.color_float
        lut[organ.label, 3] = 0.55
    return lut


def _centre(labels: np.ndarray) -> tuple[int, int, int]:
    """The slice indices through the labelled voxels' centre (the volume centre if there are none)."""
    coords = np.argwhere(labels > 0)
    if len(coords) == 0:
        return tuple(s // 2 for s in labels.shape)  # type: ignore[return-value]
    return tuple(int(v) for v in np.median(coords, axis=0))  # type: ignore[return-value]


def render_overlay(ct: Volume, labels: Volume, path: str | os.PathLike, title: str = "", dpi: int = 80) -> Path:
    """Write a PNG with axial, coronal and sagittal slices of ``ct`` overlaid with ``labels``."""
    image = _to_lps(ct, is_label=False).astype(np.float32)
    label = _to_lps(labels, is_label=True)
    sx, sy, sz = ct.spacing if np.allclose(np.abs(ct.direction), np.eye(3).ravel()) else sorted(ct.spacing)
    cz, cy, cx = _centre(label)
    views = [
        ("axial", image[cz], label[cz], sy / sx),
        ("coronal", image[::-1, cy, :], label[::-1, cy, :], sz / sx),
        ("sagittal", image[::-1, :, cx], label[::-1, :, cx], sz / sy),
    ]
    lut = _colour_lut()
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.5), facecolor="black")
    for axis, (name, grey, lab, aspect) in zip(axes, views):
        axis.imshow(grey, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], aspect=aspect, interpolation="nearest")
        axis.imshow(lut[lab], aspect=aspect, interpolation="nearest")
        axis.set_title(name, color="white")
        axis.axis("off")
    present = [ORGAN_BY_LABEL[v] for v in np.unique(label) if v in ORGAN_BY_LABEL]
    handles = [plt.Rectangle((0, 0), 1, 1, color=o.color_float) for o in present]
    fig.legend(handles, [o.name for o in present], loc="lower center", ncol=7, frameon=False, labelcolor="white")
    if title:
        fig.suptitle(title, color="white")
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, facecolor="black")
    plt.close(fig)
    return Path(path)
