"""Training augmentations: contrast-phase changes (in HU) and batched random affine/elastic warps (on the device).

Phase augmentation moves the HU inside the organ masks from the case's phase to another one
(``dccseg.phantoms.simulate_phase``), so a model trained on non-contrast CT also sees arterial,
portal-venous and delayed contrast. A case whose phase is ``unknown`` gets it guessed first.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from dccseg.phantoms import simulate_phase
from dccseg.phase_guess import guess_phase
from dccseg.volume import Volume

KNOWN_PHASES = ("non-contrast", "arterial", "portal-venous", "delayed")


def source_phase(ct: Volume, labels: Volume, phase: str) -> str:
    """The case's phase, guessed from organ HU when the dataset says ``unknown``."""
    return phase if phase in KNOWN_PHASES else str(guess_phase(ct, labels)[0])


def random_phase(ct: Volume, labels: Volume, phase: str, rng: np.random.Generator, probability: float) -> Volume:
    """With ``probability``, the CT re-rendered in another, random contrast phase; else the CT itself."""
    if probability <= 0 or phase not in KNOWN_PHASES or rng.random() >= probability:
        return ct
    target = str(rng.choice([p for p in KNOWN_PHASES if p != phase]))
    return simulate_phase(ct, labels, phase, target, int(rng.integers(2**31)))


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """(B, 3) angles in radians -> (B, 3, 3) rotation matrices Rz @ Ry @ Rx."""
    cx, cy, cz = torch.cos(angles).unbind(1)
    sx, sy, sz = torch.sin(angles).unbind(1)
    one, zero = torch.ones_like(cx), torch.zeros_like(cx)
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], 1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def random_warp(image: torch.Tensor, labels: torch.Tensor, generator: torch.Generator, rotate_degrees: float, scale_range: float, elastic_voxels: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp (B, 1, D, H, W) images (linear) and integer labels (nearest) with one random draw per sample.

    Rotation up to ``rotate_degrees`` about each axis, per-axis scaling within 1 +- ``scale_range``,
    and a smooth elastic displacement of up to about ``elastic_voxels`` voxels. The draw comes from
    ``generator`` (CPU), so it is reproducible whatever the device.
    """
    batch, size = image.shape[0], image.shape[2:]
    angles = (torch.rand(batch, 3, generator=generator) * 2 - 1) * math.radians(rotate_degrees)
    scales = 1 + (torch.rand(batch, 3, generator=generator) * 2 - 1) * scale_range
    matrix = _rotation(angles) * scales[:, None, :]
    theta = torch.cat([matrix, torch.zeros(batch, 3, 1)], dim=2).to(image.device, image.dtype)
    grid = F.affine_grid(theta, [batch, 1, *size], align_corners=False)
    if elastic_voxels > 0:
        coarse = (torch.rand(batch, 3, 4, 4, 4, generator=generator) * 2 - 1).to(image.device, image.dtype)
        field = F.interpolate(coarse, size=tuple(size), mode="trilinear", align_corners=True)
        voxel = torch.tensor([2.0 / size[2], 2.0 / size[1], 2.0 / size[0]], device=image.device, dtype=image.dtype)
        grid = grid + field.permute(0, 2, 3, 4, 1) * voxel * elastic_voxels
    warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    warped_labels = F.grid_sample(labels.to(image.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return warped, warped_labels.round().long()


def random_intensity(image: torch.Tensor, generator: torch.Generator, scale: float = 0.1, shift: float = 0.1) -> torch.Tensor:
    """A small random contrast/brightness change per sample, for images normalised to [-1, 1]."""
    shape = (image.shape[0],) + (1,) * (image.ndim - 1)
    a = 1 + (torch.rand(shape, generator=generator) * 2 - 1) * scale
    b = (torch.rand(shape, generator=generator) * 2 - 1) * shift
    return (image * a.to(image) + b.to(image)).clamp(-1.0, 1.0)
