"""Two augmented views per organ patch for contrastive pretraining (method.md §1.3), batched on the device.

The chain of the authors' code, as one resampling per view: ``RandomResizedCrop(size, scale=(0.3, 0.7),
ratio=(3/4, 4/3))`` -> rotation by U(-30, 30) degrees about the centre -> horizontal flip with p = 0.5.
Image channels and the attention mask share one geometric draw (the same sampling grid): images
are resampled bilinearly, the mask by nearest neighbour. Where the rotation brings in pixels from
outside the crop, the image is filled with -1 (normalised air, the code's fill 0 after
``Normalize(0.5, 0.5)``) and the mask with 0. There is no intensity augmentation, so the mean organ
intensity d of a view (the DCC weight) is computed on the views exactly as they come out of here;
the optional ``intensity_jitter`` of ``apply_intensity_jitter`` is for the network input only,
after d was taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

IMAGE_FILL = -1.0


@dataclass(frozen=True)
class ViewConfig:
    """Augmentation of one view; ``size`` is the output side (the paper: 128, the patch size)."""

    size: int = 128
    scale: tuple[float, float] = (0.3, 0.7)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    degrees: float = 30.0
    flip_probability: float = 0.5
    intensity_jitter: float = 0.0


@dataclass
class ViewDraw:
    """Per-view random parameters (CPU tensors of length N): crop box in normalised input coordinates, angle, flip."""

    center: torch.Tensor  # (N, 2) crop centre (x, y) in [-1, 1]
    half: torch.Tensor  # (N, 2) crop half-extent (x, y) as a fraction of the input's half-extent
    angle: torch.Tensor  # (N,) radians
    flip: torch.Tensor  # (N,) bool


def draw_views(count: int, config: ViewConfig, generator: torch.Generator) -> ViewDraw:
    """Random crop/rotation/flip parameters for ``count`` views, drawn on the CPU (reproducible on any device).

    The crop's area fraction is uniform in ``scale`` and its aspect ratio log-uniform in ``ratio``
    (as torchvision's RandomResizedCrop); a box that does not fit is shrunk to fit the patch,
    keeping its aspect ratio, instead of torchvision's re-draws and centre-crop fallback.
    """
    area = config.scale[0] + (config.scale[1] - config.scale[0]) * torch.rand(count, generator=generator, dtype=torch.float64)
    log_lo, log_hi = math.log(config.ratio[0]), math.log(config.ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(count, generator=generator, dtype=torch.float64))
    width = torch.sqrt(area * aspect)
    height = torch.sqrt(area / aspect)
    shrink = torch.clamp(torch.maximum(width, height), min=1.0)
    width, height = width / shrink, height / shrink
    offset = torch.rand(count, 2, generator=generator, dtype=torch.float64)
    center_x = (2 * offset[:, 0] - 1) * (1 - width)
    center_y = (2 * offset[:, 1] - 1) * (1 - height)
    angle = (2 * torch.rand(count, generator=generator, dtype=torch.float64) - 1) * math.radians(config.degrees)
    flip = torch.rand(count, generator=generator) < config.flip_probability
    return ViewDraw(
        center=torch.stack([center_x, center_y], 1).float(),
        half=torch.stack([width, height], 1).float(),
        angle=angle.float(),
        flip=flip,
    )


def view_grid(draw: ViewDraw, size: int, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampling grids (N, size, size, 2) for ``grid_sample`` and the (N, size, size) bool map of pixels inside the crop.

    Output pixel u (normalised, align_corners=False) is un-flipped, rotated back about the centre,
    then mapped into the crop box: p = centre + half * R(-angle) * flip(u).
    """
    count = draw.angle.shape[0]
    steps = (torch.arange(size, device=device, dtype=torch.float32) * 2 + 1) / size - 1
    uy, ux = torch.meshgrid(steps, steps, indexing="ij")
    ux = ux.expand(count, size, size)
    uy = uy.expand(count, size, size)
    flip = draw.flip.to(device)[:, None, None]
    ux = torch.where(flip, -ux, ux)
    cos = torch.cos(draw.angle).to(device)[:, None, None]
    sin = torch.sin(draw.angle).to(device)[:, None, None]
    rx = cos * ux + sin * uy
    ry = -sin * ux + cos * uy
    inside = (rx.abs() <= 1) & (ry.abs() <= 1)
    center = draw.center.to(device)
    half = draw.half.to(device)
    gx = center[:, 0, None, None] + half[:, 0, None, None] * rx
    gy = center[:, 1, None, None] + half[:, 1, None, None] * ry
    return torch.stack([gx, gy], dim=-1), inside


def warp_views(images: torch.Tensor, mask: torch.Tensor, draw: ViewDraw, size: int, image_mode: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one draw per row: images (N, C, H, W) in [-1, 1] and masks (N, H, W) {0, 1} -> (N, C, size, size), (N, size, size).

    All channels of ``images`` and the mask are sampled on the same grid (pitfall 9: the geometric
    draw is shared); ``image_mode`` is "bilinear" (training) or "nearest" (the sync test).
    """
    grid, inside = view_grid(draw, size, images.device)
    shifted = images.float() - IMAGE_FILL  # so grid_sample's zero padding means air
    warped = F.grid_sample(shifted, grid, mode=image_mode, padding_mode="zeros", align_corners=False) + IMAGE_FILL
    warped = torch.where(inside[:, None], warped, torch.full_like(warped, IMAGE_FILL)).clamp(-1.0, 1.0)
    warped_mask = F.grid_sample(mask[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)[:, 0]
    warped_mask = torch.where(inside, warped_mask, torch.zeros_like(warped_mask))
    return warped, warped_mask


def two_views(images: torch.Tensor, mask: torch.Tensor, config: ViewConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent views of each of n patches: rows 0..n-1 view 1, n..2n-1 view 2 (the loss's order)."""
    count = images.shape[0]
    draw = draw_views(2 * count, config, generator)
    return warp_views(images.repeat(2, 1, 1, 1), mask.repeat(2, 1, 1), draw, config.size)


def apply_intensity_jitter(image: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """A random contrast/brightness change per view (network input only, after d was computed)."""
    if amount <= 0:
        return image
    shape = (image.shape[0],) + (1,) * (image.ndim - 1)
    scale = 1 + (torch.rand(shape, generator=generator) * 2 - 1) * amount
    shift = (torch.rand(shape, generator=generator) * 2 - 1) * amount
    return (image * scale.to(image) + shift.to(image)).clamp(-1.0, 1.0)
