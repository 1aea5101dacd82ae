"""Which case to label next: a dataset's unlabelled cases ranked by how unsure the model is of them.

One segmentation per case gives three signals, each in [0, 1] (the coarse network runs once; its labels
are restored to the input grid as they are and refined, as ``dccseg diagnose`` does):

- disagreement D: the mean over the refined organs that either stage found of 1 - Dice(coarse alone, refined);
- ambiguity A: the mean over the refined organs of the share of their likely voxels whose patch votes are
  unsure (``dccseg.fusion.vote_ambiguity``);
- implausibility P = n / (n + 2) for the n flags ``dccseg segment --statistics`` writes for the refined result
  (``dccseg.plausibility``: volume, missing companion, side, position, pieces, HU, the coarse network's confidence; and
  a scan read as a mirror image), and 1 when no organ was found at all.

``score = (D + A + P) / 3``. Model 0.4.5 (fast mode) scored the bundled real CT 0.13, that CT mirrored left-right
0.43 and with heavy noise 0.63 (docs/training.md; a test holds the shipped model to ranking the noisy CT first). The reasons name the
plausibility flags first, then the organs whose stages disagree (worst first), then those whose patches are unsure. Organs the model card does not refine (``refine_skip``) give neither D nor A.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import DccsegError
from .evaluation.metrics import dice
from .organs import Organ
from .progress import QUIET, Progress
from .volume import Volume

DISAGREE_BELOW = 0.8
"""An organ whose coarse and refined masks have a Dice below this is named as a reason."""
UNSURE_ABOVE = 0.5
"""An organ whose vote ambiguity is above this is named as a reason."""


class NoUnlabelledCases(DccsegError):
    """The dataset has nothing to rank (not a failure: the command says so and exits 0)."""


@dataclass
class CaseRank:
    """One case's place in the ranking; ``labels`` (the refined segmentation) is kept only for cases to pre-fill."""

    case: str
    score: float | None
    reasons: list[str] = field(default_factory=list)
    signals: dict[str, float] = field(default_factory=dict)
    organs: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str = ""
    draft: str | None = None
    labels: Volume | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        record = {"case": self.case, "score": self.score, "reasons": self.reasons, "signals": self.signals, "organs": self.organs, "draft": self.draft}
        return {**record, "error": self.error} if self.error else record


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _short(message: str) -> str:
    """A plausibility flag's finding without its guess at the cause ("...: leaked into neighbours?")."""
    return message.split(": ")[0]


def score_case(
    coarse: np.ndarray,
    refined: np.ndarray,
    organs: Sequence[Organ],
    refined_ids: Iterable[int],
    ambiguity: dict[int, float | None],
    flags: Sequence[dict[str, Any]],
    voxel_ml: float,
) -> tuple[float, list[str], dict[str, float], dict[str, dict[str, Any]]]:
    """(score, reasons, signals, per-organ details) of one case from its coarse and refined label maps (same grid)."""
    refined_ids = set(refined_ids)
    details: dict[str, dict[str, Any]] = {}
    disagreements: list[tuple[float, str]] = []
    unsure: list[tuple[float, str]] = []
    for organ in organs:
        in_coarse, in_refined = coarse == organ.label, refined == organ.label
        overlap = dice(in_coarse, in_refined) if organ.label in refined_ids else float("nan")
        entry = {
            "coarse_ml": round(int(np.count_nonzero(in_coarse)) * voxel_ml, 2),
            "refined_ml": round(int(np.count_nonzero(in_refined)) * voxel_ml, 2),
            "dice_coarse_refined": None if np.isnan(overlap) else round(overlap, 4),
            "vote_ambiguity": _rounded(ambiguity.get(organ.label)),
            "flags": [_short(f["message"]) for f in flags if f.get("organ") == organ.key],
        }
        details[organ.key] = entry
        if entry["dice_coarse_refined"] is not None:
            disagreements.append((1.0 - overlap, organ.name))
        if entry["vote_ambiguity"] is not None:
            unsure.append((entry["vote_ambiguity"], organ.name))
    found = any(e["refined_ml"] > 0 for e in details.values())
    signals = {
        "disagreement": float(np.mean([d for d, _ in disagreements])) if disagreements else 0.0,
        "ambiguity": float(np.mean([a for a, _ in unsure])) if unsure else 0.0,
        "implausibility": len(flags) / (len(flags) + 2) if found else 1.0,
    }
    score = float(np.mean(list(signals.values())))
    reasons = [] if found else ["no organ found: not an abdominal CT, or one the model cannot read"]
    reasons += [_short(f["message"]) for f in flags]
    reasons += [_disagreement_reason(name, 1.0 - d) for d, name in sorted(disagreements, reverse=True) if 1.0 - d < DISAGREE_BELOW]
    reasons += [f"{name}: refine patches unsure ({a:.0%} of its voxels)" for a, name in sorted(unsure, reverse=True) if a > UNSURE_ABOVE]
    return round(score, 4), reasons, {k: round(v, 4) for k, v in signals.items()}, details


