"""Convert public dataset layouts into a DCC Segment dataset (``dccseg dataset import``).

Supported: nnU-Net v2 raw folders, Medical Segmentation Decathlon tasks, BTCV ``RawData`` and
TotalSegmentator subject folders. Importers only read the source. Each case is read, mapped
to our organ ids, checked and stored atomically by :meth:`Dataset.add_volumes`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .dataset import DATASET_FILE, Case, Dataset, safe_case_id
from .errors import DccsegError
from .fileutil import strip_suffix
from .io import read_image, read_labelmap
from .io.organ_names import normalise_name, organ_for_name
from .organs import ORGANS, PHASES, organ_from_name
from .progress import QUIET, Progress
from .volume import Volume

Log = Callable[[str], None]
LabelLoader = Callable[[Volume], Volume]

FORMATS = ("nnunet", "msd", "btcv", "totalsegmentator")
DEFAULT_PHASE = {"btcv": "portal-venous"}  # BTCV scans are portal-venous; the others are mixed or unknown
LESION_WORDS = ("cancer", "tumor", "tumour", "lesion", "lesions", "metastasis", "metastases", "cyst")
NON_TARGET_NAMES = frozenset(
    normalise_name(n)
    for n in (
        "duodenum", "bladder", "urinary bladder", "prostate", "uterus", "prostate/uterus", "prostate uterus",
        "colon", "small bowel", "rectum", "bowel", "vessel", "vessels", "hepatic vessel", "bone", "lung", "lungs", "heart",
    )
)


@dataclass
class SourceCase:
    """One case of the source layout: where its image is and how to build our label map for it."""

    id: str
    image: Path
    load_label: LabelLoader
    phase: str
    source: str
    notes: str = ""


def parse_label_map(text: str | None) -> dict[int, int] | None:
    """Parse ``--label-map 'srcid:ourid,...'`` (ours as an id, organ name, 0 or 'background')."""
    if not text:
        return None
    mapping: dict[int, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        source, sep, ours = item.partition(":")
        if not sep or not source.strip().isdigit():
            raise DccsegError(f"bad --label-map entry '{item}'; write 'srcid:ourid' pairs, e.g. '1:6,2:6' (0 = background)")
        ours = ours.strip()
        mapping[int(source)] = 0 if ours.lower() in ("0", "background") else organ_from_name(ours).label
    return mapping


def _lesion_host(name: str, mapped: set[int]) -> int | None:
    """The organ a lesion label belongs to ('liver tumor' -> liver; 'cancer' -> the only mapped organ)."""
    words = name.split(" ")
    if words[-1] not in LESION_WORDS:
        return None
    host = organ_for_name(" ".join(words[:-1])) if len(words) > 1 else None
    if host is not None:
        return host.label
    return next(iter(mapped)) if len(mapped) == 1 else None


def label_lookup(names: dict[int, str], label_map: dict[int, int] | None, source: str, log: Log) -> np.ndarray:
    """A lookup table from source label ids to ours, by name unless ``label_map`` is given.

    Names map through the organ aliases; lesions merge into their organ; known non-target
    structures become background; any other name is an error listing them all.
    """
    size = max([*names, *(label_map or {})], default=0) + 1
    lookup = np.zeros(size, dtype=np.uint8)
    if label_map is not None:
        for src_id, ours in label_map.items():
            lookup[src_id] = ours
        return lookup
    organs = {i: organ_for_name(n) for i, n in names.items()}
    mapped = {o.label for o in organs.values() if o is not None}
    unmapped = []
    for src_id, name in sorted(names.items()):
        norm = normalise_name(name)
        if src_id == 0 or norm == "background":
            continue
        if organs[src_id] is not None:
            lookup[src_id] = organs[src_id].label
        elif (host := _lesion_host(norm, mapped)) is not None:
            lookup[src_id] = host
            log(f"{source}: label {src_id} '{name}' merged into {ORGANS[host - 1].key}")
        elif norm in NON_TARGET_NAMES:
            log(f"{source}: label {src_id} '{name}' is not one of our organs; set to background")
        else:
            unmapped.append(f"{src_id} '{name}'")
    if unmapped:
        raise DccsegError(
            f"{source}: cannot map labels {', '.join(unmapped)} to our organs; pass --label-map 'srcid:ourid,...' "
            "(ourid an organ id 1-13 or name, 0 for background; unlisted ids become background)"
        )
    return lookup


def mapped_label_loader(path: Path, lookup: np.ndarray) -> LabelLoader:
    def load(image: Volume) -> Volume:
        labels = read_labelmap(path, reference=image)
        high = int(labels.array.max())
        if high >= lookup.size:
            raise DccsegError(f"{path} holds label {high}, which the source's label table lacks; fix the table or pass --label-map")
        return labels.with_array(lookup[labels.array])
    return load


def plain_label_loader(path: Path) -> LabelLoader:
    return lambda image: read_labelmap(path, reference=image)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DccsegError(f"{path} not found; point to the dataset folder that holds dataset.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DccsegError(f"{path} is not valid JSON ({exc}); check the source dataset") from exc
    if not isinstance(data, dict) or not isinstance(data.get("labels"), dict):
        raise DccsegError(f"{path} has no 'labels' table; is this the right dataset format?")
    return data


def _names_by_id(labels: dict) -> dict[int, str]:
    """nnU-Net v2 writes ``{name: id}``, MSD and nnU-Net v1 ``{"id": name}``; region lists are not supported."""
    if all(str(k).isdigit() for k in labels):
        return {int(k): str(v) for k, v in labels.items()}
    if all(isinstance(v, int) for v in labels.values()):
        return {int(v): str(k) for k, v in labels.items()}
    raise DccsegError("region-based nnU-Net label tables (lists of ids) are not supported; pass --label-map with the plain label ids")


def _check_ct_channel(channels: dict, source: Path, log: Log) -> None:
    first = str(channels.get("0", channels.get(0, "")))
    if first.strip().lower() != "ct":
        raise DccsegError(f"{source}: channel 0 is '{first}', not CT; only CT datasets can be imported")
    if len(channels) > 1:
        log(f"{source}: {len(channels)} channels; importing channel 0 (CT) only")


def nnunet_cases(src: Path, phase: str, label_map: dict[int, int] | None, log: Log) -> list[SourceCase]:
    """nnU-Net v2 raw: ``dataset.json``, ``imagesTr/<case>_0000<ending>``, ``labelsTr/<case><ending>``."""
    data = _read_json(src / "dataset.json")
    _check_ct_channel(data.get("channel_names", data.get("modality", {})), src, log)
    ending = str(data.get("file_ending", ".nii.gz"))
    lookup = label_lookup(_names_by_id(data["labels"]), label_map, str(src / "dataset.json"), log)
    cases = []
    for label in sorted((src / "labelsTr").glob(f"*{ending}")):
        name = label.name[: -len(ending)]
        image = src / "imagesTr" / f"{name}_0000{ending}"
        if not image.is_file():
            raise DccsegError(f"{label} has no image {image.name} in imagesTr; the nnU-Net folder is incomplete")
        cases.append(SourceCase(safe_case_id(name), image, mapped_label_loader(label, lookup), phase, f"nnU-Net {src.name}/{name}"))
    return cases


def msd_cases(src: Path, phase: str, label_map: dict[int, int] | None, log: Log) -> list[SourceCase]:
    """Medical Segmentation Decathlon: ``dataset.json`` with ``modality``, ``labels`` and a ``training`` list."""
    data = _read_json(src / "dataset.json")
    _check_ct_channel(data.get("modality", {}), src, log)
    lookup = label_lookup(_names_by_id(data["labels"]), label_map, str(src / "dataset.json"), log)
    cases = []
    for entry in data.get("training", []):
        image, label = src / str(entry["image"]), src / str(entry["label"])
        for path in (image, label):
            if not path.is_file():
                raise DccsegError(f"{path} listed in {src / 'dataset.json'} is missing; the Decathlon folder is incomplete")
        name = strip_suffix(image)
        cases.append(SourceCase(safe_case_id(name), image, mapped_label_loader(label, lookup), phase, f"MSD {src.name}/{name}"))
    return cases


def btcv_cases(src: Path, phase: str, label_map: dict[int, int] | None, log: Log) -> list[SourceCase]:
    """BTCV ``RawData``: ``img/imgNNNN.nii.gz`` and ``label/labelNNNN.nii.gz`` (ids already ours)."""
    if label_map is not None:
        raise DccsegError("--label-map applies to nnunet and msd imports only; BTCV labels already use our ids")
    base = next((d for d in (src, src / "Training", src / "RawData" / "Training") if (d / "img").is_dir()), None)
    if base is None:
        raise DccsegError(f"no img/ folder in {src} (or its Training/ folder); point to BTCV's RawData or RawData/Training")
    cases = []
    for image in sorted((base / "img").glob("img*.nii.gz")):
        number = strip_suffix(image)[3:]
        label = base / "label" / f"label{number}.nii.gz"
        if not label.is_file():
            log(f"{image.name} has no label/label{number}.nii.gz; skipped")
            continue
        cases.append(SourceCase(safe_case_id(f"img{number}"), image, plain_label_loader(label), phase, f"BTCV {image.name}"))
    return cases


# TotalSegmentator structure file names of our organs, in our id order (1..13).
TOTALSEG_NAMES = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "esophagus", "liver", "stomach", "aorta",
    "inferior_vena_cava", "portal_vein_and_splenic_vein", "pancreas", "adrenal_gland_right", "adrenal_gland_left",
)
TOTALSEG_FILES: dict[int, str] = {organ.label: name for organ, name in zip(ORGANS, TOTALSEG_NAMES)}


def totalseg_label_loader(subject: Path) -> tuple[LabelLoader, str]:
    """Merge the 13 structure masks into one label map (first organ id wins on overlap)."""
    missing = [name for name in TOTALSEG_FILES.values() if not (subject / "segmentations" / f"{name}.nii.gz").is_file()]

    def load(image: Volume) -> Volume:
        labels = np.zeros(image.shape, dtype=np.uint8)
        for label, name in TOTALSEG_FILES.items():
            path = subject / "segmentations" / f"{name}.nii.gz"
            if path.is_file():
                mask = read_labelmap(path, reference=image).array > 0
                labels[mask & (labels == 0)] = label
        return image.with_array(labels)

    return load, (f"masks missing (left as background): {', '.join(missing)}" if missing else "")


def totalsegmentator_cases(src: Path, phase: str, label_map: dict[int, int] | None, log: Log) -> list[SourceCase]:
    """TotalSegmentator subjects: ``<subject>/ct.nii.gz`` + ``<subject>/segmentations/<structure>.nii.gz``."""
    if label_map is not None:
        raise DccsegError("--label-map applies to nnunet and msd imports only; TotalSegmentator masks are mapped by structure name")
    subjects = [src] if (src / "ct.nii.gz").is_file() else sorted(d for d in src.iterdir() if (d / "ct.nii.gz").is_file())
    cases = []
    for subject in subjects:
        if not (subject / "segmentations").is_dir():
            raise DccsegError(f"{subject} has ct.nii.gz but no segmentations/ folder; point to TotalSegmentator subject folders")
        load, notes = totalseg_label_loader(subject)
        if notes:
            log(f"{subject.name}: {notes}")
        cases.append(SourceCase(safe_case_id(subject.name), subject / "ct.nii.gz", load, phase, f"TotalSegmentator {subject.name}", notes))
    return cases


IMPORTERS = {"nnunet": nnunet_cases, "msd": msd_cases, "btcv": btcv_cases, "totalsegmentator": totalsegmentator_cases}


def _check_paths(src: Path, dest: Path) -> None:
    if not src.is_dir():
        raise DccsegError(f"source folder {src} does not exist; check the path")
    if dest == src or dest.is_relative_to(src):
        raise DccsegError(f"the dataset folder {dest} lies inside the source {src}; import never modifies the source: choose a folder outside it")
    if dest.exists() and not (dest / DATASET_FILE).is_file() and (not dest.is_dir() or any(dest.iterdir())):
        raise DccsegError(f"{dest} is not empty and is not a dataset; choose a new or empty folder, or an existing dataset")


def _remove_new_dataset(dest: Path, existed: bool) -> None:
    """Undo a failed import into a fresh folder: remove everything it wrote."""
    if not existed:
        shutil.rmtree(dest, ignore_errors=True)
        return
    for child in dest.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def import_dataset(
    fmt: str,
    src: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    phase: str | None = None,
    label_map: dict[int, int] | None = None,
    replace: bool = False,
    progress: Progress = QUIET,
) -> list[Case]:
    """Import every case of ``src`` (layout ``fmt``) into the dataset ``dest``; return the new cases.

    Into a new folder the import is all or nothing; into an existing dataset, cases stored
    before a failing case are kept (each case is atomic).
    """
    if fmt not in IMPORTERS:
        raise DccsegError(f"unknown import format '{fmt}'; use one of: {', '.join(FORMATS)}")
    phase = phase or DEFAULT_PHASE.get(fmt, "unknown")
    if phase not in PHASES:
        raise DccsegError(f"unknown contrast phase '{phase}'; use one of: {', '.join(PHASES)}")
    src, dest = Path(src).resolve(), Path(dest).resolve()
    _check_paths(src, dest)
    plan = IMPORTERS[fmt](src, phase, label_map, progress.log)
    if not plan:
        raise DccsegError(f"no {fmt} cases found in {src}; check the format and the folder")
    fresh, existed = not (dest / DATASET_FILE).is_file(), dest.exists()
    dataset = Dataset.open_or_new(dest, name=src.name)
    clashes = [c.id for c in plan if dataset.case(c.id) is not None]
    imported: list[Case] = []
    try:
        if clashes and not replace:
            raise DccsegError(f"cases {', '.join(clashes[:5])} already exist in {dest}; pass --replace to replace them (old versions are kept under replaced/)")
        for index, case in enumerate(plan):
            progress.update("import", index / len(plan), case.id)
            try:
                image = read_image(case.image, log=progress.log)
                labels = case.load_label(image)
                imported.append(dataset.add_volumes(case.id, image, labels, case.phase, source=case.source, notes=case.notes, replace=replace))
            except DccsegError as exc:
                kept = "nothing was imported" if fresh else f"the {len(imported)} cases imported before it were kept"
                raise DccsegError(f"case '{case.id}': {exc} ({kept})") from exc
    except BaseException:
        if fresh:
            _remove_new_dataset(dest, existed)
        raise
    progress.update("import", 1.0, f"{len(imported)} cases")
    return imported
