"""The versioned model store: ``<root>/<name>/<version>/`` holding ``model.json`` and safetensors weights.

Two stores are searched: the user store (``$DCCSEG_MODEL_STORE``, default ``~/.dccseg/models``),
which ``register``/``import_``/``remove`` write to, and the read-only built-in store shipped
inside the package (``dccseg/models/``). A model reference is ``name``, ``name@version`` or the
path of a version folder; None means the newest ``dccseg-abdomen``. On equal versions the user
store wins. Versions are never overwritten: a new version is written into a hidden staging
folder and renamed into place only once complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import save_file

from ..errors import DccsegError
from ..fileutil import atomic_output, ensure_writable_dir
from .archive import REQUIRED_PARTS, WEIGHT_PARTS, archive_members, folder_files, weight_file
from .card import CARD_FILE, DEFAULT_MODEL_NAME, ModelCard, bump_version, check_name, parse_version

STORE_ENV = "DCCSEG_MODEL_STORE"
BUILTIN_ROOT = Path(__file__).resolve().parent.parent / "models"


def user_store_root() -> Path:
    """``$DCCSEG_MODEL_STORE`` if set, else ``~/.dccseg/models``."""
    value = os.environ.get(STORE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".dccseg" / "models"


@dataclass(frozen=True)
class ModelEntry:
    """One model version found in a store."""

    name: str
    version: str
    path: Path
    card: ModelCard
    builtin: bool

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def weight_path(self, part: str) -> Path:
        return self.path / weight_file(part)

    def to_json(self) -> dict[str, Any]:
        """The entry as `dccseg models list --json` prints it (the Slicer module parses this)."""
        return {
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "path": str(self.path),
            "builtin": self.builtin,
            "created": self.card.created,
            "description": self.card.description,
            "metrics": self.card.metrics,
            "card": self.card.to_dict(),
        }


def is_path_ref(ref: str) -> bool:
    """Names never contain path separators, so a reference with one (or ``~``, ``.``) is a folder."""
    return "/" in ref or "\\" in ref or ref.startswith(("~", ".")) or os.sep in ref


class ModelStore:
    """The user store at ``root`` plus the built-in store at ``builtin_root``."""

    def __init__(self, root: str | os.PathLike | None = None, builtin_root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else user_store_root()
        self.builtin_root = Path(builtin_root) if builtin_root is not None else BUILTIN_ROOT

    # -- reading -------------------------------------------------------------------------------

    def scan(self) -> tuple[list[ModelEntry], list[str]]:
        """All valid entries (by name, newest first, user before built-in) and a line per damaged one."""
        entries: list[ModelEntry] = []
        problems: list[str] = []
        for root, builtin in ((self.root, False), (self.builtin_root, True)):
            for folder in _version_folders(root):
                try:
                    entries.append(self._entry(folder, builtin, expect=(folder.parent.name, folder.name)))
                except DccsegError as exc:
                    problems.append(f"{folder}: {exc}")
        entries.sort(key=lambda e: (e.name, tuple(-v for v in parse_version(e.version)), e.builtin))
        return entries, problems

    def list(self) -> list[ModelEntry]:
        return self.scan()[0]

    def resolve(self, ref: str | None = None) -> ModelEntry:
        """The entry for ``name``, ``name@version``, a version folder, or None (newest default model).

        A plain ``name`` skips versions whose card is ``held_back`` (a fine-tune that came out worse): they are used only by ``name@version``.
        """
        if ref is not None and is_path_ref(ref):
            return self._entry_for_folder(Path(ref).expanduser())
        entries = self.list()
        name, _, version = (ref or DEFAULT_MODEL_NAME).partition("@")
        for entry in entries:  # sorted newest first, user store first
            if entry.name == name and (entry.version == version or not (version or entry.card.held_back)):
                return entry
        available = ", ".join(e.ref for e in entries)
        wanted = ref or f"{DEFAULT_MODEL_NAME} (the default model)"
        if not available:
            raise DccsegError(f"unknown model '{wanted}': no models are installed; import one with `dccseg models import` or train one with `dccseg train all`")
        raise DccsegError(f"unknown model '{wanted}'; available: {available} (run `dccseg models list`)")

    def newest_version(self, name: str) -> str | None:
        versions = [e.version for e in self.list() if e.name == name]
        return max(versions, key=parse_version) if versions else None

    def next_version(self, name: str, bump: str = "minor") -> str:
        """The next free version of ``name`` across both stores (0.1.0 for a new name with a minor bump)."""
        return bump_version(self.newest_version(check_name(name)), bump)

    # -- writing -------------------------------------------------------------------------------

    def register(self, card: ModelCard, weights: dict[str, dict[str, torch.Tensor]]) -> ModelEntry:
        """Add a new version from its card and state dicts ({"coarse": ..., "refine": ..., "encoder"?: ...})."""
        card.validate()
        unknown = sorted(set(weights) - set(WEIGHT_PARTS))
        missing = [p for p in REQUIRED_PARTS if p not in weights]
        if unknown or missing:
            raise ValueError(f"weights must hold {REQUIRED_PARTS} (optionally 'encoder'); unknown {unknown}, missing {missing}")

        def write_weights(staging: Path) -> None:
            for part, state in weights.items():
                tensors = {key: value.detach().to("cpu").clone().contiguous() for key, value in state.items()}
                save_file(tensors, str(staging / weight_file(part)), metadata={"model": card.ref, "part": part})

        return self._commit(card, write_weights)

    def import_(self, source: str | os.PathLike) -> ModelEntry:
        """Add a version from a ``.zip`` made by ``export`` or from a version folder; never overwrites."""
        path = Path(source).expanduser()
        if path.is_dir():
            names = folder_files(path)
            card = ModelCard.read(path / CARD_FILE)

            def copy(staging: Path) -> None:
                for name in names:
                    if name != CARD_FILE:
                        shutil.copyfile(path / name, staging / name)

            return self._commit(card, copy)
        if not path.is_file():
            raise DccsegError(f"cannot import {path}: no such file or folder; give a model .zip or a model version folder")
        if not zipfile.is_zipfile(path):
            raise DccsegError(f"cannot import {path}: it is neither a .zip archive nor a model folder")
        with zipfile.ZipFile(path) as archive:
            members = archive_members(archive, str(path))
            try:
                card = ModelCard.from_dict(_json_member(archive, members[CARD_FILE], path))
            except TypeError as exc:
                raise DccsegError(f"cannot import {path}: its model card is malformed ({exc})") from None

            def extract(staging: Path) -> None:
                for name, info in members.items():
                    if name != CARD_FILE:
                        with archive.open(info) as src, open(staging / name, "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)

            return self._commit(card, extract)

    def export(self, ref: str | None, archive_path: str | os.PathLike) -> Path:
        """Write ``model.json`` and the weights of ``ref`` into a flat ``.zip``."""
        target = Path(archive_path).expanduser()
        if target.suffix.lower() != ".zip":
            raise DccsegError(f"cannot export to {target}: the archive name must end in .zip")
        if target.exists():
            raise DccsegError(f"{target} already exists; choose another archive name")
        entry = self.resolve(ref)
        with atomic_output(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(entry.path / CARD_FILE, CARD_FILE)
            for part in WEIGHT_PARTS:
                if entry.weight_path(part).is_file():
                    archive.write(entry.weight_path(part), weight_file(part))
        return target

    def remove(self, ref: str) -> ModelEntry:
        """Delete one version from the user store (built-in and outside models are refused)."""
        entry = self.resolve(ref)
        if entry.builtin:
            raise DccsegError(f"{entry.ref} is a built-in model and cannot be removed; it ships with dccseg")
        if entry.path.resolve().parent.parent != self.root.resolve():
            raise DccsegError(f"{entry.path} is not in the model store ({self.root}); delete that folder yourself if you mean to")
        trash = entry.path.with_name(f".removing-{entry.version}-{os.getpid()}")
        os.rename(entry.path, trash)
        shutil.rmtree(trash)
        with contextlib.suppress(OSError):
            entry.path.parent.rmdir()  # the name folder, when that was its last version
        return entry

    # -- internals -----------------------------------------------------------------------------

    def _commit(self, card: ModelCard, fill: Callable[[Path], Any]) -> ModelEntry:
        """Write a new version into a staging folder, check it, and rename it into place."""
        from .weights import check_weight_files  # imported on use: it needs the networks (MONAI)

        target = self.root / card.name / card.version
        if target.exists():
            raise DccsegError(
                f"model {card.ref} already exists in {self.root} and versions are never overwritten; "
                f"use version {self.next_version(card.name)} instead"
            )
        ensure_writable_dir(target.parent)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{card.version}-", dir=target.parent))
        try:
            fill(staging)
            card.write(staging / CARD_FILE)
            check_weight_files(card, staging)
            try:
                os.rename(staging, target)
            except OSError:
                raise DccsegError(f"model {card.ref} was written by another process meanwhile; use version {self.next_version(card.name)}") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self._entry(target, builtin=False)

    def _entry_for_folder(self, folder: Path) -> ModelEntry:
        if not (folder / CARD_FILE).is_file():
            raise DccsegError(f"{folder} is not a model folder (no {CARD_FILE}); give a model name, name@version or a version folder")
        builtin = self.builtin_root.resolve() in folder.resolve().parents
        return self._entry(folder, builtin)

    @staticmethod
    def _entry(folder: Path, builtin: bool, expect: tuple[str, str] | None = None) -> ModelEntry:
        card = ModelCard.read(folder / CARD_FILE)
        if expect is not None and expect != (card.name, card.version):
            raise DccsegError(f"its card says {card.ref}, not {expect[0]}@{expect[1]}; re-import the model")
        return ModelEntry(card.name, card.version, folder, card, builtin)


def _version_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [
        version
        for name in sorted(root.iterdir())
        if name.is_dir() and not name.name.startswith(".")
        for version in sorted(name.iterdir())
        if version.is_dir() and not version.name.startswith(".") and (version / CARD_FILE).is_file()
    ]


def _json_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> Any:
    if info.file_size > 1 << 20:
        raise DccsegError(f"cannot import {path}: its {CARD_FILE} is larger than any model card")
    try:
        return json.loads(archive.read(info).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DccsegError(f"cannot import {path}: its {CARD_FILE} is not valid JSON ({exc})") from None


def next_version(name: str, bump: str = "minor") -> str:
    """The next free version of ``name`` in the default stores."""
    return ModelStore().next_version(name, bump)
