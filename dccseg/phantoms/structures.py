"""Map TotalSegmentator-style structure names to tissue classes and to our 13 organ ids."""

from __future__ import annotations

from ..organs import ORGAN_BY_KEY
from .hu_table import ORGAN_TISSUE

STRUCTURE_ALIASES: dict[str, str] = {"portal_vein_and_splenic_vein": "portal_and_splenic_vein"}
"""TotalSegmentator names that differ from our organ keys."""

HOLLOW = {"stomach": ("stomach_wall", "stomach_contents"), "colon": ("bowel_wall", "bowel_contents"), "small_bowel": ("bowel_wall", "bowel_contents"), "duodenum": ("bowel_wall", "bowel_contents")}
"""Hollow structures rendered as a wall shell around contents."""

_PREFIX_TISSUE = (
    ("vertebrae_", "bone_cortical"),
    ("rib_", "bone_cortical"),
    ("lung_", "lung"),
    ("heart_atrium", "heart_blood"),
    ("heart_ventricle", "heart_blood"),
    ("heart_myocardium", "myocardium"),
    ("iliac_artery", "artery"),
    ("iliac_vena", "vein"),
    ("autochthon", "muscle"),
    ("iliopsoas", "muscle"),
    ("gluteus", "muscle"),
    ("hip_", "bone_cortical"),
    ("femur_", "bone_cortical"),
    ("humerus_", "bone_cortical"),
    ("scapula_", "bone_cortical"),
    ("clavicula_", "bone_cortical"),
    ("sacrum", "bone_cortical"),
    ("pulmonary_artery", "pulmonary_artery"),
    ("trachea", "air"),
    ("urinary_bladder", "urine"),
    ("brain", "brain"),
    ("face", "soft_tissue"),
)


def organ_key(structure: str) -> str | None:
    """Our organ key for a structure name, or None when it is not one of the 13 organs."""
    key = STRUCTURE_ALIASES.get(structure, structure)
    return key if key in ORGAN_BY_KEY else None


def organ_label(structure: str) -> int:
    """Our organ id (1..13) for a structure name, 0 for every other structure."""
    key = organ_key(structure)
    return ORGAN_BY_KEY[key].label if key else 0


def structure_tissue(structure: str) -> str:
    """The tissue class that renders a structure (its wall for hollow organs, shell for bones)."""
    if structure in HOLLOW:
        return HOLLOW[structure][0]
    key = organ_key(structure)
    if key:
        return ORGAN_TISSUE[key]
    for prefix, tissue in _PREFIX_TISSUE:
        if structure.startswith(prefix):
            return tissue
    return "soft_tissue"
