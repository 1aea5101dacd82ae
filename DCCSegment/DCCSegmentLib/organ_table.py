"""The organ table as the modules see it, and matching of Slicer segments to organ ids.

The table comes from the engine (``dccseg.organs``, importable once the engine is installed into
Slicer's Python), or else from a model card's ``organs`` list; there is no third copy here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class OrganEntry:
    """One organ: id, key, display name, and (when the engine provides them) SNOMED codes."""

    label: int
    key: str
    name: str
    type_code: str = ""
    modifier_code: str = ""


@dataclass(frozen=True)
class SegmentMatch:
    """Which organ id a segment goes to (None: unknown to the organ table)."""

    segment_id: str
    segment_name: str
    label: int | None


def _tokens(text: str) -> frozenset[str]:
    return frozenset(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


_ALIASES = {
    "ivc": "inferior_vena_cava",
    "vena cava inferior": "inferior_vena_cava",
    "portal vein": "portal_and_splenic_vein",
    "portal vein and splenic vein": "portal_and_splenic_vein",
    "oesophagus": "esophagus",
    "gall bladder": "gallbladder",
}
_ALIAS_BY_TOKENS = {_tokens(alias): key for alias, key in _ALIASES.items()}


def load_organ_table(card_organs: Iterable[dict] | None = None) -> list[OrganEntry]:
    """The engine's organ table; from ``card_organs`` (a model card's list) when the engine is not importable."""
    try:
        from dccseg.organs import ORGANS
    except ImportError:
        if not card_organs:
            raise
        return organs_from_card(card_organs)
    return [OrganEntry(o.label, o.key, o.name, o.type[1], o.modifier[1] if o.modifier else "") for o in ORGANS]


def organs_from_card(card_organs: Iterable[dict]) -> list[OrganEntry]:
    """Organ entries from a model card's ``[{"label", "key", "name"}, ...]``."""
    entries = [OrganEntry(int(o["label"]), str(o["key"]), str(o.get("name", o["key"]))) for o in card_organs]
    return sorted(entries, key=lambda e: e.label)


def _terminology_codes(terminology: str) -> tuple[str, str]:
    """(type code, modifier code) of a Slicer terminology string ``ctx~cat~type~modifier~...``."""
    fields = terminology.split("~")
    if len(fields) < 4:
        return "", ""
    type_parts = fields[2].split("^")
    modifier_parts = fields[3].split("^")
    return (type_parts[1] if len(type_parts) > 1 else "", modifier_parts[1] if len(modifier_parts) > 1 else "")


def match_organ(name: str, terminology: str, organs: Sequence[OrganEntry]) -> OrganEntry | None:
    """The organ a segment stands for: by terminology codes first, then by name (any word order)."""
    type_code, modifier_code = _terminology_codes(terminology or "")
    if type_code:
        for organ in organs:
            if organ.type_code == type_code and organ.modifier_code == modifier_code:
                return organ
    wanted = _tokens(_ALIAS_BY_TOKENS.get(_tokens(name), name))
    for organ in organs:
        if wanted in (_tokens(organ.key), _tokens(organ.name)) or name.strip() == str(organ.label):
            return organ
    return None


def map_segments(segments: Iterable[tuple[str, str, str]], organs: Sequence[OrganEntry]) -> list[SegmentMatch]:
    """Map (segment id, name, terminology) triples to organ ids; a second segment for one organ is refused."""
    matches: list[SegmentMatch] = []
    taken: set[int] = set()
    for segment_id, name, terminology in segments:
        organ = match_organ(name, terminology, organs)
        label = organ.label if organ is not None and organ.label not in taken else None
        if label is not None:
            taken.add(label)
        matches.append(SegmentMatch(segment_id, name, label))
    return matches
