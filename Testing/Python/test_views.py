"""Two-view augmentation for pretraining (method.md §1.3, pitfall 9 / T15)."""

import math

import numpy as np
import pytest
import torch

from dccseg.training.views import IMAGE_FILL, ViewConfig, ViewDraw, apply_intensity_jitter, draw_views, two_views, warp_views


def blob_masks(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """n random binary masks with a few rectangles each."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=np.float32)
    for i in range(n):
        for _ in range(3):
            y, x = rng.integers(0, size - 6, 2)
            h, w = rng.integers(3, size // 2, 2)
            masks[i, y : y + h, x : x + w] = 1
    return torch.from_numpy(masks)


def fixed_draw(n: int, angle: float = 0.0, flip: bool = False, half: float = 1.0) -> ViewDraw:
    return ViewDraw(torch.zeros(n, 2), torch.full((n, 2), half), torch.full((n,), angle), torch.full((n,), flip))


def test_mask_shaped_image_warps_to_the_warped_mask():
    """T15: image and mask share the geometric draw, so a mask-shaped image lands exactly on the warped mask."""
    masks = blob_masks(6, 32)
    image = masks * 2 - 1  # organ 1, background -1 (= the fill value)
    draw = draw_views(6, ViewConfig(size=32), torch.Generator().manual_seed(3))
    warped_image, warped_mask = warp_views(image[:, None], masks, draw, 32, image_mode="nearest")
    assert torch.equal(warped_image[:, 0], warped_mask * 2 - 1)
    assert warped_mask.sum() > 0
    bilinear, same_mask = warp_views(image[:, None], masks, draw, 32)
    assert torch.equal(same_mask, warped_mask)
    agreement = ((bilinear[:, 0] > 0) == (warped_mask > 0.5)).float().mean()
    assert agreement > 0.95


def test_identity_flip_and_quarter_turn_are_exact():
    image = torch.rand(2, 1, 16, 16) * 2 - 1
    mask = blob_masks(2, 16, seed=1)
    same, same_mask = warp_views(image, mask, fixed_draw(2), 16)
    assert torch.allclose(same, image, atol=1e-6) and torch.equal(same_mask, mask)
    flipped, flipped_mask = warp_views(image, mask, fixed_draw(2, flip=True), 16)
    assert torch.allclose(flipped, image.flip(-1), atol=1e-6) and torch.equal(flipped_mask, mask.flip(-1))
    turned, turned_mask = warp_views(image, mask, fixed_draw(2, angle=math.pi / 2), 16)
    expected = torch.rot90(image, k=-1, dims=(-2, -1))
    assert torch.allclose(turned, expected, atol=1e-5)
    assert torch.equal(turned_mask, torch.rot90(mask, k=-1, dims=(-2, -1)))


def test_rotation_fills_air_and_empty_mask_outside_the_crop():
    image = torch.full((1, 1, 32, 32), 0.5)
    mask = torch.ones(1, 32, 32)
    view, view_mask = warp_views(image, mask, fixed_draw(1, angle=math.radians(30)), 32)
    assert view[0, 0, 0, 0] == IMAGE_FILL and view_mask[0, 0, 0] == 0
    assert view[0, 0, 16, 16] == pytest.approx(0.5) and view_mask[0, 16, 16] == 1
    assert torch.equal(view[0, 0] == IMAGE_FILL, view_mask[0] == 0)


def test_draws_follow_the_paper_ranges_and_are_reproducible():
    config = ViewConfig(size=64)
    draw = draw_views(4000, config, torch.Generator().manual_seed(0))
    area = draw.half[:, 0] * draw.half[:, 1]
    aspect = draw.half[:, 0] / draw.half[:, 1]
    assert area.min() >= 0.3 - 1e-6 and area.max() <= 0.7 + 1e-6
    assert aspect.min() >= 0.75 - 1e-5 and aspect.max() <= 4 / 3 + 1e-5
    assert draw.angle.abs().max() <= math.radians(30) + 1e-6
    assert 0.45 < draw.flip.float().mean() < 0.55
    assert ((draw.center.abs() + draw.half) <= 1 + 1e-6).all()  # the crop stays inside the patch
    again = draw_views(4000, config, torch.Generator().manual_seed(0))
    assert torch.equal(again.center, draw.center) and torch.equal(again.angle, draw.angle)


def test_two_views_per_patch_differ_and_keep_the_order():
    images = torch.rand(3, 2, 32, 32) * 2 - 1
    masks = blob_masks(3, 32, seed=2)
    views, view_masks = two_views(images, masks, ViewConfig(size=32), torch.Generator().manual_seed(5))
    assert views.shape == (6, 2, 32, 32) and view_masks.shape == (6, 32, 32)
    assert not torch.equal(views[:3], views[3:])
    assert views.min() >= -1 and views.max() <= 1


def test_intensity_jitter_leaves_the_range_and_is_off_by_default():
    image = torch.rand(4, 16, 16) * 2 - 1
    assert apply_intensity_jitter(image, 0.0, torch.Generator()) is image
    jittered = apply_intensity_jitter(image, 0.3, torch.Generator().manual_seed(1))
    assert not torch.equal(jittered, image) and jittered.abs().max() <= 1
