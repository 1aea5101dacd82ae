"""Organ patches: where to centre 2D axial crops, and cutting them out in one batched gather.

Inference (method.md §1.8): for every axial slice and organ present in the coarse mask, the
organ's slice centroid plus K-1 coarse pixels drawn uniformly with a fixed seed.
Training (§1.1): about 50 centres per organ per volume, spread over the organ's slices.
Centres are (z, y, x) voxel indices; a patch of size S covers rows ``y - S//2 .. y - S//2 + S - 1``.
"""

from __future__ import annotations

import numpy as np
import torch

IMAGE_PAD = -1.0
"""Outside the volume the image reads as air (the lowest normalised value) and the mask as 0."""


def organ_slice_centers(organ_mask: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Deterministic inference centres for one organ: per slice, its centroid plus ``k - 1`` random pixels.

    ``organ_mask`` is a boolean (Z, H, W) or (H, W) array; the result is (N, 3) or (N, 2) int64,
    grouped by slice in increasing z, the centroid (rounded) first in each slice. The random
    pixels are drawn uniformly with replacement from the slice's organ pixels.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    mask3d = organ_mask[None] if organ_mask.ndim == 2 else organ_mask
    coords = np.argwhere(mask3d)  # sorted by z, then y, then x
    if coords.shape[0] == 0:
        return np.zeros((0, organ_mask.ndim), dtype=np.int64)
    slices, starts, counts = np.unique(coords[:, 0], return_index=True, return_counts=True)
    centroid_y = np.add.reduceat(coords[:, 1], starts) / counts
    centroid_x = np.add.reduceat(coords[:, 2], starts) / counts
    centroids = np.stack([slices, np.floor(centroid_y + 0.5), np.floor(centroid_x + 0.5)], axis=1).astype(np.int64)
    per_slice = [centroids[:, None, :]]
    if k > 1:
        draws = np.random.default_rng(seed).random((slices.size, k - 1))
        picks = starts[:, None] + np.minimum((draws * counts[:, None]).astype(np.int64), counts[:, None] - 1)
        per_slice.append(coords[picks].astype(np.int64))
    centers = np.concatenate(per_slice, axis=1).reshape(-1, 3)
    return centers[:, 1:] if organ_mask.ndim == 2 else centers


def training_centers(coarse_mask3d: np.ndarray, organ_label: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` training centres (N, 3) inside ``organ_label`` of a coarse label map, spread evenly over its slices.

    Slices are chosen at evenly spaced ranks among the organ's slices (each slice at most
    ``ceil(n / slices)`` times); within a slice the pixel is uniform. Empty organ -> (0, 3).
    """
    coords = np.argwhere(coarse_mask3d == organ_label)
    if coords.shape[0] == 0 or n <= 0:
        return np.zeros((0, 3), dtype=np.int64)
    slices, starts, counts = np.unique(coords[:, 0], return_index=True, return_counts=True)
    ranks = np.floor((np.arange(n) + rng.random(n)) * slices.size / n).astype(np.int64)
    ranks = np.minimum(ranks, slices.size - 1)
    picks = starts[ranks] + np.minimum((rng.random(n) * counts[ranks]).astype(np.int64), counts[ranks] - 1)
    return coords[picks].astype(np.int64)


def crop_patches(volume: torch.Tensor, centers: torch.Tensor, size: int, pad_value: float) -> torch.Tensor:
    """(N, size, size) axial crops of a (Z, H, W) tensor around ``centers`` (N, 3) [z, y, x], padded outside.

    One gather for all patches: only the slices the centres use are padded (``size // 2`` each side).
    """
    centers = centers.to(device=volume.device, dtype=torch.long)
    if centers.shape[0] == 0:
        return volume.new_zeros((0, size, size))
    half = size // 2
    used, slice_index = torch.unique(centers[:, 0], return_inverse=True)
    slab = volume.index_select(0, used)
    padded = torch.nn.functional.pad(slab, (half, half, half, half), value=pad_value)
    offsets = torch.arange(size, device=volume.device)
    rows = (centers[:, 1, None] + offsets)[:, :, None]  # padded row = y - half + i + half
    cols = (centers[:, 2, None] + offsets)[:, None, :]
    return padded[slice_index[:, None, None], rows, cols]


def extract_patches(
    image: torch.Tensor,
    mask: torch.Tensor,
    centers: torch.Tensor,
    size: int = 128,
    organ_labels: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image and binary mask crops (N, size, size) around ``centers``.

    ``mask`` is a binary (Z, H, W) organ mask, or with ``organ_labels`` (N,) a label map whose
    patch n keeps only organ ``organ_labels[n]``. Image padding is ``IMAGE_PAD``, mask padding 0.
    """
    image_patches = crop_patches(image, centers, size, IMAGE_PAD)
    mask_patches = crop_patches(mask, centers, size, 0)
    if organ_labels is not None:
        mask_patches = mask_patches == organ_labels.to(mask_patches.device, mask_patches.dtype)[:, None, None]
    return image_patches, mask_patches.to(image_patches.dtype)
