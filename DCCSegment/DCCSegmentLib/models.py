"""The model store as the engine lists it (``dccseg models list --json``), for the model selector."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .engine import Engine, EngineCall

DEFAULT_MODEL_NAME = "dccseg-abdomen"
_MEAN_DICE_KEYS = ("dice_mean", "val_dice_mean", "mean_dice")
WEAK_DICE = 0.5


@dataclass(frozen=True)
class ModelInfo:
    """One model version with the model-card facts the selector shows."""

    name: str
    version: str
    path: str
    builtin: bool
    created: str
    description: str
    mean_dice: float | None
    training_data: str
    organs: tuple[dict, ...]
    weak_organs: tuple[str, ...] = ()
    measures_children: bool = False
    """The card holds its training bodies' organ volumes, by which the Child box (``--body-scale auto``) measures a body."""
    learnt_children: bool = False
    """Fine-tuned on children at an adult's size (``train all --body-scale``): it reads a child's scan as the Child box shows it."""

    @property
    def ref(self) -> str:
        """The reference ``dccseg segment --model`` takes."""
        return f"{self.name}@{self.version}"

    def label(self) -> str:
        return f"{self.name} {self.version}" + (" (built-in)" if self.builtin else "")

    def summary(self) -> str:
        """One line for the selector's tooltip/summary: created, mean Dice, training data."""
        parts = [f"created {self.created[:10]}" if self.created else "creation date unknown"]
        parts.append(f"mean Dice {self.mean_dice:.3f}" if self.mean_dice is not None else "no Dice recorded")
        if self.training_data:
            parts.append(f"trained on {self.training_data}")
        return "; ".join(parts)

    def caution(self) -> str:
        """What to check first in Segment Editor: the organs the card measured below ``WEAK_DICE`` on cases the model did not train on;
        and, for a model fine-tuned on children, that a child's scan needs the Child box."""
        weak = f"Dice below {WEAK_DICE} on cases it did not train on: {', '.join(self.weak_organs)}. Check these first." if self.weak_organs else ""
        children = "Fine-tuned on children at an adult's size: tick Child for a child's scan." if self.learnt_children else ""
        return " ".join(t for t in (weak, children) if t)


def parse_model_list(document: Any) -> list[ModelInfo]:
    """Read the JSON of ``models list --json``: a list of entries (or ``{"models": [...]}``)."""
    entries = document.get("models", []) if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise ValueError("models list JSON must be a list of model entries")
    models = [_model_from_entry(e) for e in entries if isinstance(e, dict)]
    return sorted(models, key=lambda m: (m.name, _version_key(m.version)), reverse=True)


def newest(models: list[ModelInfo], name: str = DEFAULT_MODEL_NAME) -> ModelInfo | None:
    """The newest version of ``name`` (user store wins over built-in on equal version)."""
    candidates = [m for m in models if m.name == name]
    return max(candidates, key=lambda m: (_version_key(m.version), not m.builtin), default=None)


LIST_TIMEOUT_S = 120.0


def models_call(engine: Engine) -> EngineCall:
    """The background ``models list`` call; ``parse_model_list(result.json())`` reads its answer."""
    return EngineCall(engine, engine.command("models", "list", "--json"), timeout=LIST_TIMEOUT_S)


def list_models(engine: Engine) -> list[ModelInfo]:
    """Ask the engine for every model version in the user and built-in stores (blocking: scripts and tests)."""
    return parse_model_list(models_call(engine).start().wait().json())


def _model_from_entry(entry: dict) -> ModelInfo:
    card = entry.get("card") if isinstance(entry.get("card"), dict) else entry
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    return ModelInfo(
        name=str(entry.get("name") or card.get("name", "")),
        version=str(entry.get("version") or card.get("version", "")),
        path=str(entry.get("path", "")),
        builtin=bool(entry.get("builtin", False)),
        created=str(card.get("created", "")),
        description=str(card.get("description", "")),
        mean_dice=_mean_dice(metrics),
        training_data=_training_summary(training.get("data")),
        organs=tuple(o for o in card.get("organs", []) if isinstance(o, dict)),
        weak_organs=_weak_organs(metrics, card.get("organs", [])),
        measures_children=isinstance(card.get("preprocessing"), dict) and bool(card["preprocessing"].get("size_reference_ml")),
        learnt_children=training.get("body_scale") not in (None, 1, 1.0),
    )


def _weak_organs(metrics: dict, organs: Any) -> tuple[str, ...]:
    """Organs below ``WEAK_DICE`` on any set of unseen bodies in the card (``metrics.unseen``), else in its per-organ validation table, by display name."""
    unseen = metrics.get("unseen")
    tables = [s.get("dice_per_organ") for s in unseen.values() if isinstance(s, dict)] if isinstance(unseen, dict) else [metrics.get("dice")]
    names = {o.get("key"): o.get("name") or o.get("key") for o in organs if isinstance(o, dict)} if isinstance(organs, list) else {}
    weak = {key: None for table in tables if isinstance(table, dict) for key, dice in table.items() if _is_number(dice) and dice < WEAK_DICE}
    return tuple(str(names.get(key, key)) for key in weak)


def _mean_dice(metrics: dict) -> float | None:
    """The store's convention: ``dice_mean``, else the mean of the per-organ ``dice`` table."""
    for key in _MEAN_DICE_KEYS:
        value = metrics.get(key)
        if _is_number(value):
            return float(value)
    per_organ = metrics.get("dice")
    values = [float(v) for v in per_organ.values() if _is_number(v)] if isinstance(per_organ, dict) else []
    return sum(values) / len(values) if values else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _training_summary(data: Any) -> str:
    if isinstance(data, str):
        return data
    if not isinstance(data, dict):
        return ""
    if isinstance(data.get("summary"), str):
        return data["summary"]
    cases = data.get("cases")
    count = f"{cases} cases" if _is_number(cases) else ""
    phases = data.get("phases")
    if isinstance(phases, dict):
        phase_text = ", ".join(f"{k} {v}" for k, v in phases.items())
    elif isinstance(phases, list):
        phase_text = ", ".join(map(str, phases))
    else:
        phase_text = ""
    if count and phase_text:
        return f"{count} ({phase_text})"
    return count or phase_text


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("+")[0].split("-")[0].split("."))
    except ValueError:
        return (-1,)
