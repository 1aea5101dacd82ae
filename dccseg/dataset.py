"""Training datasets: a folder with ``dataset.json`` plus ``images/`` and ``labels/``.

``dataset.json``::

    {"format_version": 1, "name": ..., "description": ...,
     "labels": {"0": "background", "1": "spleen", ..., "13": "adrenal_gland_left"},
     "cases": [{"id", "image", "label", "phase", "source", "notes", "reviewer", "added", "replaced", "subject", "draft"}]}

Paths in the file are relative to the folder; :class:`Case` holds them absolute. Cases are
added through :meth:`Dataset.add_volumes` / :meth:`Dataset.add_case`, which never overwrite a
case unless asked to, and then keep the previous version under ``replaced/<id>/<timestamp>/``.
An unlabelled case may hold a ``draft`` ({"file", "model", "created"}, or null; older files lack it):
a model's segmentation in ``drafts/<id>.seg.nrrd`` for a person to correct, never trained on. The
corrected label replaces the case (``add --replace``), which archives the draft with the old version.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .errors import DccsegError
from .fileutil import atomic_output, ensure_writable_dir, full_suffix, strip_suffix
from .organs import ORGANS, PHASES, Organ
from .volume import Volume

if TYPE_CHECKING:  # file IO (SimpleITK) loads when cases are added: training reads the manifest without it
    from .io.dicom import Log

FORMAT_VERSION = 1
DATASET_FILE = "dataset.json"
DRAFT_SUFFIX = ".seg.nrrd"
LABEL_TABLE: dict[str, str] = {"0": "background", **{str(o.label): o.key for o in ORGANS}}
CASE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def safe_case_id(text: str) -> str:
    """A case id made of letters, digits, ``.``, ``_`` and ``-`` from any name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return cleaned or "case"


def check_case_id(case_id: str) -> None:
    if not CASE_ID_PATTERN.match(case_id):
        raise DccsegError(f"invalid case id '{case_id}'; use letters, digits, '.', '_' and '-' only, starting with a letter or digit")


def check_phase(phase: str) -> None:
    if phase not in PHASES:
        raise DccsegError(f"unknown contrast phase '{phase}'; use one of: {', '.join(PHASES)}")


@dataclass(frozen=True)
class Draft:
    """A model's segmentation of an unlabelled case, to be corrected by a person; training never reads it."""

    file: Path
    model: str
    created: str

    def to_record(self, root: Path) -> dict[str, str]:
        return {"file": self.file.relative_to(root).as_posix(), "model": self.model, "created": self.created}

    @classmethod
    def from_record(cls, record: Any, root: Path) -> "Draft | None":
        """The draft of a case record (None when absent or not a {"file": ...} object)."""
        if not isinstance(record, dict) or not isinstance(record.get("file"), str) or not record["file"]:
            return None
        return cls(root / record["file"], str(record.get("model", "")), str(record.get("created", "")))


@dataclass
class Case:
    """One case: an image, its label map (None for unlabelled cases) and its contrast phase."""

    id: str
    image: Path
    label: Path | None
    phase: str = "unknown"
    source: str = ""
    notes: str = ""
    reviewer: str = ""
    added: str = ""
    replaced: list[str] = field(default_factory=list)
    subject: str = ""
    """The patient (or body) the scan shows: several phases of one patient share it; evaluation groups by it."""
    draft: Draft | None = None
    """A model's segmentation to correct (unlabelled cases only): not a label, never trained on."""

    def to_record(self, root: Path) -> dict[str, Any]:
        """The case as stored in ``dataset.json`` (paths relative to ``root``, POSIX style)."""
        return {
            "id": self.id,
            "image": self.image.relative_to(root).as_posix(),
            "label": self.label.relative_to(root).as_posix() if self.label else None,
            "phase": self.phase,
            "source": self.source,
            "notes": self.notes,
            "reviewer": self.reviewer,
            "added": self.added,
            "replaced": list(self.replaced),
            "subject": self.subject,
            "draft": self.draft.to_record(root) if self.draft else None,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], root: Path) -> "Case":
        label = record.get("label")
        return cls(
            id=str(record["id"]),
            image=root / str(record["image"]),
            label=root / str(label) if label else None,
            phase=str(record.get("phase", "unknown")),
            source=str(record.get("source", "")),
            notes=str(record.get("notes", "")),
            reviewer=str(record.get("reviewer", "")),
            added=str(record.get("added", "")),
            replaced=[str(p) for p in record.get("replaced", [])],
            subject=str(record.get("subject", "")),
            draft=Draft.from_record(record.get("draft"), root),
        )


