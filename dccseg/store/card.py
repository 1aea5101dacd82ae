"""The model card: everything needed to rebuild, describe and trust one model version.

A card is stored as ``model.json`` next to the weights. It is validated on every read, so a
hand-edited or foreign card fails with a message that says what is wrong instead of
crashing later inside the networks.

``metrics`` is free-form, with one convention the model list relies on: ``dice_mean`` (the
mean Dice over organs per case, then over cases) and ``dice`` ({organ key: mean Dice}).

Two optional fields (left out of the JSON when empty, so such cards stay readable by older dccseg):
``refine_skip`` lists the organ keys whose refinement inference skips (the coarse result is used),
``stage_metrics`` maps a set name (e.g. "validation", "s0009") to a stage table summary
(``dccseg.evaluation.stages``: per organ and stage the Dice, see docs/diagnose.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from .. import __version__
from ..errors import DccsegError
from ..inference.body_size import SIZE_ORGANS
from ..inference.settings import MAX_COARSE_SCALE, MIN_COARSE_SCALE, valid_coarse_scales
from ..organs import ORGAN_BY_KEY, ORGANS, Organ

CARD_FILE = "model.json"
DEFAULT_MODEL_NAME = "dccseg-abdomen"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
VERSION_PATTERN = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
PREPROCESSING_KEYS = (
    "intensity",
    "coarse_spacing",
    "refine_spacing",
    "refine_slice_thickness",
    "patch_size",
    "patches_per_slice",
    "fast_patches_per_slice",
)
BUMPS = ("major", "minor", "patch")
OPTIONAL_FIELDS = ("refine_skip", "stage_metrics", "held_back")
STAGE_COLUMNS = ("coarse", "refined", "oracle_prior", "oracle_refined")


def parse_version(text: str) -> tuple[int, int, int]:
    """``"1.2.3"`` -> ``(1, 2, 3)``; anything else is a DccsegError."""
    match = VERSION_PATTERN.match(str(text))
    if not match:
        raise DccsegError(f"invalid model version '{text}'; use a semantic version like 1.0.0")
    return tuple(int(part) for part in match.groups())  # type: ignore[return-value]


def bump_version(version: str | None, bump: str = "minor") -> str:
    """The version after ``version`` (None counts as 0.0.0) for a ``major``/``minor``/``patch`` bump."""
    if bump not in BUMPS:
        raise DccsegError(f"unknown version bump '{bump}'; use one of {', '.join(BUMPS)}")
    major, minor, patch = parse_version(version) if version else (0, 0, 0)
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise DccsegError(f"invalid model name '{name}'; use letters, digits, '.', '_' or '-' (at most 64 characters)")
    return name


def organ_table(organs: Iterable[Organ] = ORGANS) -> list[dict[str, Any]]:
    """The card's organ table for ``organs``: [{"label", "key", "name"}, ...]."""
    return [{"label": o.label, "key": o.key, "name": o.name} for o in organs]


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class ModelCard:
    """Name, version, provenance, preprocessing and architecture of one model version."""

    name: str
    version: str
    preprocessing: dict[str, Any]
    architecture: dict[str, Any]
    training: dict[str, Any]
    organs: list[dict[str, Any]] = field(default_factory=organ_table)
    description: str = ""
    created: str = field(default_factory=now_iso)
    metrics: dict[str, Any] = field(default_factory=dict)
    speed: dict[str, Any] = field(default_factory=dict)
    dccseg_version: str = __version__
    refine_skip: list[str] = field(default_factory=list)
    stage_metrics: dict[str, Any] = field(default_factory=dict)
    held_back: str = ""
    """Why this version must not become the default (a fine-tune worse than its start); only an explicit name@version uses it."""

    def __post_init__(self) -> None:
        self.validate()

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def organ_objects(self) -> list[Organ]:
        """The organs this model segments, as entries of the organ table."""
        return [ORGAN_BY_KEY[entry["key"]] for entry in self.organs]

    @property
    def refine_skip_labels(self) -> set[int]:
        """The organ ids of ``refine_skip``."""
        return {ORGAN_BY_KEY[key].label for key in self.refine_skip}

    @property
    def mean_dice(self) -> float | None:
        """``metrics["dice_mean"]``, else the mean of ``metrics["dice"]``, else None."""
        value = self.metrics.get("dice_mean")
        if isinstance(value, (int, float)):
            return float(value)
        per_organ = [v for v in (self.metrics.get("dice") or {}).values() if isinstance(v, (int, float))]
        return sum(per_organ) / len(per_organ) if per_organ else None

    def validate(self) -> None:
        """Raise a DccsegError naming the first thing in the card that is not as specified."""
        check_name(self.name)
        parse_version(self.version)
        try:
            datetime.fromisoformat(self.created)
        except (TypeError, ValueError):
            raise DccsegError(f"model card {self.ref}: 'created' must be an ISO date-time, not {self.created!r}") from None
        self._check_organs()
        self._check_preprocessing()
        for part in ("coarse", "refine"):
            if not isinstance(self.architecture.get(part) if isinstance(self.architecture, dict) else None, dict):
                raise DccsegError(f"model card {self.ref}: architecture.{part} must be a network configuration object")
        if not isinstance(self.training, dict) or not isinstance(self.training.get("data"), dict) or not isinstance(self.training.get("data_hash"), str):
            raise DccsegError(f"model card {self.ref}: training must hold a 'data' summary object and a 'data_hash' string")
        for key in ("metrics", "speed"):
            if not isinstance(getattr(self, key), dict):
                raise DccsegError(f"model card {self.ref}: '{key}' must be a JSON object")
        self._check_refine_skip()
        check_stage_metrics(self.ref, self.stage_metrics)

    def _check_organs(self) -> None:
        if not isinstance(self.organs, list) or not self.organs:
            raise DccsegError(f"model card {self.ref}: 'organs' must be a non-empty list of {{label, key, name}}")
        seen: set[str] = set()
        for entry in self.organs:
            key = entry.get("key") if isinstance(entry, dict) else None
            organ = ORGAN_BY_KEY.get(key)  # type: ignore[arg-type]
            if organ is None or entry.get("label") != organ.label:
                raise DccsegError(
                    f"model card {self.ref}: organ entry {entry!r} does not match dccseg's organ table "
                    f"(known keys: {', '.join(o.key for o in ORGANS)}); re-create the card with this dccseg version"
                )
            if key in seen:
                raise DccsegError(f"model card {self.ref}: organ '{key}' is listed twice")
            seen.add(key)

    def _check_refine_skip(self) -> None:
        keys = [o["key"] for o in self.organs]
        skip = self.refine_skip
        if not isinstance(skip, list) or not all(isinstance(k, str) and k in keys for k in skip) or len(set(skip)) != len(skip):
            raise DccsegError(f"model card {self.ref}: 'refine_skip' must be a list of distinct organ keys of this model ({', '.join(keys)})")

    def _check_preprocessing(self) -> None:
        pre = self.preprocessing
        missing = [k for k in PREPROCESSING_KEYS if not isinstance(pre, dict) or k not in pre]
        if missing:
            raise DccsegError(f"model card {self.ref}: preprocessing lacks {', '.join(missing)}")
        if not isinstance(pre["intensity"], dict):
            raise DccsegError(f"model card {self.ref}: preprocessing.intensity must be an object")
        _check_positive_list(self.ref, "coarse_spacing", pre["coarse_spacing"], 3)
        _check_positive_list(self.ref, "refine_spacing", pre["refine_spacing"], 2)
        thickness = pre["refine_slice_thickness"]
        if thickness is not None and not _positive(thickness):
            raise DccsegError(f"model card {self.ref}: preprocessing.refine_slice_thickness must be a positive number or null")
        for key in ("patch_size", "patches_per_slice", "fast_patches_per_slice"):
            if not isinstance(pre[key], int) or isinstance(pre[key], bool) or pre[key] < 1:
                raise DccsegError(f"model card {self.ref}: preprocessing.{key} must be a positive integer")
        trust = pre.get("fusion_trust")
        if trust is not None and not (_positive(trust) and trust <= 0.5):
            raise DccsegError(f"model card {self.ref}: preprocessing.fusion_trust must be a number in (0, 0.5] or null (plain majority vote)")
        if "coarse_scales" in pre and not valid_coarse_scales(pre["coarse_scales"]):
            raise DccsegError(f"model card {self.ref}: preprocessing.coarse_scales must be a list of distinct numbers in [{MIN_COARSE_SCALE}, {MAX_COARSE_SCALE}] that includes 1")
        sizes = pre.get("size_reference_ml")
        if sizes is not None and not (isinstance(sizes, dict) and sizes and all(k in SIZE_ORGANS and _positive(v) for k, v in sizes.items())):
            raise DccsegError(f"model card {self.ref}: preprocessing.size_reference_ml must map some of {', '.join(SIZE_ORGANS)} to positive volumes in ml, or be null")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in OPTIONAL_FIELDS:
            if not data[key]:
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> "ModelCard":
        if not isinstance(data, dict):
            raise DccsegError("a model card must be a JSON object; re-import the model")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        missing = sorted(k for k in ("name", "version", "preprocessing", "architecture", "training") if k not in data)
        if unknown or missing:
            problem = f"unknown fields {unknown}" if unknown else f"missing fields {missing}"
            raise DccsegError(f"model card has {problem}; it is damaged or from an incompatible dccseg version; re-import it")
        return cls(**data)

    def write(self, path: Path) -> None:
        """Write the card as pretty JSON to ``path`` (the caller makes it atomic)."""
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> "ModelCard":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DccsegError(f"no model card at {path}; a model folder holds {CARD_FILE} and its .safetensors weights") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DccsegError(f"model card {path} is not readable JSON ({exc}); re-import the model") from None
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise DccsegError(f"model card {path} is malformed ({exc}); re-import the model") from None


