"""A label map stored in another axis order or direction than its image (LAS against LPS) is reordered, not refused."""

import numpy as np
import pytest

from dccseg.errors import DccsegError
from dccseg.io import read_labelmap, write_image, write_labelmap
from dccseg.preprocess import to_canonical
from dccseg.volume import Volume


def _image() -> Volume:
    rng = np.random.default_rng(0)
    return Volume(rng.integers(0, 5, (6, 7, 8)).astype(np.float32), (0.8, 0.9, 2.0), (10.0, -20.0, 30.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))


def _flipped_y(volume: Volume) -> Volume:
    """The same voxels with the y axis running the other way (the origin moves to the last row)."""
    origin = np.asarray(volume.origin) + np.array([0.0, volume.spacing[1] * (volume.shape[1] - 1), 0.0])
    return Volume(np.ascontiguousarray(volume.array[:, ::-1, :]), volume.spacing, tuple(origin), (1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))


def test_a_label_flipped_in_y_lands_on_the_image_voxels(tmp_path):
    image = _image()
    labels = image.with_array(image.array.astype(np.uint8))
    write_labelmap(_flipped_y(labels), tmp_path / "labels_las.nii.gz")
    read = read_labelmap(tmp_path / "labels_las.nii.gz", reference=image)
    assert read.same_grid(image) and np.array_equal(read.array, labels.array)
    assert to_canonical(read)[0].same_grid(to_canonical(image)[0])


def test_a_label_on_another_grid_is_still_refused(tmp_path):
    image = _image()
    shifted = Volume(image.array.astype(np.uint8), image.spacing, (11.0, -20.0, 30.0), image.direction)
    write_labelmap(shifted, tmp_path / "labels.nii.gz")
    write_image(image, tmp_path / "image.nii.gz")
    with pytest.raises(DccsegError, match="grids differ"):
        read_labelmap(tmp_path / "labels.nii.gz", reference=image)
