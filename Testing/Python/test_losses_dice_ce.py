"""Dice losses (method.md §1.7, T13), the CE baseline and the pretraining-loss registry."""

import pytest
import torch
import torch.nn.functional as F

from dccseg.losses import (
    LOSS_NAMES,
    ClassifierHead,
    PretrainTargets,
    binary_dice_loss,
    build_pretrain_loss,
    coarse_dice_ce_loss,
)

CONFIDENT = 30.0


def confident_logits(foreground: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) logits whose softmax is (almost exactly) the given binary foreground."""
    fg = foreground.float() * 2 - 1
    return torch.stack([-fg, fg], dim=1) * CONFIDENT


def test_t13_perfect_and_fully_wrong_predictions():
    target = torch.zeros(2, 8, 8)
    target[:, 2:5, 2:6] = 1
    assert binary_dice_loss(confident_logits(target), target).item() == pytest.approx(-1.0, abs=1e-6)
    assert binary_dice_loss(confident_logits(1 - target), target).item() == pytest.approx(0.0, abs=1e-6)
    assert binary_dice_loss(confident_logits(target), target, reduction="sample").item() == pytest.approx(-1.0, abs=1e-6)


def test_t13_batch_and_per_sample_reductions_differ_as_expected():
    target = torch.zeros(2, 4, 4)
    target[0, :2, :2] = 1  # 4 px, predicted perfectly
    target[1, 3, 3] = 1  # 1 px, missed
    prediction = target.clone()
    prediction[1] = 0
    logits = confident_logits(prediction)
    assert binary_dice_loss(logits, target).item() == pytest.approx(-8 / 9, abs=1e-6)
    assert binary_dice_loss(logits, target, reduction="sample").item() == pytest.approx(-0.5, abs=1e-6)


def test_dice_matches_its_definition_on_soft_predictions_and_accepts_a_channel_dim():
    generator = torch.Generator().manual_seed(13)
    logits = torch.randn(3, 2, 6, 6, generator=generator)
    target = (torch.rand(3, 6, 6, generator=generator) > 0.5).float()
    p = torch.softmax(logits, dim=1)[:, 1]
    expected = -(2 * (p * target).sum() + 1e-7) / ((p * p).sum() + (target * target).sum() + 1e-7)
    assert binary_dice_loss(logits, target[:, None]).item() == pytest.approx(expected.item(), abs=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        binary_dice_loss(logits, target, reduction="mean")
    with pytest.raises(ValueError, match="2, \\*spatial"):
        binary_dice_loss(logits[:, :1], target)


def test_coarse_dice_ce_rewards_the_right_labels():
    labels = torch.zeros(1, 1, 4, 6, 6, dtype=torch.long)
    labels[..., 1:3, 1:3, 1:3] = 1
    labels[..., 3:, 4:, 4:] = 2
    good = F.one_hot(labels[:, 0], 3).permute(0, 4, 1, 2, 3).float() * 20
    bad = good.roll(1, dims=1)
    loss = coarse_dice_ce_loss()
    assert loss(good, labels).item() < 0.01 < loss(bad, labels).item()


def test_classifier_head_pools_feature_maps():
    head = ClassifierHead(num_classes=5, in_features=8)
    maps = torch.randn(2, 8, 3, 3)
    assert torch.allclose(head(maps), head(maps.mean(dim=(2, 3))))


def pretrain_batch(n: int = 3, spread: float = 0.2):
    generator = torch.Generator().manual_seed(14)
    organ = torch.tensor([0, 5, 0])[:n]
    phase = torch.tensor([0, 1, 2])[:n]
    means = torch.linspace(-spread, spread, 2 * n)
    image = means[:, None, None, None].expand(2 * n, 3, 8, 8).clone()
    mask = torch.ones(2 * n, 3, 8, 8)
    z = F.normalize(torch.randn(2 * n, 16, generator=generator), dim=1)
    return z, PretrainTargets(organ, phase, image, mask)


@pytest.mark.parametrize("name", [name for name in LOSS_NAMES if name != "ce"])
def test_registry_contrastive_losses_run_and_backpropagate(name):
    z, targets = pretrain_batch()
    z.requires_grad_(True)
    loss = build_pretrain_loss(name)
    assert loss.input == "projection"
    value, stats = loss(z, targets)
    value.backward()
    assert torch.isfinite(value) and z.grad is not None
    if name == "dcc":
        assert stats["empty_view_rate"].item() == 0.0


def test_registry_ce_trains_a_head_over_organ_phase_classes():
    _, targets = pretrain_batch()
    loss = build_pretrain_loss("ce", feature_dim=16)
    assert loss.input == "features"
    assert loss.head.linear.out_features == loss.num_organs * 5
    value, stats = loss(torch.randn(6, 16, 4, 4), targets)
    value.backward()
    assert loss.head.linear.weight.grad is not None and 0.0 <= stats["accuracy"].item() <= 1.0


def test_only_the_code_preset_accepts_negative_dcc_weights():
    z, targets = pretrain_batch(spread=0.9)  # |d_a - d_b| up to 1.8
    paper, paper_stats = build_pretrain_loss("dcc")(z, targets)
    code, code_stats = build_pretrain_loss("dcc", preset="code")(z, targets)
    assert paper_stats["weight_min"].item() == 0.0
    assert code_stats["weight_min"].item() == pytest.approx(-0.8, abs=1e-6)
    assert torch.isfinite(paper) and torch.isfinite(code)


def test_registry_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown pretraining loss"):
        build_pretrain_loss("byol")
    with pytest.raises(ValueError, match="preset"):
        build_pretrain_loss("dcc", preset="fast")
