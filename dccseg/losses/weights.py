"""DCC pair weights from mean organ intensity (method.md §1.4).

For each augmented view a, d_a is the mean of the normalised image (in [-1, 1]) over the pixels of
its attention (coarse organ) mask. Two views of similar organ intensity get a weight near 1, two
views of very different intensity a weight near 0: W_ab = clip(1 - v_scale * |d_a - d_b|, 0, 1).
A view whose mask has fewer than ``min_mask_px`` pixels (the crop lost the organ) has no defined d,
so all of its pairs get W = 1, i.e. plain SimCLR for that view.

``legacy=True`` instead reproduces the authors' released double loop, quirks included.
"""

from __future__ import annotations

import numpy as np
import torch

_RANGE_TOLERANCE = 1e-3


def mean_mask_intensity(
    image: torch.Tensor, mask: torch.Tensor, min_mask_px: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean intensity d of each view inside its mask, and whether the mask is large enough.

    Args:
        image: (N, C, H, W) or (N, H, W) views normalised to [-1, 1]; channel 0 is used (the
            channels are identical copies, so d does not depend on the replication).
        mask: (N, C, H, W), (N, 1, H, W) or (N, H, W) binary {0, 1} attention masks; channel 0.
        min_mask_px: masks with fewer pixels are not valid (their d is not used).

    Returns:
        d: (N,) float32 means (0 where the mask is empty); valid: (N,) bool. The fraction of
        invalid views, ``1 - valid.float().mean()``, is the empty-view rate worth logging.
    """
    if min_mask_px < 1:
        raise ValueError(f"min_mask_px must be >= 1, got {min_mask_px}")
    img, msk = _single_channel_views(image, mask)
    with torch.no_grad(), torch.autocast(device_type=img.device.type, enabled=False):
        img = img.float()
        msk = msk.float()
        count = msk.flatten(1).sum(dim=1)
        total = (img * msk).flatten(1).sum(dim=1)
        d = total / count.clamp(min=1.0)
        valid = count >= min_mask_px
    return d, valid


def dcc_weights(
    image: torch.Tensor,
    mask: torch.Tensor,
    min_mask_px: int = 16,
    v_scale: float = 1.0,
    legacy: bool = False,
) -> torch.Tensor:
    """The (N, N) DCC pair weights for N = 2n views (rows/columns ordered like the embeddings).

    Default: W_ab = clip(1 - v_scale * |d_a - d_b|, 0, 1), W_ab = 1 if either view's mask has fewer
    than ``min_mask_px`` pixels, and W_aa = 1. No gradient flows. ``legacy=True`` returns the
    released code's unclamped weights with its loop quirks (see ``legacy_dcc_weights``).
    """
    n_views = image.shape[0] if isinstance(image, torch.Tensor) and image.dim() else 0
    if n_views < 2 or n_views % 2:
        raise ValueError(f"expected two views per patch (an even number >= 2 of views), got {n_views}")
    if legacy:
        return legacy_dcc_weights(image, mask, v_scale)
    d, valid = mean_mask_intensity(image, mask, min_mask_px)
    return weights_from_intensity(d, valid, v_scale)


def weights_from_intensity(d: torch.Tensor, valid: torch.Tensor, v_scale: float = 1.0) -> torch.Tensor:
    """W_ab = clip(1 - v_scale * |d_a - d_b|, 0, 1), 1 where either view is not valid, 1 on the diagonal."""
    _check_v_scale(v_scale)
    with torch.no_grad():
        w = (1.0 - v_scale * (d[:, None] - d[None, :]).abs()).clamp(0.0, 1.0)
        defined = valid[:, None] & valid[None, :]
        w = torch.where(defined, w, torch.ones_like(w))
        w.fill_diagonal_(1.0)
    return w


def legacy_dcc_weights(image: torch.Tensor, mask: torch.Tensor, v_scale: float = 1.0) -> torch.Tensor:
    """The released code's weight loop, reproduced on purpose for regression tests (method.md §1.4).

    Quirks kept: d_a is sum(image * mask) over all channels divided by the count of non-zero
    products, in float32; an empty view (product sums to 0) gets d = 0 as an anchor, so its pairs
    are not neutralised; an empty view-1 column j gets v = 0; an empty view-2 copy of patch j
    writes v = 0 into the view-1 column j and leaves column j + n at 0; the weight 1 - v is
    not clamped and can be negative. ``min_mask_px`` does not apply.
    """
    _check_v_scale(v_scale)
    img, msk = _matched_views(image, mask)
    product = (img.detach().float() * msk.detach().float()).cpu().numpy()
    n_views = product.shape[0]
    n = n_views // 2
    d = [_legacy_mean(product[a]) for a in range(n_views)]
    empty = [d[a] is None for a in range(n_views)]
    v = torch.zeros((n_views, n_views), dtype=torch.float32)
    for i in range(n_views):
        anchor = d[i] if d[i] is not None else 0
        for j in range(n):
            v[i, j] = 0.0 if empty[j] else abs(anchor - d[j])
            if empty[j + n]:
                v[i, j] = 0.0
            else:
                v[i, j + n] = abs(anchor - d[j + n])
    return (1.0 - v_scale * v).to(image.device)


def _check_v_scale(v_scale: float) -> None:
    if not v_scale >= 0:
        raise ValueError(f"v_scale must be >= 0, got {v_scale}")


def _legacy_mean(product: np.ndarray) -> np.floating | None:
    total = np.sum(product)
    if total == 0:
        return None
    return total / np.count_nonzero(product)


def _matched_views(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes and value ranges; return (N, C, H, W) image and (N, 1|C, H, W) mask."""
    if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4):
        raise ValueError("image must be an (N, C, H, W) or (N, H, W) tensor of views")
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (3, 4):
        raise ValueError("mask must be an (N, C, H, W), (N, 1, H, W) or (N, H, W) tensor of views")
    img = image if image.dim() == 4 else image[:, None]
    msk = mask if mask.dim() == 4 else mask[:, None]
    if img.shape[0] != msk.shape[0] or img.shape[-2:] != msk.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)} and mask {tuple(mask.shape)} must have the same views and size")
    if msk.shape[1] not in (1, img.shape[1]):
        raise ValueError(f"mask must have 1 or {img.shape[1]} channels, got {msk.shape[1]}")
    with torch.no_grad():
        if not ((msk == 0) | (msk == 1)).all():
            raise ValueError("mask must be binary {0, 1} (a {0, 255} mask would scale the weights by 255)")
        lo, hi = image.min().item(), image.max().item()
    if lo < -1 - _RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
        raise ValueError(f"image must be normalised to [-1, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return img, msk


def _single_channel_views(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    img, msk = _matched_views(image, mask)
    return img[:, 0], msk[:, 0]
