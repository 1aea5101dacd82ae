"""Map TotalSegmentator-style structure names to tissue classes and to our 13 organ ids."""

from __future__ import annotations

from ..organs import ORGAN_BY_KEY
from .hu_table import ORGAN_TISSUE

STRUCTURE_ALIASES: dict[str, str] = {"portal_vein_and_splenic_vein": "portal_and_splenic_vein"}
"""TotalSegmentator names that differ from our organ keys."""

ORGAN_PARTS: dict[str, str] = {"kidney_cyst_left": "kidney_left", "kidney_cyst_right": "kidney_right"}
"""TotalSegmentator v2 masks of lesions inside an organ: they keep the organ's label (BTCV draws them so)."""

_PART_TISSUE = {"kidney_cyst_left": "gallbladder", "kidney_cyst_right": "gallbladder"}  # simple fluid, 0-20 HU

_GROUPS = (
    ("vertebrae_", "vertebrae"),
    ("rib_", "ribs"),
    ("lung_", "lung"),
    ("heart_myocardium", "heart_myocardium"),
    ("heart_atrium", "heart"),
    ("heart_ventricle", "heart"),
    ("atrial_appendage", "heart"),
    ("pulmonary_vein", "heart"),
    ("gluteus_", "gluteus"),
    ("autochthon_", "autochthon"),
    ("iliopsoas_", "iliopsoas"),
    ("iliac_artery_", "iliac_artery"),
    ("iliac_vena_", "iliac_vena"),
    ("common_carotid_artery_", "neck_artery"),
    ("subclavian_artery_", "neck_artery"),
    ("brachiocephalic_trunk", "neck_artery"),
    ("brachiocephalic_vein_", "great_vein"),
    ("superior_vena_cava", "great_vein"),
    ("hip_", "hip"),
    ("femur_", "femur"),
    ("humerus_", "humerus"),
    ("scapula_", "scapula"),
    ("clavicula_", "clavicula"),
)
"""Structures merged into one label of a compact template: same tissue, never touching (left/right, numbered)."""

HOLLOW = {"stomach": ("stomach_wall", "stomach_contents"), "colon": ("bowel_wall", "bowel_contents"), "small_bowel": ("bowel_wall", "bowel_contents"), "duodenum": ("bowel_wall", "bowel_contents")}
"""Hollow structures rendered as a wall shell around contents."""

_PREFIX_TISSUE = (
    ("vertebrae", "bone_cortical"),
    ("rib", "bone_cortical"),
    ("lung", "lung"),
    ("heart_myocardium", "myocardium"),
    ("heart", "heart_blood"),
    ("atrial_appendage", "heart_blood"),
    ("pulmonary_vein", "heart_blood"),
    ("neck_artery", "artery"),
    ("common_carotid", "artery"),
    ("subclavian_artery", "artery"),
    ("brachiocephalic_trunk", "artery"),
    ("great_vein", "vein"),
    ("brachiocephalic_vein", "vein"),
    ("superior_vena_cava", "vein"),
    ("sternum", "bone_cortical"),
    ("skull", "bone_cortical"),
    ("costal_cartilages", "bone_cancellous"),
    ("iliac_artery", "artery"),
    ("iliac_vena", "vein"),
    ("autochthon", "muscle"),
    ("iliopsoas", "muscle"),
    ("gluteus", "muscle"),
    ("hip", "bone_cortical"),
    ("femur", "bone_cortical"),
    ("humerus", "bone_cortical"),
    ("scapula", "bone_cortical"),
    ("clavicula", "bone_cortical"),
    ("sacrum", "bone_cortical"),
    ("pulmonary_artery", "pulmonary_artery"),
    ("trachea", "air"),
    ("urinary_bladder", "urine"),
    ("brain", "brain"),
    ("face", "soft_tissue"),
)


def structure_group(structure: str) -> str:
    """The label a structure gets in a compact template: its group (``rib_left_3`` -> ``ribs``) or itself."""
    return next((group for prefix, group in _GROUPS if structure.startswith(prefix)), structure)


def organ_key(structure: str) -> str | None:
    """Our organ key for a structure name, or None when it is not one of the 13 organs."""
    key = STRUCTURE_ALIASES.get(structure, ORGAN_PARTS.get(structure, structure))
    return key if key in ORGAN_BY_KEY else None


def organ_label(structure: str) -> int:
    """Our organ id (1..13) for a structure name, 0 for every other structure."""
    key = organ_key(structure)
    return ORGAN_BY_KEY[key].label if key else 0


def structure_tissue(structure: str) -> str:
    """The tissue class that renders a structure (its wall for hollow organs, shell for bones)."""
    if structure in HOLLOW:
        return HOLLOW[structure][0]
    if structure in _PART_TISSUE:
        return _PART_TISSUE[structure]
    key = organ_key(structure)
    if key:
        return ORGAN_TISSUE[key]
    for prefix, tissue in _PREFIX_TISSUE:
        if structure.startswith(prefix):
            return tissue
    return "soft_tissue"
