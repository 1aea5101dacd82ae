"""Majority-vote fusion of overlapping 2D organ patches into one label map (method.md §1.8, T14).

Per organ and pixel, the vote is the fraction of the patches covering it that predict foreground
(probability > 0.5); the pixel is foreground if the vote is > 0.5. Where several organs claim a
pixel, the highest mean foreground probability wins, ties go to the larger foreground vote count
(then to the lower label). Pixels no patch covers are background.

Patch predictions are scatter-added (``index_add_``) into one buffer per organ that spans the
bounding box of that organ's patches, so memory scales with the organs, not with the volume x 13.
"""

from __future__ import annotations

import torch

COVERAGE, FOREGROUND, PROBABILITY = 0, 1, 2
UNSURE_LOW, UNSURE_HIGH = 0.25, 0.75
"""A covered pixel whose mean foreground probability lies in [UNSURE_LOW, UNSURE_HIGH] is one the patches are unsure of."""


class VoteAccumulator:
    """Collects patch predictions of one organ on a (Z, H, W) grid, in the box its patches span."""

    def __init__(self, label: int, centers: torch.Tensor, size: int, grid_shape: tuple[int, int, int], device: torch.device | str = "cpu") -> None:
        if centers.shape[0] == 0:
            raise ValueError("an organ accumulator needs at least one patch centre")
        centers = centers.to(torch.long)
        half = size // 2
        self.label = int(label)
        self.size = size
        self.grid_shape = tuple(grid_shape)
        low = centers.min(dim=0).values
        high = centers.max(dim=0).values
        self.origin = (int(low[0]), int(low[1]) - half, int(low[2]) - half)
        self.box = (int(high[0] - low[0]) + 1, int(high[1] - low[1]) + size, int(high[2] - low[2]) + size)
        self.buffer = torch.zeros((3, self.box[0] * self.box[1] * self.box[2]), dtype=torch.float32, device=device)
        offsets = torch.arange(size, device=device)
        self._row_offsets = offsets[:, None] * self.box[2]
        self._col_offsets = offsets[None, :]

    def add(self, centers: torch.Tensor, fg_prob: torch.Tensor) -> None:
        """Add (n, size, size) foreground probabilities of patches centred at ``centers`` (n, 3)."""
        centers = centers.to(device=self.buffer.device, dtype=torch.long)
        z = centers[:, 0] - self.origin[0]
        y = centers[:, 1] - self.size // 2 - self.origin[1]
        x = centers[:, 2] - self.size // 2 - self.origin[2]
        start = (z * self.box[1] + y) * self.box[2] + x
        index = (start[:, None, None] + self._row_offsets + self._col_offsets).reshape(-1)
        prob = fg_prob.to(device=self.buffer.device, dtype=torch.float32).reshape(-1)
        values = torch.stack([torch.ones_like(prob), (prob > 0.5).to(torch.float32), prob])
        self.buffer.index_add_(1, index, values)

    def cropped(self) -> tuple[tuple[slice, slice, slice], torch.Tensor]:
        """The box clipped to the grid, and the (3, z, y, x) buffer (coverage, fg votes, prob sum) inside it."""
        grid = self.buffer.view(3, *self.box)
        region, local = [], []
        for start, extent, limit in zip(self.origin, self.box, self.grid_shape):
            lo, hi = max(start, 0), min(start + extent, limit)
            region.append(slice(lo, hi))
            local.append(slice(lo - start, hi - start))
        return tuple(region), grid[:, local[0], local[1], local[2]]  # type: ignore[return-value]


def fuse(grid_shape: tuple[int, int, int], accumulators: list[VoteAccumulator], prior: torch.Tensor | None = None, trust: float | None = None) -> torch.Tensor:
    """Fuse the organs' votes into a uint8 label map of ``grid_shape``.

    With a ``prior`` label map (the coarse masks on the same grid) and a ``trust`` band t in (0, 0.5], the image
    evidence overrules the prior only where the patches are confident: a pixel is claimed when its mean foreground
    probability exceeds 1 - t, or when it is at least t and the prior holds the organ there.
    """
    device = accumulators[0].buffer.device if accumulators else "cpu"
    labels = torch.zeros(grid_shape, dtype=torch.uint8, device=device)
    best_prob = torch.zeros(grid_shape, dtype=torch.float32, device=device)
    best_votes = torch.zeros(grid_shape, dtype=torch.float32, device=device)
    for acc in sorted(accumulators, key=lambda a: a.label):
        region, votes = acc.cropped()
        coverage, foreground, prob_sum = votes[COVERAGE], votes[FOREGROUND], votes[PROBABILITY]
        mean_prob = prob_sum / coverage.clamp(min=1)
        claimed = 2 * foreground > coverage  # vote fraction strictly above one half
        if prior is not None and trust is not None:
            claimed = (mean_prob > 1.0 - trust) | ((mean_prob >= trust) & (coverage > 0) & (prior[region] == acc.label))
        current = labels[region]
        current_prob, current_votes = best_prob[region], best_votes[region]
        wins = claimed & ((current == 0) | (mean_prob > current_prob) | ((mean_prob == current_prob) & (foreground > current_votes)))
        labels[region] = torch.where(wins, torch.tensor(acc.label, dtype=torch.uint8, device=device), current)
        best_prob[region] = torch.where(wins, mean_prob, current_prob)
        best_votes[region] = torch.where(wins, foreground, current_votes)
    return labels


def vote_ambiguity(acc: VoteAccumulator) -> float | None:
    """The share of an organ's likely pixels the patches are unsure of: unsure / (unsure + sure foreground).

    Near 0 when the refine network is confident (only a thin boundary is unsure), near 1 when its votes hover
    around one half; None when no pixel has even an unsure foreground probability.
    """
    _, votes = acc.cropped()
    covered = votes[COVERAGE] > 0
    mean_prob = votes[PROBABILITY] / votes[COVERAGE].clamp(min=1)
    unsure = int((covered & (mean_prob >= UNSURE_LOW) & (mean_prob <= UNSURE_HIGH)).sum())
    sure = int((covered & (mean_prob > UNSURE_HIGH)).sum())
    return unsure / (unsure + sure) if unsure + sure else None


def fuse_patches(grid_shape: tuple[int, int, int], centers: torch.Tensor, organ_labels: torch.Tensor, fg_prob: torch.Tensor) -> torch.Tensor:
    """Fuse (N, S, S) patch probabilities of the organs ``organ_labels`` (N,) centred at ``centers`` (N, 3)."""
    size = fg_prob.shape[-1]
    accumulators = []
    for label in torch.unique(organ_labels).tolist():
        chosen = organ_labels == label
        acc = VoteAccumulator(label, centers[chosen], size, grid_shape, fg_prob.device)
        acc.add(centers[chosen], fg_prob[chosen])
        accumulators.append(acc)
    return fuse(grid_shape, accumulators)
