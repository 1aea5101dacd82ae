"""The organ table: the single source of truth for ids, names, colours and terminology.

The 13 BTCV organs, ids 1..13 in BTCV order. Codes are DICOM/SNOMED CT (scheme ``SCT``)
in the form 3D Slicer's terminology uses: (coding scheme, code value, code meaning).
The Slicer modules import this table too (through the engine), so there is one copy only.
"""

from __future__ import annotations

from dataclasses import dataclass

Code = tuple[str, str, str]

ANATOMICAL_STRUCTURE: Code = ("SCT", "123037004", "Anatomical Structure")
RIGHT: Code = ("SCT", "24028007", "Right")
LEFT: Code = ("SCT", "7771000", "Left")
TERMINOLOGY_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


@dataclass(frozen=True)
class Organ:
    """One organ of the label table."""

    label: int
    key: str
    name: str
    color: tuple[int, int, int]
    category: Code
    type: Code
    modifier: Code | None = None

    @property
    def color_float(self) -> tuple[float, float, float]:
        """The colour as floats in [0, 1], as Slicer's segmentation nodes store it."""
        return tuple(c / 255.0 for c in self.color)  # type: ignore[return-value]

    def terminology_string(self) -> str:
        """The terminology entry in 3D Slicer's serialised form (``SegmentN_Terminology`` in .seg.nrrd)."""
        modifier = "^".join(self.modifier) if self.modifier else "^^"
        return "~".join(
            [
                TERMINOLOGY_CONTEXT,
                "^".join(self.category),
                "^".join(self.type),
                modifier,
                ANATOMIC_CONTEXT,
                "^^",
                "^^",
            ]
        )


def _organ(label: int, key: str, name: str, color: tuple[int, int, int], code: str, meaning: str, modifier: Code | None = None) -> Organ:
    return Organ(label, key, name, color, ANATOMICAL_STRUCTURE, ("SCT", code, meaning), modifier)


ORGANS: tuple[Organ, ...] = (
    _organ(1, "spleen", "spleen", (157, 108, 162), "78961009", "Spleen"),
    _organ(2, "kidney_right", "right kidney", (185, 102, 83), "64033007", "Kidney", RIGHT),
    _organ(3, "kidney_left", "left kidney", (212, 126, 151), "64033007", "Kidney", LEFT),
    _organ(4, "gallbladder", "gallbladder", (139, 150, 98), "28231008", "Gallbladder"),
    _organ(5, "esophagus", "esophagus", (211, 171, 143), "32849002", "Esophagus"),
    _organ(6, "liver", "liver", (221, 130, 101), "10200004", "Liver"),
    _organ(7, "stomach", "stomach", (216, 132, 105), "69695003", "Stomach"),
    _organ(8, "aorta", "aorta", (224, 97, 76), "15825003", "Aorta"),
    _organ(9, "inferior_vena_cava", "inferior vena cava", (0, 151, 206), "64131007", "Inferior vena cava"),
    _organ(10, "portal_and_splenic_vein", "portal and splenic vein", (0, 112, 165), "32764006", "Portal vein"),
    _organ(11, "pancreas", "pancreas", (249, 180, 111), "15776009", "Pancreas"),
    _organ(12, "adrenal_gland_right", "right adrenal gland", (244, 186, 150), "23451007", "Adrenal gland", RIGHT),
    _organ(13, "adrenal_gland_left", "left adrenal gland", (255, 214, 170), "23451007", "Adrenal gland", LEFT),
)

ORGAN_BY_LABEL: dict[int, Organ] = {o.label: o for o in ORGANS}
ORGAN_BY_KEY: dict[str, Organ] = {o.key: o for o in ORGANS}
NUM_ORGANS = len(ORGANS)

PHASES: tuple[str, ...] = ("non-contrast", "arterial", "portal-venous", "delayed", "unknown")


def organ_from_name(name: str) -> Organ:
    """Look an organ up by key (``kidney_right``), display name (``right kidney``) or id (``2``)."""
    text = name.strip().lower()
    if text.isdigit() and int(text) in ORGAN_BY_LABEL:
        return ORGAN_BY_LABEL[int(text)]
    for organ in ORGANS:
        if text in (organ.key, organ.name, organ.name.replace(" ", "_")):
            return organ
    from .errors import DccsegError

    known = ", ".join(o.key for o in ORGANS)
    raise DccsegError(f"unknown organ '{name}'; use one of: {known} (or ids 1-{NUM_ORGANS})")


def parse_organ_list(text: str | None) -> list[Organ]:
    """Parse a comma-separated organ list (``liver,spleen`` or ``6,1``); None or empty means all."""
    if not text:
        return list(ORGANS)
    organs = [organ_from_name(part) for part in text.split(",") if part.strip()]
    return sorted(set(organs), key=lambda o: o.label)