def read_dataset_json(root: Path) -> dict[str, Any]:
    """Parse ``dataset.json`` and check its top-level shape (the case records are checked by validate)."""
    path = root / DATASET_FILE
    if not path.is_file():
        raise DccsegError(f"{root} is not a dataset (no {DATASET_FILE}); create one with 'dccseg dataset add' or 'dccseg dataset import'")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DccsegError(f"{path} is not valid JSON ({exc}); fix or restore the file") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise DccsegError(f"{path} lacks a 'cases' list; it is not a DCC Segment dataset file")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise DccsegError(f"{path} has format_version {version!r}; this dccseg reads version {FORMAT_VERSION}: update dccseg or convert the file")
    return data


class Dataset:
    """A dataset folder and its case list."""

    def __init__(self, root: Path, name: str, description: str = "", cases: list[Case] | None = None) -> None:
        self.root = Path(root).resolve()
        self.name = name
        self.description = description
        self.cases: list[Case] = cases or []

    @classmethod
    def load(cls, root: str | os.PathLike) -> "Dataset":
        root = Path(root).resolve()
        data = read_dataset_json(root)
        cases = []
        for index, record in enumerate(data["cases"]):
            if not isinstance(record, dict) or not record.get("id") or not record.get("image"):
                raise DccsegError(f"{root / DATASET_FILE}: case {index + 1} lacks an 'id' or 'image'; fix the record")
            cases.append(Case.from_record(record, root))
        return cls(root, str(data.get("name", root.name)), str(data.get("description", "")), cases)

    @classmethod
    def new(cls, root: str | os.PathLike, name: str | None = None, description: str = "") -> "Dataset":
        """A new, empty dataset for ``root`` (a new or empty folder), not yet written: the first case or ``save`` writes it."""
        root = Path(root).resolve()
        if root.exists() and not root.is_dir():
            raise DccsegError(f"{root} is a file; choose a folder for the dataset")
        if root.is_dir() and any(root.iterdir()):
            raise DccsegError(f"{root} is not empty and holds no {DATASET_FILE}; choose an empty or new folder for the dataset")
        return cls(root, name or root.name, description)

    @classmethod
    def create(cls, root: str | os.PathLike, name: str | None = None, description: str = "") -> "Dataset":
        """A new, empty dataset written to ``root``."""
        dataset = cls.new(root, name, description)
        dataset.save()
        return dataset

    @classmethod
    def open_or_new(cls, root: str | os.PathLike, name: str | None = None) -> "Dataset":
        """The dataset in ``root``, or a new one that is written when its first case is added."""
        root = Path(root)
        return cls.load(root) if (root / DATASET_FILE).is_file() else cls.new(root, name)

    def case(self, case_id: str) -> Case | None:
        return next((c for c in self.cases if c.id == case_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "description": self.description,
            "labels": dict(LABEL_TABLE),
            "cases": [c.to_record(self.root) for c in self.cases],
        }

    def save(self) -> None:
        """Write ``dataset.json`` atomically (creating the folder if needed)."""
        with atomic_output(self.root / DATASET_FILE) as tmp:
            tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    def add_volumes(
        self,
        case_id: str,
        image: Volume,
        label: Volume | None,
        phase: str,
        *,
        source: str = "",
        notes: str = "",
        reviewer: str = "",
        replace: bool = False,
        subject: str = "",
    ) -> Case:
        """Store a checked image/label pair as case ``case_id`` and save ``dataset.json``.

        The files are written to a staging folder first, so a failure leaves the dataset as
        it was. An existing case is only replaced with ``replace``; its files and record are
        then moved to ``replaced/<id>/<timestamp>/``.
        """
        from .io import check_label_ids, write_image, write_labelmap

        check_case_id(case_id)
        check_phase(phase)
        previous = self.case(case_id)
        if previous is not None and not replace:
            raise DccsegError(f"case '{case_id}' already exists in {self.root}; choose another --id or pass --replace to keep the old one under replaced/")
        if label is not None:
            check_label_ids(label, f"label of case '{case_id}'")
            label = image.with_array(label.array)  # the image's exact grid, checked by the caller
        image_path = self.root / "images" / f"{case_id}.nii.gz"
        label_path = self.root / "labels" / f"{case_id}.nii.gz" if label is not None else None
        ensure_writable_dir(self.root)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{case_id}-", dir=self.root))
        try:
            write_image(image, staging / image_path.name)
            if label is not None:
                write_labelmap(label, staging / "label.nii.gz")
            history = self._archive(previous) if previous is not None else []
            ensure_writable_dir(image_path.parent)
            os.replace(staging / image_path.name, image_path)
            if label_path is not None:
                ensure_writable_dir(label_path.parent)
                os.replace(staging / "label.nii.gz", label_path)
            case = Case(case_id, image_path, label_path, phase, source, notes, reviewer, now_iso(), history, subject)
            self.cases = [c for c in self.cases if c.id != case_id] + [case]
            self.save()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return case

    def _archive(self, case: Case) -> list[str]:
        """Move a case's files (image, label, draft) and record to ``replaced/<id>/<timestamp>/``; return the updated history."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        folder = self.root / "replaced" / case.id / stamp
        ensure_writable_dir(folder)
        with atomic_output(folder / "case.json") as tmp:
            tmp.write_text(json.dumps(case.to_record(self.root), indent=2) + "\n", encoding="utf-8")
        for kind, path in (("image", case.image), ("label", case.label), ("draft", case.draft.file if case.draft else None)):
            if path is not None and path.is_file():
                os.replace(path, folder / f"{kind}{full_suffix(path)}")
        return case.replaced + [folder.relative_to(self.root).as_posix()]

    def add_case(
        self,
        image_path: str | os.PathLike,
        label_path: str | os.PathLike | None,
        phase: str,
        *,
        case_id: str | None = None,
        source: str = "",
        notes: str = "",
        reviewer: str = "",
        subject: str = "",
        replace: bool = False,
        log: Log | None = None,
        series: str | None = None,
    ) -> Case:
        """Read, check and store an image (any format :func:`dccseg.io.read_image` reads) and its label."""
        from .io import read_image, read_labelmap

        check_phase(phase)
        case_id = case_id or safe_case_id(strip_suffix(Path(image_path).resolve()))
        check_case_id(case_id)
        if self.case(case_id) is not None and not replace:
            raise DccsegError(f"case '{case_id}' already exists in {self.root}; choose another --id or pass --replace to keep the old one under replaced/")
        image = read_image(image_path, log=log, series=series)
        label = read_labelmap(label_path, reference=image) if label_path is not None else None
        return self.add_volumes(case_id, image, label, phase, source=source or str(image_path), notes=notes, reviewer=reviewer, replace=replace, subject=subject)

    def draftable_case(self, case_id: str, replace: bool = False) -> Case:
        """The case ``case_id`` if it may get a draft: it exists, has no label, and has no draft unless ``replace``."""
        case = self.case(case_id)
        if case is None:
            raise DccsegError(f"no case '{case_id}' in {self.root}; add the CT first with 'dccseg dataset add {self.root} --image CT --phase PHASE --id {case_id}'")
        if case.label is not None:
            raise DccsegError(f"case '{case_id}' already has a reviewed label; drafts are for unlabelled cases, so nothing was written")
        if case.draft is not None and not replace:
            raise DccsegError(f"case '{case_id}' already has a draft ({case.draft.file.relative_to(self.root).as_posix()} by {case.draft.model}); pass --replace to make a new one")
        return case

    def set_draft(self, case_id: str, labels: Volume, organs: Sequence[Organ], model: str, replace: bool = False) -> Case:
        """Store ``labels`` (on the case image's grid) as the draft of the unlabelled case ``case_id`` and save ``dataset.json``.

        A case with a label never gets a draft; an existing draft (model output, not a person's work) is only
        replaced with ``replace``.
        """
        from .io import write_segmentation

        case = self.draftable_case(case_id, replace)
        path = self.root / "drafts" / f"{case_id}{DRAFT_SUFFIX}"
        ensure_writable_dir(path.parent)
        with atomic_output(path) as tmp:
            write_segmentation(labels, tmp, organs)
        case.draft = Draft(path, model, now_iso())
        self.save()
        return case
