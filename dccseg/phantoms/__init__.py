"""Phase-aware synthetic CT: HU table, procedural phantom, label-driven synthesis, phase simulation."""

from .deformation import ANATOMY_PRESETS, AnatomySettings
from .hu_table import CONTRAST_PHASES, hu_range, sample_scan, sample_timed_scan, typical_scan
from .pathology import PathologySettings, add_pathology
from .phase_simulation import measure_organ_means, simulate_phase
from .procedural import procedural_anatomy, procedural_phantom
from .synthesis import prepare_template, synthesize_from_labels
from .templates import build_template_from_structure_dir, load_template, load_templates

__all__ = [
    "ANATOMY_PRESETS",
    "AnatomySettings",
    "CONTRAST_PHASES",
    "PathologySettings",
    "add_pathology",
    "build_template_from_structure_dir",
    "hu_range",
    "load_template",
    "load_templates",
    "measure_organ_means",
    "prepare_template",
    "procedural_anatomy",
    "procedural_phantom",
    "sample_scan",
    "sample_timed_scan",
    "simulate_phase",
    "synthesize_from_labels",
    "typical_scan",
]
