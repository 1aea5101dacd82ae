"""DCC weights from organ intensity and the positive masks (method.md §1.4, §2, T10, T11)."""

import itertools

import pytest
import torch

from dccseg.losses import agcl_labels, dcc_weights, label_positives, legacy_dcc_weights, mean_mask_intensity, simclr_positives

PAPER_PV, PAPER_NC, PAPER_ORGANS = 0, 1, 12


def views_with_means(means: list[float | None], channels: int = 3, size: int = 8, organ_px: int = 5):
    """Views whose organ square has the given intensity; None means the crop lost the organ."""
    image = torch.full((len(means), channels, size, size), -0.3)
    mask = torch.zeros(len(means), channels, size, size)
    for view, mean in enumerate(means):
        if mean is not None:
            image[view, :, :organ_px, :organ_px] = mean
            mask[view, :, :organ_px, :organ_px] = 1
    return image, mask


def test_t11_constant_organ_intensity_gives_that_d_and_channel_replication_does_not_matter():
    image, mask = views_with_means([0.25, -0.75])
    d, valid = mean_mask_intensity(image, mask)
    assert torch.allclose(d, torch.tensor([0.25, -0.75]))
    assert valid.all()
    d_single, _ = mean_mask_intensity(image[:, 0], mask[:, 0])
    assert torch.equal(d, d_single)


def test_t11_empty_mask_gives_unit_weights_and_clamps_large_differences():
    image, mask = views_with_means([0.2, -0.5, None, 0.9, None, -0.8])
    weights = dcc_weights(image, mask)
    d, valid = mean_mask_intensity(image, mask)
    assert valid.tolist() == [True, True, False, True, False, True]
    assert 1 - valid.float().mean().item() == pytest.approx(1 / 3)
    assert torch.equal(weights[2], torch.ones(6)) and torch.equal(weights[:, 4], torch.ones(6))
    assert weights[3, 5].item() == 0.0  # 1 - 1.7 clamped
    assert weights[0, 3].item() == pytest.approx(0.3, abs=1e-6)
    assert weights.min().item() >= 0.0 and torch.equal(weights.diagonal(), torch.ones(6))


def test_t11_min_mask_px_and_v_scale():
    image, mask = views_with_means([0.1, 0.5], organ_px=3)  # 9 pixels
    assert dcc_weights(image, mask, min_mask_px=16)[0, 1].item() == 1.0
    assert dcc_weights(image, mask, min_mask_px=9)[0, 1].item() == pytest.approx(0.6, abs=1e-6)
    assert dcc_weights(image, mask, min_mask_px=9, v_scale=2.0)[0, 1].item() == pytest.approx(0.2, abs=1e-6)


def naive_fixed_weights(image: torch.Tensor, mask: torch.Tensor, min_mask_px: int, v_scale: float) -> torch.Tensor:
    """Pixel-by-pixel loop over the fixed semantics, for comparison with the vectorised code."""
    n_views = image.shape[0]
    means, valid = [], []
    for view in range(n_views):
        values = [image[view, 0, y, x].item() for y, x in itertools.product(range(image.shape[2]), range(image.shape[3])) if mask[view, 0, y, x] == 1]
        means.append(sum(values) / len(values) if values else 0.0)
        valid.append(len(values) >= min_mask_px)
    weights = torch.ones(n_views, n_views)
    for a, b in itertools.product(range(n_views), repeat=2):
        if a != b and valid[a] and valid[b]:
            weights[a, b] = min(1.0, max(0.0, 1.0 - v_scale * abs(means[a] - means[b])))
    return weights


def test_t11_vectorised_weights_match_a_naive_loop():
    generator = torch.Generator().manual_seed(11)
    image = torch.rand(8, 1, 9, 9, generator=generator) * 2 - 1
    mask = (torch.rand(8, 1, 9, 9, generator=generator) < torch.linspace(0.05, 0.9, 8)[:, None, None, None]).float()
    mask[3] = 0
    for v_scale in (1.0, 1.7):
        expected = naive_fixed_weights(image, mask, 16, v_scale)
        assert torch.allclose(dcc_weights(image, mask, v_scale=v_scale), expected, atol=1e-6)


