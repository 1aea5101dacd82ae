"""Reading and writing CT volumes, label maps and 3D Slicer segmentations.

Every reader returns a :class:`dccseg.volume.Volume` with the file's full geometry; every
writer goes through :func:`dccseg.fileutil.atomic_output`. Bad input raises a one-line
:class:`dccseg.errors.DccsegError` that says what to do.
"""

from .ct_check import check_ct
from .images import IMAGE_SUFFIXES, read_image, write_image
from .label_reading import read_labelmap
from .labels import LABEL_SUFFIXES, check_label_ids, write_labelmap
from .organ_names import organ_for_name
from .segmentation import read_segmentation, write_output, write_segmentation

__all__ = [
    "IMAGE_SUFFIXES",
    "LABEL_SUFFIXES",
    "check_ct",
    "check_label_ids",
    "organ_for_name",
    "read_image",
    "read_labelmap",
    "read_segmentation",
    "write_image",
    "write_labelmap",
    "write_output",
    "write_segmentation",
]
