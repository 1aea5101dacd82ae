"""Match organ names as other tools write them (BTCV, AMOS, MSD, TotalSegmentator, Slicer) to our organs."""

from __future__ import annotations

import re

from ..organs import ORGANS, Organ

# Normalised alternative names (see ``normalise_name``) for each organ key, besides key and display name.
ALIASES: dict[str, tuple[str, ...]] = {
    "kidney_right": ("kidney r", "r kidney", "rkidney", "kidney right", "right kidneys"),
    "kidney_left": ("kidney l", "l kidney", "lkidney", "kidney left", "left kidneys"),
    "gallbladder": ("gall bladder",),
    "esophagus": ("oesophagus",),
    "aorta": ("arota", "abdominal aorta"),
    "inferior_vena_cava": ("ivc", "postcava", "vena cava inferior", "inferior vena cava ivc"),
    "portal_and_splenic_vein": (
        "portal vein and splenic vein",
        "portal vein splenic vein",
        "portal splenic vein",
        "portal and splenic veins",
        "portal vein and splenic",
    ),
    "adrenal_gland_right": ("right adrenal", "adrenal right", "adrenal gland r", "r adrenal gland", "rag", "right adrenal glands"),
    "adrenal_gland_left": ("left adrenal", "adrenal left", "adrenal gland l", "l adrenal gland", "lag", "left adrenal glands"),
}


def normalise_name(name: str) -> str:
    """Lower case, with underscores, dashes, dots and repeated spaces turned into single spaces."""
    return re.sub(r"[\s_\-.]+", " ", name.strip().lower()).strip()


def _build_table() -> dict[str, Organ]:
    table: dict[str, Organ] = {}
    for organ in ORGANS:
        for name in (organ.key, organ.name, *ALIASES.get(organ.key, ())):
            table[normalise_name(name)] = organ
    return table


NAME_TABLE: dict[str, Organ] = _build_table()


def organ_for_name(name: str) -> Organ | None:
    """The organ a structure name refers to, or None when it is not one of our organs."""
    return NAME_TABLE.get(normalise_name(name))