def _positive(value: Any) -> bool:
    return _number(value) and value > 0


def _check_positive_list(ref: str, key: str, value: Any, length: int) -> None:
    if not isinstance(value, (list, tuple)) or len(value) != length or not all(_positive(v) for v in value):
        raise DccsegError(f"model card {ref}: preprocessing.{key} must be a list of {length} positive numbers (mm)")


def check_stage_metrics(ref: str, tables: Any) -> None:
    """``stage_metrics`` is {set name: {"organs": {organ key: {stage: Dice in [0, 1] or null}}, ...}}."""
    problem = f"model card {ref}: 'stage_metrics' must map a set name to a stage table from `dccseg diagnose --output`"
    if not isinstance(tables, dict):
        raise DccsegError(problem)
    for name, table in tables.items():
        organs = table.get("organs") if isinstance(table, dict) else None
        if not isinstance(organs, dict) or not all(key in ORGAN_BY_KEY and isinstance(row, dict) for key, row in organs.items()):
            raise DccsegError(f"{problem} (set '{name}' has no 'organs' table of organ keys)")
        for key, row in organs.items():
            for stage, value in row.items():
                if stage not in STAGE_COLUMNS or not (value is None or (_number(value) and 0.0 <= value <= 1.0)):
                    raise DccsegError(f"{problem} (set '{name}', {key}: '{stage}' must be one of {', '.join(STAGE_COLUMNS)} with a Dice in [0, 1])")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
