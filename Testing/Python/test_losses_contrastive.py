"""Reference values and properties of the shared contrastive loss (method.md §3, T1-T9, T12)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dccseg.losses import contrastive_loss, dcc_weights, label_positives, simclr_positives


def unit(rows) -> torch.Tensor:
    return F.normalize(torch.as_tensor(np.asarray(rows), dtype=torch.float64), dim=1)


def seeded_example() -> torch.Tensor:
    """T1's example: numpy default_rng(0) standard normal, n = 4 patches, D = 16, rows normalised."""
    return unit(np.random.default_rng(0).standard_normal((8, 16)))


def random_weights(n_views: int, generator: torch.Generator) -> torch.Tensor:
    w = torch.rand(n_views, n_views, generator=generator, dtype=torch.float64)
    return (w + w.T) / 2


def numpy_nt_xent(z: np.ndarray, tau: float) -> float:
    """Textbook NT-Xent, written independently of the package."""
    n_views = z.shape[0]
    partner = (np.arange(n_views) + n_views // 2) % n_views
    logits = z @ z.T / tau
    total = 0.0
    for a in range(n_views):
        others = [b for b in range(n_views) if b != a]
        total += -logits[a, partner[a]] + math.log(sum(math.exp(logits[a, b]) for b in others))
    return total / n_views


def test_t1_unit_weights_reduce_both_forms_to_simclr():
    z = seeded_example()
    positives = simclr_positives(4)
    expected = 8.068606
    assert numpy_nt_xent(z.numpy(), 0.07) == pytest.approx(expected, abs=1e-5)
    for form in ("paper", "code"):
        assert contrastive_loss(z, positives, torch.ones(8, 8, dtype=torch.float64), form=form).item() == pytest.approx(expected, abs=1e-5)
    assert contrastive_loss(z, positives).item() == pytest.approx(expected, abs=1e-5)
    assert contrastive_loss(z, label_positives(torch.arange(4))).item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(("tau", "expected"), [(1.0, 0.5514447), (0.5, 0.2395448)])
def test_t2_orthogonal_identical_views(tau, expected):
    z = unit([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]])
    for form in ("paper", "code"):
        assert contrastive_loss(z, simclr_positives(2), temperature=tau, form=form).item() == pytest.approx(expected, abs=1e-6)


def t3_embeddings() -> torch.Tensor:
    c, s = math.cos(math.pi / 3), math.sin(math.pi / 3)
    return unit([[1, 0], [c, s], [1, 0], [c, s]])


@pytest.mark.parametrize(("form", "expected"), [("paper", 0.6897266), ("code", 0.9089182)])
def test_t3_dcc_hand_example(form, expected):
    z = t3_embeddings()
    weights = torch.tensor([[1, 0.6, 1, 0.6], [0.6, 1, 0.6, 1], [1, 0.6, 1, 0.6], [0.6, 1, 0.6, 1]], dtype=torch.float64)
    value = contrastive_loss(z, simclr_positives(2), weights, temperature=1.0, form=form)
    assert value.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("form", "expected"), [("paper", 0.6897266), ("code", 0.9089182)])
def test_t3_with_weights_from_organ_intensity(form, expected):
    d = torch.tensor([0.0, 0.4, 0.0, 0.4])
    image = d[:, None, None, None].expand(4, 3, 8, 8).clone()
    mask = torch.ones(4, 1, 8, 8)
    weights = dcc_weights(image, mask).double()
    value = contrastive_loss(t3_embeddings(), simclr_positives(2), weights, temperature=1.0, form=form)
    assert value.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("c", [0.25, 0.5, 0.8])
def test_t4_constant_weight_is_a_temperature_change_in_paper_form_only(c):
    z, positives, tau = seeded_example(), simclr_positives(4), 0.07
    weights = torch.full((8, 8), c, dtype=torch.float64)
    simclr_at_scaled_tau = contrastive_loss(z, positives, temperature=tau / c)
    paper = contrastive_loss(z, positives, weights, temperature=tau, base_temperature=tau)
    code = contrastive_loss(z, positives, weights, temperature=tau, form="code")
    assert paper.item() == pytest.approx(simclr_at_scaled_tau.item(), abs=1e-10)
    assert abs(code.item() - simclr_at_scaled_tau.item()) > 1e-2


