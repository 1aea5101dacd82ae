"""Validation Dice per organ, accumulated over cases or patches."""

from __future__ import annotations

import numpy as np
import torch

from dccseg.organs import ORGAN_BY_LABEL, ORGANS


class DiceAccumulator:
    """Per-organ Dice from summed overlaps; an organ absent from prediction and reference is left out."""

    def __init__(self) -> None:
        self.overlap = np.zeros(len(ORGANS) + 1)
        self.total = np.zeros(len(ORGANS) + 1)
        self.cases: dict[int, list[float]] = {}

    def add_labelmaps(self, prediction: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor) -> None:
        """One case: its per-organ Dice is averaged over cases (the mean per organ, then over organs)."""
        prediction, reference = torch.as_tensor(prediction).long(), torch.as_tensor(reference).long()
        for organ in ORGANS:
            p, g = prediction == organ.label, reference == organ.label
            size = int(p.sum()) + int(g.sum())
            if size:
                self.cases.setdefault(organ.label, []).append(2.0 * int((p & g).sum()) / size)

    def add_patches(self, prediction: torch.Tensor, target: torch.Tensor, organ_labels: torch.Tensor) -> None:
        """Binary patches (N, H, W) of the organs ``organ_labels`` (N,): overlaps are pooled per organ."""
        p, g = prediction.bool().flatten(1), target.bool().flatten(1)
        overlap = (p & g).sum(1).double().cpu()
        total = (p.sum(1) + g.sum(1)).double().cpu()
        labels = organ_labels.long().cpu()
        self.overlap += np.bincount(labels.numpy(), weights=overlap.numpy(), minlength=len(self.overlap))
        self.total += np.bincount(labels.numpy(), weights=total.numpy(), minlength=len(self.total))

    def result(self) -> dict[str, float]:
        """{organ key: Dice}, for organs seen in the validation data."""
        out: dict[str, float] = {}
        for label, values in self.cases.items():
            out[ORGAN_BY_LABEL[label].key] = float(np.mean(values))
        for label in np.nonzero(self.total)[0]:
            if label > 0:
                out[ORGAN_BY_LABEL[int(label)].key] = float(2.0 * self.overlap[label] / self.total[label])
        return dict(sorted(out.items(), key=lambda kv: next(o.label for o in ORGANS if o.key == kv[0])))
