"""Positive masks for the contrastive baselines (method.md §2).

Views are ordered like the embeddings: rows 0..n-1 are view 1 of patches 0..n-1, rows n..2n-1
view 2 of the same patches. Labels are given per patch and tiled over the two views.
"""

from __future__ import annotations

import torch


def simclr_positives(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(2n, 2n) mask whose only positive is each view's augmented partner (SimCLR and DCC-CL)."""
    if n < 1:
        raise ValueError(f"n must be >= 1 patch, got {n}")
    index = torch.arange(2 * n, device=device)
    positives = torch.zeros(2 * n, 2 * n, dtype=torch.bool, device=device)
    positives[index, (index + n) % (2 * n)] = True
    return positives


def label_positives(labels: torch.Tensor) -> torch.Tensor:
    """(2n, 2n) mask of same-label pairs (SupCon/AGCL) from (n,) integer labels per patch.

    The partner view always has the same label, so every anchor has at least one positive.
    """
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.numel() < 1:
        raise ValueError("labels must be a non-empty (n,) tensor with one integer label per patch")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    tiled = labels.repeat(2)
    positives = tiled[:, None] == tiled[None, :]
    positives.fill_diagonal_(False)
    return positives


def agcl_labels(organ: torch.Tensor, phase: torch.Tensor, num_organs: int) -> torch.Tensor:
    """AGCL's organ x phase class: ``organ + num_organs * phase`` (both 0-based indices).

    With the paper's 12 organs and phases (portal-venous=0, non-contrast=1), portal-venous organ
    k maps to k and non-contrast organ k to 12 + k.
    """
    if organ.shape != phase.shape:
        raise ValueError(f"organ {tuple(organ.shape)} and phase {tuple(phase.shape)} must have the same shape")
    if num_organs < 1:
        raise ValueError(f"num_organs must be >= 1, got {num_organs}")
    if organ.numel() and (organ.min() < 0 or organ.max() >= num_organs):
        raise ValueError(f"organ indices must lie in [0, {num_organs}), got [{organ.min().item()}, {organ.max().item()}]")
    if phase.numel() and phase.min() < 0:
        raise ValueError(f"phase indices must be >= 0, got {phase.min().item()}")
    return organ.long() + num_organs * phase.long()