def test_t5_code_form_bounds_simclr_and_is_monotone_in_negative_weights():
    generator = torch.Generator().manual_seed(5)
    z, positives = seeded_example(), simclr_positives(4)
    simclr = contrastive_loss(z, positives, temperature=0.1).item()
    for _ in range(200):
        weights = torch.rand(8, 8, generator=generator, dtype=torch.float64)
        assert contrastive_loss(z, positives, weights, temperature=0.1, form="code").item() >= simclr - 1e-12
    weights = random_weights(8, generator)
    base = contrastive_loss(z, positives, weights, temperature=0.1, form="code").item()
    for a, b in [(0, 1), (2, 7), (5, 3)]:
        raised = weights.clone()
        raised[a, b] = min(1.0, raised[a, b].item() + 0.3)
        assert contrastive_loss(z, positives, raised, temperature=0.1, form="code").item() <= base + 1e-12


def test_t6_code_form_is_paper_form_with_a_distance_bias():
    generator = torch.Generator().manual_seed(6)
    z, positives, tau, tau_b = seeded_example(), simclr_positives(4), 0.2, 0.07
    weights = random_weights(8, generator)
    sim = z @ z.T
    partner = positives.double().argmax(dim=1)
    logits = (weights * sim - weights).masked_fill(torch.eye(8, dtype=torch.bool), float("-inf")) / tau
    rows = torch.arange(8)
    expected = (tau / tau_b) * (-(sim[rows, partner] - 1) / tau + torch.logsumexp(logits, dim=1)).mean()
    value = contrastive_loss(z, positives, weights, temperature=tau, base_temperature=tau_b, form="code")
    assert abs(value.item() - expected.item()) < 1e-12


@pytest.mark.parametrize("form", ["paper", "code"])
def test_t7_patch_permutation_and_view_swap_invariance(form):
    generator = torch.Generator().manual_seed(7)
    z = seeded_example()
    image = torch.rand(8, 1, 6, 6, generator=generator) * 2 - 1
    mask = torch.ones(8, 1, 6, 6)
    positives = simclr_positives(4)
    value = contrastive_loss(z, positives, dcc_weights(image, mask).double(), form=form)
    perm = torch.tensor([2, 0, 3, 1])
    for order in (torch.cat([perm, perm + 4]), torch.cat([torch.arange(4, 8), torch.arange(4)])):
        moved = contrastive_loss(z[order], positives, dcc_weights(image[order], mask[order]).double(), form=form)
        assert abs(moved.item() - value.item()) < 1e-12


@pytest.mark.parametrize("form", ["paper", "code"])
def test_t8_gradcheck_float64(form):
    generator = torch.Generator().manual_seed(8)
    z = seeded_example().requires_grad_(True)
    weights = random_weights(8, generator)
    positives = label_positives(torch.tensor([0, 1, 0, 2]))
    assert torch.autograd.gradcheck(
        lambda x: contrastive_loss(x, positives, weights, temperature=0.3, base_temperature=0.07, form=form), (z,)
    )


def test_t8_analytic_paper_gradient_and_signs():
    generator = torch.Generator().manual_seed(9)
    z = seeded_example().requires_grad_(True)
    positives, tau, n_views = simclr_positives(4), 0.1, 8
    weights = random_weights(n_views, generator)
    contrastive_loss(z, positives, weights, temperature=tau).backward()
    with torch.no_grad():
        sim = z @ z.T
        logits = (weights * sim / tau).masked_fill(torch.eye(n_views, dtype=torch.bool), float("-inf"))
        q = torch.softmax(logits, dim=1)
        grad_sim = weights / tau * (q - positives.double()) / n_views
        analytic_sym = grad_sim + grad_sim.T
        autograd_sym = z.grad @ torch.linalg.pinv(z)  # rows of z are independent (D = 16 >= 8)
    assert (autograd_sym - analytic_sym).abs().max().item() < 1e-9
    off_diagonal = ~torch.eye(n_views, dtype=torch.bool)
    assert (autograd_sym[off_diagonal & ~positives] >= -1e-12).all()
    assert (autograd_sym[positives] <= 1e-12).all()


def hobbitlong_supcon(features: torch.Tensor, labels: torch.Tensor, tau: float, tau_b: float) -> torch.Tensor:
    """SupCon L_out with contrast_mode='all', ported from its published description."""
    batch, views = features.shape[:2]
    same = (labels[:, None] == labels[None, :]).double().repeat(views, views)
    contrast = torch.cat(torch.unbind(features, dim=1), dim=0)
    logits = contrast @ contrast.T / tau
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    not_self = 1.0 - torch.eye(batch * views, dtype=torch.float64)
    same = same * not_self
    log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(dim=1, keepdim=True))
    pairs = same.sum(dim=1)
    pairs = torch.where(pairs < 1e-6, torch.ones_like(pairs), pairs)
    mean_log_prob_pos = (same * log_prob).sum(dim=1) / pairs
    return (-(tau / tau_b) * mean_log_prob_pos).view(views, batch).mean()


