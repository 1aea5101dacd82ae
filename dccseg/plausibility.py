"""Plausibility flags: hints that an organ's segmentation looks wrong, from its statistics alone.

Checks per organ (reference values and their sources in ``docs/statistics.md``): volume against a range
around published adult CT volumetry, missing while a companion organ is fully in the scan, side of the body,
position relative to its neighbour, number of sizeable pieces, core HU against the guessed phase's range, and,
when ``dccseg segment`` stored it, the coarse network's confidence in the organ.
A flag is a hint for the person reviewing the result; it never changes the result.
"""

from __future__ import annotations

from typing import Any

from .organs import ORGAN_BY_KEY
from .phantoms.hu_table import CONTRAST_PHASES, TISSUE_BY_NAME

VOLUME_SOURCE = "Geraghty et al., Abdom Imaging 2004;29:482-490"
VOLUME_RANGES_ML: dict[str, tuple[float, float]] = {
    "liver": (500.0, 3500.0),
    "spleen": (30.0, 1000.0),
    "kidney_right": (50.0, 450.0),
    "kidney_left": (50.0, 450.0),
    "pancreas": (15.0, 250.0),
    "adrenal_gland_right": (1.0, 25.0),
    "adrenal_gland_left": (1.0, 25.0),
}
"""Plausible adult volume (ml) per organ: the published normal means widened about threefold each way."""
COMPANIONS: dict[str, tuple[str, ...]] = {
    "liver": ("gallbladder",),
    "kidney_right": ("kidney_left",),
    "kidney_left": ("kidney_right",),
    "adrenal_gland_right": ("adrenal_gland_left",),
    "adrenal_gland_left": ("adrenal_gland_right",),
}
"""An organ is expected when one of its companions lies wholly inside the scan (same level of the body)."""
RIGHT_SIDED = ("liver", "gallbladder", "kidney_right", "adrenal_gland_right", "inferior_vena_cava")
LEFT_SIDED = ("spleen", "kidney_left", "adrenal_gland_left", "stomach")
SIDE_MARGIN_MM = 10.0
ABOVE: tuple[tuple[str, str], ...] = (
    ("liver", "kidney_right"),
    ("spleen", "kidney_left"),
    ("adrenal_gland_right", "kidney_right"),
    ("adrenal_gland_left", "kidney_left"),
)
"""(upper, lower): the upper organ's centre lies above the lower one's."""
POSITION_MARGIN_MM = 10.0
MAX_PIECES = {"pancreas": 2, "portal_and_splenic_vein": 2}
"""Sizeable pieces allowed (1 for every other organ)."""
MIN_PIECE_ML, MIN_PIECE_FRACTION = 0.5, 0.01
HU_TISSUES: dict[str, tuple[str, ...]] = {
    "liver": ("liver",),
    "spleen": ("spleen",),
    "kidney_right": ("kidney_cortex", "kidney_medulla"),
    "kidney_left": ("kidney_cortex", "kidney_medulla"),
    "gallbladder": ("gallbladder",),
    "aorta": ("aorta",),
    "inferior_vena_cava": ("ivc",),
    "portal_and_splenic_vein": ("portal_vein",),
}
"""Organs whose core HU is checked, with the tissues of ``dccseg.phantoms.hu_table`` that bound it."""
UNSURE_BELOW = 0.8
"""An organ whose coarse confidence (``dccseg.inference.findings``) is below this is flagged for review first (``docs/statistics.md``)."""
HU_TOLERANCE = 40.0
MIN_PHASE_CONFIDENCE = 0.5


def _flag(organ: str | None, check: str, message: str) -> dict[str, Any]:
    return {"organ": organ, "check": check, "message": message}


def _name(key: str) -> str:
    return ORGAN_BY_KEY[key].name


