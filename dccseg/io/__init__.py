"""Reading and writing CT volumes, label maps and 3D Slicer segmentations.

Every reader returns a :class:`dccseg.volume.Volume` with the file's full geometry; every
writer goes through :func:`dccseg.fileutil.atomic_output`. Bad input raises a one-line
:class:`dccseg.errors.DccsegError` that says what to do.

The names below load their module (and SimpleITK) on first use, so ``dccseg.io.nifti_direction``
reads NIfTI with nibabel alone where SimpleITK is not installed (the release trainer on a GPU machine).
"""

import importlib
from typing import Any

_MODULE_OF = {
    "check_ct": "ct_check",
    "IMAGE_SUFFIXES": "images",
    "read_image": "images",
    "write_image": "images",
    "LABEL_SUFFIXES": "labels",
    "check_label_ids": "labels",
    "read_labelmap": "label_reading",
    "write_labelmap": "labels",
    "organ_for_name": "organ_names",
    "read_segmentation": "segmentation",
    "write_output": "segmentation",
    "write_segmentation": "segmentation",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF.values():  # a submodule, e.g. ``dccseg.io.images``
        return importlib.import_module(f".{name}", __name__)
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value