def test_t9_supcon_unique_labels_is_simclr_and_matches_reference():
    z = seeded_example()
    simclr = contrastive_loss(z, simclr_positives(4), temperature=0.2)
    assert contrastive_loss(z, label_positives(torch.tensor([3, 1, 0, 2])), temperature=0.2).item() == pytest.approx(simclr.item(), abs=1e-12)
    generator = torch.Generator().manual_seed(10)
    for _ in range(5):
        z = F.normalize(torch.randn(12, 32, generator=generator, dtype=torch.float64), dim=1)
        labels = torch.randint(0, 3, (6,), generator=generator)
        features = torch.stack([z[:6], z[6:]], dim=1)
        expected = hobbitlong_supcon(features, labels, 0.1, 0.07)
        value = contrastive_loss(z, label_positives(labels), temperature=0.1, base_temperature=0.07)
        assert value.item() == pytest.approx(expected.item(), abs=1e-10)


def test_anchor_without_positives_contributes_zero():
    z = seeded_example()
    positives = simclr_positives(4)
    positives[0] = False
    total_with_anchor0 = contrastive_loss(z, simclr_positives(4)).item() * 8
    sim = z @ z.T / 0.07
    anchor0 = -sim[0, 4] + torch.logsumexp(sim[0, 1:], dim=0)
    assert contrastive_loss(z, positives).item() == pytest.approx((total_with_anchor0 - anchor0.item()) / 8, abs=1e-10)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("tau", [0.03, 0.05, 0.07])
def test_t12_loss_is_fp32_under_autocast(dtype, tau):
    z = seeded_example().float()
    weights = dcc_weights(torch.rand(8, 1, 6, 6) * 2 - 1, torch.ones(8, 1, 6, 6))
    for form in ("paper", "code"):
        reference = contrastive_loss(z, simclr_positives(4), weights, temperature=tau, form=form)
        with torch.autocast(device_type="cpu", dtype=dtype):
            mixed = contrastive_loss(z, simclr_positives(4), weights, temperature=tau, form=form)
            low_precision_input = contrastive_loss(z.to(dtype), simclr_positives(4), weights, temperature=tau, form=form)
        assert mixed.dtype == torch.float32
        assert abs(mixed.item() - reference.item()) < 1e-4
        assert torch.isfinite(low_precision_input)


def test_negative_weights_are_refused_unless_asked_for():
    z, positives = seeded_example(), simclr_positives(4)
    weights = torch.ones(8, 8, dtype=torch.float64)
    weights[0, 1] = -0.5
    with pytest.raises(ValueError, match="negative"):
        contrastive_loss(z, positives, weights, form="code")
    assert torch.isfinite(contrastive_loss(z, positives, weights, form="code", allow_negative_weights=True))


def test_weights_get_no_gradient():
    z = seeded_example().requires_grad_(True)
    weights = torch.full((8, 8), 0.5, dtype=torch.float64, requires_grad=True)
    contrastive_loss(z, simclr_positives(4), weights).backward()
    assert weights.grad is None and z.grad is not None


def test_single_patch_batch_is_zero_for_simclr():
    z = unit([[1.0, 0.0], [0.6, 0.8]])
    assert contrastive_loss(z, simclr_positives(1)).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"z": torch.ones(3, 4) / 2}, "even number"),
        ({"z": torch.ones(4, 4)}, "L2-normalised"),
        ({"positives": torch.eye(4, dtype=torch.bool)}, "diagonal"),
        ({"positives": simclr_positives(2).float()}, "boolean"),
        ({"positives": simclr_positives(3)}, "shape"),
        ({"weights": torch.ones(4, 3)}, "shape"),
        ({"weights": torch.full((4, 4), float("nan"))}, "finite"),
        ({"form": "sum"}, "form"),
        ({"temperature": 0.0}, "temperature"),
        ({"base_temperature": -1.0}, "base_temperature"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, message):
    arguments = {"z": torch.ones(4, 4) / 2, "positives": simclr_positives(2)} | kwargs
    with pytest.raises(ValueError, match=message):
        contrastive_loss(**arguments)