def check_case(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Every flag for a case's statistics (:func:`dccseg.statistics.case_statistics`), organ by organ."""
    organs = stats["organs"]
    present = {key: entry for key, entry in organs.items() if entry["present"]}
    flags: list[dict[str, Any]] = []
    for key, entry in organs.items():
        flags += _missing(key, present) if not entry["present"] else []
    for key, entry in present.items():
        flags += _volume(key, entry) + _pieces(key, entry) + _side(key, entry, stats.get("body_midline_x_mm"))
        flags += _hu(key, entry, stats["phase"]) + _confidence(key, entry)
    flags += _positions(present)
    return flags


def _missing(key: str, present: dict[str, Any]) -> list[dict[str, Any]]:
    whole = [c for c in COMPANIONS.get(key, ()) if c in present and not present[c]["touches_scan_border"]]
    if not whole:
        return []
    return [_flag(key, "missing", f"{_name(key)} not found although the {_name(whole[0])} is fully in the scan: removed, or missed by the model?")]


def _volume(key: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    if key not in VOLUME_RANGES_ML:
        return []
    low, high = VOLUME_RANGES_ML[key]
    volume = entry["volume_ml"]
    if volume > high:
        return [_flag(key, "volume", f"{_name(key)} {volume:.0f} ml is above the plausible {low:.0f}-{high:.0f} ml: leaked into neighbours, or enlarged?")]
    if volume < low and not entry["touches_scan_border"]:
        return [_flag(key, "volume", f"{_name(key)} {volume:.1f} ml is below the plausible {low:.0f}-{high:.0f} ml: partly missed, or atrophic?")]
    return []


def _pieces(key: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    minimum = max(MIN_PIECE_ML, MIN_PIECE_FRACTION * entry["volume_ml"])
    sizeable = sum(1 for volume in entry["largest_pieces_ml"] if volume >= minimum)
    allowed = MAX_PIECES.get(key, 1)
    if sizeable <= allowed:
        return []
    return [_flag(key, "pieces", f"{_name(key)} is in {sizeable} separate pieces (expected at most {allowed}): fragments of a neighbour, or parts missed?")]


def _side(key: str, entry: dict[str, Any], midline_x: float | None) -> list[dict[str, Any]]:
    if midline_x is None or key not in RIGHT_SIDED + LEFT_SIDED:
        return []
    offset = entry["centroid_mm"][0] - midline_x  # LPS: +x is the patient's left
    expected, wrong = ("right", offset > SIDE_MARGIN_MM) if key in RIGHT_SIDED else ("left", offset < -SIDE_MARGIN_MM)
    if not wrong:
        return []
    other = "left" if expected == "right" else "right"
    return [_flag(key, "side", f"{_name(key)} lies {abs(offset):.0f} mm {other} of the body midline, expected on the {expected}: mislabelled, or situs inversus?")]


def _positions(present: dict[str, Any]) -> list[dict[str, Any]]:
    flags = []
    for upper, lower in ABOVE:
        if upper not in present or lower not in present or present[upper]["touches_scan_border"] or present[lower]["touches_scan_border"]:
            continue
        drop = present[lower]["centroid_mm"][2] - present[upper]["centroid_mm"][2]  # LPS: +z is up (head)
        if drop > POSITION_MARGIN_MM:
            message = f"{_name(upper)} lies {drop:.0f} mm below the centre of the {_name(lower)}, expected above it: mislabelled?"
            flags.append(_flag(upper, "position", message))
    return flags


def hu_range(key: str, phase: dict[str, Any]) -> tuple[float, float, str]:
    """(low, high, phase) of the organ's expected mean HU: the guessed phase's range, or all phases' when unsure."""
    confident = phase.get("guess") in CONTRAST_PHASES and phase.get("confidence", 0.0) >= MIN_PHASE_CONFIDENCE
    phases = (phase["guess"],) if confident else CONTRAST_PHASES
    ranges = [TISSUE_BY_NAME[t].range(p) for t in HU_TISSUES[key] for p in phases]
    return min(r[0] for r in ranges), max(r[1] for r in ranges), phase["guess"] if confident else "any"


def _confidence(key: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    value = entry.get("coarse_confidence")
    if value is None or value >= UNSURE_BELOW:
        return []
    return [_flag(key, "confidence", f"the model is unsure of the {_name(key)} (confidence {value:.3f}, below {UNSURE_BELOW:.2f}): review it first")]


def _hu(key: str, entry: dict[str, Any], phase: dict[str, Any]) -> list[dict[str, Any]]:
    if key not in HU_TISSUES:
        return []
    value = (entry.get("hu_core") or entry["hu"])["median"]
    low, high, name = hu_range(key, phase)
    if low - HU_TOLERANCE <= value <= high + HU_TOLERANCE:
        return []
    return [_flag(key, "hu", f"{_name(key)} core {value:.0f} HU is far outside {low:.0f}-{high:.0f} HU ({name} phase): wrong tissue, or another phase?")]