def test_t11_legacy_weights_reproduce_the_released_loop_quirks():
    means = [0.2, -0.5, None, 0.9, None, -0.8]  # patch 2 lost view 1, patch 1 lost view 2
    image, mask = views_with_means(means)
    anchors = [m if m is not None else 0.0 for m in means]
    expected = torch.tensor([[1 - abs(a - 0.2), 1, 1, 1 - abs(a - 0.9), 1, 1 - abs(a + 0.8)] for a in anchors])
    weights = dcc_weights(image, mask, legacy=True)
    assert torch.allclose(weights, expected, atol=1e-6)
    assert weights[1, 1].item() == 1.0  # view-2 bug wrote v = 0 over the valid view-1 column 1 ...
    assert weights[0, 4].item() == 1.0  # ... and left column j + n at its initial 0
    assert weights[2, 0].item() == pytest.approx(0.8, abs=1e-6)  # empty anchor acts as d = 0
    assert weights[3, 5].item() == pytest.approx(-0.7, abs=1e-6)  # unclamped


def test_legacy_equals_fixed_when_no_view_is_empty_and_differences_stay_below_one():
    generator = torch.Generator().manual_seed(12)
    means = (torch.rand(6, generator=generator) * 0.9 + 0.05).tolist()
    image, mask = views_with_means(means)
    assert torch.allclose(legacy_dcc_weights(image, mask), dcc_weights(image, mask), atol=1e-6)


@pytest.mark.parametrize(
    ("image", "mask", "message"),
    [
        (torch.zeros(4, 3, 8, 8), torch.full((4, 3, 8, 8), 255.0), "binary"),
        (torch.full((4, 3, 8, 8), 100.0), torch.ones(4, 3, 8, 8), r"\[-1, 1\]"),
        (torch.zeros(3, 3, 8, 8), torch.ones(3, 3, 8, 8), "even"),
        (torch.zeros(4, 3, 8, 8), torch.ones(4, 3, 7, 8), "same views and size"),
        (torch.zeros(4, 3, 8, 8), torch.ones(4, 2, 8, 8), "channels"),
    ],
)
def test_bad_views_raise_clear_errors(image, mask, message):
    with pytest.raises(ValueError, match=message):
        dcc_weights(image, mask)


@pytest.mark.parametrize(("options", "message"), [({"v_scale": -1.0}, "v_scale"), ({"min_mask_px": 0}, "min_mask_px"), ({"v_scale": -1.0, "legacy": True}, "v_scale")])
def test_bad_weight_options_raise_clear_errors(options, message):
    image, mask = views_with_means([0.1, 0.2])
    with pytest.raises(ValueError, match=message):
        dcc_weights(image, mask, **options)


def test_simclr_positives_pair_each_view_with_its_partner():
    positives = simclr_positives(3)
    assert positives.sum().item() == 6 and not positives.diagonal().any()
    assert all(positives[a, (a + 3) % 6] for a in range(6))


def test_t10_agcl_label_map_of_the_paper():
    organ = torch.arange(12).repeat(2)
    phase = torch.tensor([PAPER_PV] * 12 + [PAPER_NC] * 12)
    labels = agcl_labels(organ, phase, PAPER_ORGANS)
    assert labels.tolist() == list(range(12)) + [12 + k for k in range(12)]


def test_t10_agcl_positives_match_brute_force_enumeration():
    generator = torch.Generator().manual_seed(10)
    organ = torch.randint(0, 3, (10,), generator=generator)
    phase = torch.randint(0, 2, (10,), generator=generator)
    positives = label_positives(agcl_labels(organ, phase, PAPER_ORGANS))
    view_organ, view_phase = organ.repeat(2), phase.repeat(2)
    for a, b in itertools.product(range(20), repeat=2):
        same = view_organ[a] == view_organ[b] and view_phase[a] == view_phase[b]
        assert positives[a, b].item() == (a != b and bool(same))
    assert positives[torch.arange(20), (torch.arange(20) + 10) % 20].all()


def test_agcl_labels_reject_out_of_range_organs():
    with pytest.raises(ValueError, match="organ indices"):
        agcl_labels(torch.tensor([12]), torch.tensor([0]), PAPER_ORGANS)