def _disagreement_reason(name: str, overlap: float) -> str:
    return f"{name}: coarse and refine disagree (Dice {overlap:.2f})"


def rank_case(ct: Volume, model: Any, fast: bool = False, progress: Progress = QUIET) -> tuple[CaseRank, Volume]:
    """Segment one CT (coarse alone and refined, one coarse pass) and score it; returns its rank entry and the refined labels."""
    from .case_results import analyse_case
    from .inference.findings import CoarseFindings
    from .inference.memory import check_memory
    from .inference.stages import stage_predictions

    check_memory(ct)
    organs = model.card.organ_objects
    ambiguity: dict[int, float | None] = {}
    findings = CoarseFindings()
    stages = stage_predictions(ct, None, model, fast=fast, progress=progress, ambiguity=ambiguity, findings=findings)
    refined = stages["refined"]
    flags = analyse_case(ct, refined, organs, findings)["flags"]
    refined_ids = {o.label for o in organs} - model.card.refine_skip_labels
    score, reasons, signals, details = score_case(stages["coarse"].array, refined.array, organs, refined_ids, ambiguity, flags, ct.voxel_ml)
    return CaseRank("", score, reasons, signals, details), refined


def unlabelled_cases(dataset: Any) -> list[Any]:
    """The cases without a label; NoUnlabelledCases when there are none."""
    cases = [case for case in dataset.cases if case.label is None]
    if not cases:
        raise NoUnlabelledCases(f"dataset {dataset.root} has no unlabelled cases: every case has a reviewed label. "
                                f"Add CTs to label with 'dccseg dataset add {dataset.root} --image CT --phase PHASE' (no --label)")
    return cases


def rank_dataset(dataset: Any, model: Any, fast: bool = False, keep_labels: int = 0, progress: Progress = QUIET) -> list[CaseRank]:
    """The unlabelled cases of ``dataset`` ranked most useful first (cases that could not be read last).

    A DccsegError on one case (a damaged image) is recorded with the case and the others go on.
    ``keep_labels``: the refined labels of that many top cases stay in their entries (for pre-filling drafts).
    """
    from .io import read_image

    cases = unlabelled_cases(dataset)
    ranked: list[CaseRank] = []
    for index, case in enumerate(cases):
        progress.log(f"case {index + 1}/{len(cases)}: {case.id}")
        try:
            entry, labels = rank_case(read_image(case.image), model, fast, progress)
        except DccsegError as exc:
            progress.log(f"case {case.id} could not be ranked: {exc}")
            entry, labels = CaseRank(case.id, None, [f"could not be ranked: {exc}"], error=str(exc)), None
        entry.case, entry.labels = case.id, labels
        entry.draft = case.draft.file.relative_to(dataset.root).as_posix() if case.draft else None
        ranked = order(ranked + [entry])
        for kept, item in enumerate(ranked):
            if kept >= keep_labels:
                item.labels = None
        progress.update("rank", (index + 1) / len(cases), f"{index + 1}/{len(cases)} cases")
    return ranked


def order(entries: Iterable[CaseRank]) -> list[CaseRank]:
    """Highest score first, ties by case id; unranked cases (no score) last."""
    return sorted(entries, key=lambda e: (e.score is None, -(e.score or 0.0), e.case))


def format_ranking(entries: Sequence[CaseRank], reasons_shown: int = 3) -> str:
    """A Markdown table: rank, case, score and the first reasons."""
    lines = ["| # | case | score | why |", "|---|---|---|---|"]
    for number, entry in enumerate(entries, 1):
        score = "-" if entry.score is None else f"{entry.score:.2f}"
        shown = entry.reasons[:reasons_shown]
        why = "; ".join(shown) + (f" (+{len(entry.reasons) - len(shown)} more)" if len(entry.reasons) > len(shown) else "")
        lines.append(f"| {number} | {entry.case} | {score} | {why or 'no warning signs'} |")
    return "\n".join(lines)
