"""The contrastive loss shared by SimCLR, SupCon, AGCL and DCC-CL (method.md §1.5 and §2).

One formula covers every pretraining baseline; only the positive mask, the pair weights and the
form change::

    L = (tau / tau_b) * mean_a [ -(1/|P_a|) * sum_{p in P_a} num_ap + LSE_{b != a} den_ab ]

    form "paper": num_ab = W_ab S_ab / tau        den_ab = W_ab S_ab / tau
    form "code":  num_ab = (S_ab - 1) / tau       den_ab = W_ab (S_ab - 1) / tau

with S = z z^T. The "paper" form is built as weighted logits with the self-similarity set to
-inf and a log-sum-exp; it never subtracts a row maximum before weighting (that would change the
loss, method.md §3 pitfall 1). Everything is computed in float32 (float64 if z is float64) with
autocast disabled, so fp16/bf16 mixed precision cannot overflow or round the logits.
"""

from __future__ import annotations

import torch

FORMS = ("paper", "code")
_NORM_TOLERANCE = 2e-2


def contrastive_loss(
    z: torch.Tensor,
    positives: torch.Tensor,
    weights: torch.Tensor | None = None,
    temperature: float = 0.07,
    base_temperature: float | None = None,
    form: str = "paper",
    allow_negative_weights: bool = False,
) -> torch.Tensor:
    """Mean contrastive loss over all 2n anchors.

    Args:
        z: (2n, D) L2-normalised embeddings; rows 0..n-1 are view 1, rows n..2n-1 view 2.
        positives: (2n, 2n) boolean mask, ``positives[a, b]`` if b is a positive of anchor a;
            the diagonal must be False. An anchor without positives contributes 0 (it is still
            counted in the mean), like the SupCon reference's divide-by-1 guard.
        weights: (2n, 2n) pair weights W, treated as constants (no gradient flows into them);
            None means all ones (plain SimCLR/SupCon).
        temperature: tau > 0.
        base_temperature: tau_b > 0; None means equal to ``temperature`` (loss scale 1).
        form: "paper" (the paper's Eq. 4) or "code" (the authors' released loss).
        allow_negative_weights: accept W < 0 (only the legacy ``code`` preset needs this; a
            negative weight flips the gradient sign and pulls a negative closer).

    Returns:
        A scalar tensor (float32, or float64 for float64 input).
    """
    n_views = _check_embeddings(z)
    _check_positives(positives, n_views, z.device)
    _check_scalars(temperature, base_temperature, form)
    tau_b = temperature if base_temperature is None else base_temperature
    dtype = torch.float64 if z.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=z.device.type, enabled=False):
        zf = z.to(dtype)
        w = _checked_weights(weights, n_views, dtype, z.device, allow_negative_weights)
        sim = zf @ zf.T
        if form == "paper":
            numerator = w * sim / temperature
            denominator = numerator
        else:
            numerator = (sim - 1.0) / temperature
            denominator = w * numerator
        self_pair = torch.eye(n_views, dtype=torch.bool, device=z.device)
        lse = torch.logsumexp(denominator.masked_fill(self_pair, float("-inf")), dim=1)
        pos = positives.to(dtype)
        log_prob_sum = (pos * (numerator - lse[:, None])).sum(dim=1)
        per_anchor = -log_prob_sum / pos.sum(dim=1).clamp(min=1.0)
        return (temperature / tau_b) * per_anchor.mean()


def _check_embeddings(z: torch.Tensor) -> int:
    if not isinstance(z, torch.Tensor) or z.dim() != 2:
        raise ValueError(f"z must be a (2n, D) tensor of embeddings, got shape {tuple(getattr(z, 'shape', ()))}")
    if not z.is_floating_point():
        raise ValueError(f"z must be a floating-point tensor, got {z.dtype}")
    n_views = z.shape[0]
    if n_views < 2 or n_views % 2:
        raise ValueError(f"z must hold two views per patch (an even number >= 2 of rows), got {n_views} rows")
    with torch.no_grad():
        norms = z.detach().float().norm(dim=1)
        if not torch.isfinite(norms).all() or (norms - 1.0).abs().max() > _NORM_TOLERANCE:
            raise ValueError("z must be L2-normalised row-wise; apply torch.nn.functional.normalize(z, dim=1) first")
    return n_views


def _check_positives(positives: torch.Tensor, n_views: int, device: torch.device) -> None:
    if not isinstance(positives, torch.Tensor) or positives.shape != (n_views, n_views):
        shape = tuple(getattr(positives, "shape", ()))
        raise ValueError(f"positives must be a ({n_views}, {n_views}) boolean mask, got shape {shape}")
    if positives.dtype != torch.bool:
        raise ValueError(f"positives must be a boolean tensor, got {positives.dtype}")
    if positives.device != device:
        raise ValueError(f"positives is on {positives.device} but z is on {device}")
    if positives.diagonal().any():
        raise ValueError("positives must have a False diagonal: an anchor is never its own positive")


def _check_scalars(temperature: float, base_temperature: float | None, form: str) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if base_temperature is not None and not base_temperature > 0:
        raise ValueError(f"base_temperature must be > 0 or None, got {base_temperature}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")


def _checked_weights(
    weights: torch.Tensor | None, n_views: int, dtype: torch.dtype, device: torch.device, allow_negative: bool
) -> torch.Tensor:
    if weights is None:
        return torch.ones(n_views, n_views, dtype=dtype, device=device)
    if not isinstance(weights, torch.Tensor) or weights.shape != (n_views, n_views):
        shape = tuple(getattr(weights, "shape", ()))
        raise ValueError(f"weights must be a ({n_views}, {n_views}) tensor or None, got shape {shape}")
    if weights.device != device:
        raise ValueError(f"weights is on {weights.device} but z is on {device}")
    w = weights.detach().to(dtype)
    if not torch.isfinite(w).all():
        raise ValueError("weights must be finite")
    if not allow_negative and (w < 0).any():
        raise ValueError(
            f"weights has negative entries (min {w.min().item():.4g}); clamp them to [0, 1] "
            "(dcc_weights does) or pass allow_negative_weights=True for the legacy code preset"
        )
    return w
