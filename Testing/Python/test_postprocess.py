"""One connected piece per compact organ: the largest stays, stray fragments go, other organs are untouched."""

import numpy as np

from dccseg.postprocess import keep_largest_components


def test_only_the_largest_piece_of_each_organ_stays():
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[1:4, 1:4, 1:4] = 6  # 27 voxels
    labels[7:9, 7:9, 7:9] = 6  # 8 voxels, a stray fragment
    labels[5, 5, 5] = 2  # a single-voxel organ, its only piece
    labels[4, 4, 4] = 6  # touches the big piece only diagonally: 26-connected, so it stays
    out = keep_largest_components(labels.copy())
    assert np.count_nonzero(out == 6) == 28
    assert not out[7:9, 7:9, 7:9].any()
    assert out[5, 5, 5] == 2


def test_empty_labels_are_left_alone():
    labels = np.zeros((4, 4, 4), dtype=np.uint8)
    assert not keep_largest_components(labels).any()


def test_pancreas_and_portal_vein_keep_their_pieces():
    labels = np.zeros((10, 10, 10), dtype=np.uint8)
    labels[1:3, 1:3, 1:3] = 11
    labels[6:9, 6:9, 6:9] = 11
    labels[1:3, 6:9, 6:9] = 10
    labels[6:8, 1:3, 1:3] = 10
    assert np.array_equal(keep_largest_components(labels.copy()), labels)
