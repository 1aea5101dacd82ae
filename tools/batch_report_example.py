"""Rebuild the example batch report in docs/examples/batch-report/ from the bundled real CTs and their reference labels.

    python tools/batch_report_example.py docs/examples/batch-report

Three cases, through the same code a folder run of ``dccseg segment`` uses (statistics, flags, overlay, report):
the real non-contrast CT, the real portal-venous DICOM slab, and the non-contrast CT with two constructed
errors (left kidney removed, spleen mirrored to the right) so that the report shows what flags look like.
The labels are the bundled reference labels (TotalSegmentator predictions), not this project's model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dccseg.case_results import analyse_case, statistics_path, write_statistics
from dccseg.io import read_image, read_labelmap
from dccseg.organs import ORGAN_BY_KEY, ORGANS
from dccseg.report import write_batch_report, write_overlay
from dccseg.statistics import body_midline_x, index_to_lps

DATA = Path(__file__).resolve().parents[1] / "dccseg" / "data"


def mirrored(ct, mask: np.ndarray) -> np.ndarray:
    """``mask`` reflected left-right through the body midline, on the same grid."""
    matrix, origin = index_to_lps(ct)
    points = origin + np.argwhere(mask)[:, ::-1] @ matrix.T
    points[:, 0] = 2 * body_midline_x(ct) - points[:, 0]
    xyz = np.rint((points - origin) @ np.linalg.inv(matrix).T).astype(int)
    inside = np.all((xyz >= 0) & (xyz < np.array(ct.size_xyz)), axis=1)
    out = np.zeros_like(mask)
    out[xyz[inside, 2], xyz[inside, 1], xyz[inside, 0]] = True
    return out


def with_constructed_errors(ct, labels):
    array = labels.array.copy()
    array[array == ORGAN_BY_KEY["kidney_left"].label] = 0
    spleen = array == ORGAN_BY_KEY["spleen"].label
    array[spleen] = 0
    array[mirrored(ct, spleen)] = ORGAN_BY_KEY["spleen"].label
    return labels.with_array(array)


def cases():
    ct = read_image(DATA / "totalseg_example" / "example_ct.nii.gz")
    labels = read_labelmap(DATA / "totalseg_example" / "example_ct_organs.nii.gz", reference=ct)
    yield "real-noncontrast", ct, labels
    slab = read_image(DATA / "totalseg_dicom_slab" / "dicom")
    yield "real-slab-portal-venous", slab, read_labelmap(DATA / "totalseg_dicom_slab" / "organs.nii.gz", reference=slab)
    yield "constructed-errors", ct, with_constructed_errors(ct, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path)
    folder = parser.parse_args().output
    for case_id, ct, labels in cases():
        stats = analyse_case(ct, labels, ORGANS, case=case_id, image_file=None, labels_file="bundled reference labels", model=None, seconds=None)
        write_statistics(stats, statistics_path(folder / f"{case_id}.nii.gz"))
        write_overlay(ct, labels, folder, case_id)
    print(write_batch_report(folder, "three example cases"))


if __name__ == "__main__":
    main()
