"""Rebuild the bundled body templates (dccseg/data/templates/*.npz) from TotalSegmentator structure masks.

    python tools/build_templates.py SUBJECTS_DIR [--example EXAMPLE_STRUCTURES_DIR]

SUBJECTS_DIR holds TotalSegmentator data set subjects (``sNNNN/segmentations/*.nii.gz``, v2 names);
EXAMPLE_STRUCTURES_DIR the 104 v1 masks of the bundled example CT. Each body becomes one compact labelmap
(structures grouped, see ``dccseg.phantoms.structures.structure_group``) at its own 1.5 mm (3 mm) grid.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dccseg.phantoms.templates import BUNDLED, build_template_from_structure_dir

OUT = Path(__file__).resolve().parents[1] / "dccseg" / "data" / "templates"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("subjects", type=Path)
    parser.add_argument("--example", type=Path, help="structure masks of the bundled example CT (v1 names)")
    args = parser.parse_args()
    sources = {body: args.subjects / body / "segmentations" for body in BUNDLED if (args.subjects / body).is_dir()}
    if args.example:
        sources["totalseg_example"] = args.example
    for body, folder in sources.items():
        out = build_template_from_structure_dir(folder, OUT / f"{body}.npz")
        print(f"{body}: {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
