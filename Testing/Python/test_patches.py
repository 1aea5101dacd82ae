"""Patch centres (inference and training) and batched crops, on hand-checkable cases."""

import numpy as np
import torch

from dccseg.patches import IMAGE_PAD, crop_patches, extract_patches, organ_slice_centers, training_centers


def _organ_mask() -> np.ndarray:
    mask = np.zeros((4, 10, 10), dtype=bool)
    mask[1, 2:5, 3:8] = True  # centroid (3, 5)
    mask[2, 6, 1] = True  # single pixel
    mask[2, 7, 1] = True  # two pixels: centroid (6.5, 1) rounds half up to (7, 1)
    return mask


def test_inference_centers_are_centroid_plus_uniform_pixels_per_slice():
    mask = _organ_mask()
    centers = organ_slice_centers(mask, k=5, seed=3)
    assert centers.shape == (10, 3) and centers.dtype == np.int64
    assert centers[:5, 0].tolist() == [1] * 5 and centers[5:, 0].tolist() == [2] * 5
    assert centers[0].tolist() == [1, 3, 5]
    assert centers[5].tolist() == [2, 7, 1]
    assert all(mask[tuple(c)] for c in centers[1:5]) and all(mask[tuple(c)] for c in centers[6:])


def test_inference_centers_are_deterministic_and_k1_is_centroid_only():
    mask = np.random.default_rng(0).random((6, 20, 20)) > 0.7
    a = organ_slice_centers(mask, k=5, seed=11)
    assert np.array_equal(a, organ_slice_centers(mask, k=5, seed=11))
    assert not np.array_equal(a, organ_slice_centers(mask, k=5, seed=12))
    fast = organ_slice_centers(mask, k=1, seed=11)
    assert np.array_equal(fast, a.reshape(6, 5, 3)[:, 0])


def test_inference_centers_of_a_2d_mask_and_of_an_empty_mask():
    mask2d = np.zeros((5, 5), dtype=bool)
    mask2d[1:4, 1:4] = True
    centers = organ_slice_centers(mask2d, k=3)
    assert centers.shape == (3, 2) and centers[0].tolist() == [2, 2]
    assert organ_slice_centers(np.zeros((2, 3, 3), dtype=bool), k=5).shape == (0, 3)


def test_training_centers_lie_in_the_organ_and_cover_its_slices():
    labels = np.zeros((20, 8, 8), dtype=np.uint8)
    labels[5:15, 2:6, 2:6] = 6
    labels[0:3, 0, 0] = 1
    centers = training_centers(labels, 6, 50, np.random.default_rng(0))
    assert centers.shape == (50, 3)
    assert np.all(labels[centers[:, 0], centers[:, 1], centers[:, 2]] == 6)
    counts = np.bincount(centers[:, 0], minlength=20)[5:15]
    assert counts.min() >= 4 and counts.max() <= 6  # 50 centres over 10 slices: evenly spread
    assert training_centers(labels, 2, 50, np.random.default_rng(0)).shape == (0, 3)


def test_crop_patches_gathers_and_pads():
    volume = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(2, 4, 5)
    centers = torch.tensor([[1, 0, 0], [0, 2, 2], [1, 3, 4]])
    patches = crop_patches(volume, centers, 3, pad_value=-7.0)
    assert patches.shape == (3, 3, 3)
    assert patches[0].tolist() == [[-7, -7, -7], [-7, 20, 21], [-7, 25, 26]]
    assert torch.equal(patches[1], volume[0, 1:4, 1:4])
    assert patches[2].tolist() == [[33, 34, -7], [38, 39, -7], [-7, -7, -7]]


def test_even_patch_is_placed_with_its_centre_at_size_over_two():
    volume = torch.zeros(1, 9, 9)
    volume[0, 4, 4] = 1.0
    patch = crop_patches(volume, torch.tensor([[0, 4, 4]]), 4, 0.0)[0]
    assert patch[2, 2] == 1.0 and patch.sum() == 1.0


def test_extract_patches_with_a_label_map_keeps_each_patch_organ():
    image = torch.zeros(1, 6, 6)
    labels = torch.zeros(1, 6, 6, dtype=torch.uint8)
    labels[0, 1, 1] = 1
    labels[0, 1, 2] = 2
    centers = torch.tensor([[0, 1, 1], [0, 1, 2]])
    img, mask = extract_patches(image, labels, centers, size=4, organ_labels=torch.tensor([1, 2]))
    assert img.dtype == torch.float32 and mask.dtype == torch.float32
    assert img[0, 0, 0] == IMAGE_PAD and img[0, 2, 2] == 0.0
    assert mask[0].sum() == 1 and mask[0, 2, 2] == 1
    assert mask[1].sum() == 1 and mask[1, 2, 2] == 1 and mask[1, 2, 1] == 0
