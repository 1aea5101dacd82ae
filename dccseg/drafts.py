"""Pre-filling unlabelled cases: the model's segmentation stored as a draft for a person to correct.

A draft (``drafts/<id>.seg.nrrd``, the case record's ``draft``) is never a label: training reads only
``label``. The person loads the CT and its draft, corrects it, and adds the result as the case's label
(``dccseg dataset add ... --replace`` or DCC Train's Add), which archives the draft with the old version.
"""

from __future__ import annotations

from typing import Any, Sequence

from .dataset import Case, Dataset
from .progress import QUIET, Progress
from .ranking import CaseRank


def prefill_cases(dataset: Dataset, case_ids: Sequence[str], model: Any, fast: bool = False, replace: bool = False,
                  progress: Progress = QUIET) -> list[Case]:
    """Segment each case's CT with ``model`` and store the result as its draft (every id is checked before any work)."""
    from .inference import segment_volume
    from .io import read_image

    cases = [dataset.draftable_case(case_id, replace) for case_id in dict.fromkeys(case_ids)]
    done = []
    for index, case in enumerate(cases):
        progress.log(f"case {index + 1}/{len(cases)}: {case.id}")
        labels = segment_volume(read_image(case.image), model, fast=fast, progress=progress)
        done.append(dataset.set_draft(case.id, labels, model.card.organ_objects, model.card.ref, replace=replace))
    return done


def prefill_ranked(dataset: Dataset, ranked: Sequence[CaseRank], count: int, model: Any, progress: Progress = QUIET) -> list[str]:
    """Store drafts for the ``count`` top-ranked cases from the labels ranking kept; cases with a draft keep it. Returns the ids drafted."""
    drafted = []
    for entry in ranked[:count]:
        if entry.draft is not None:
            progress.log(f"case {entry.case} keeps its draft {entry.draft}")
        elif entry.labels is not None:
            case = dataset.set_draft(entry.case, entry.labels, model.card.organ_objects, model.card.ref)
            entry.draft = case.draft.file.relative_to(dataset.root).as_posix() if case.draft else None
            drafted.append(entry.case)
    return drafted
