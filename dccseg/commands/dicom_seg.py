"""``dccseg dicom-seg SERIES LABELS OUTPUT.dcm``: write an existing organ label map as a DICOM SEG for PACS.

For results that were checked or edited after ``dccseg segment`` (e.g. in 3D Slicer): the label map must lie
on the grid of the DICOM series in SERIES, whose slices the SEG then references.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import DccsegError
from ..io import check_label_ids, read_image, read_labelmap
from ..io.dicom_seg import Algorithm, check_dicom_source, write_dicom_seg
from ..io.labels import grid_difference
from ..progress import Progress

GRID_TOLERANCE_MM = 1e-3


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("dicom-seg", parents=[common], description=__doc__,
                                   help="write an organ label map as a DICOM SEG referencing its DICOM series")
    parser.add_argument("series", type=Path, help="folder of the segmented DICOM series (or one of its .dcm files)")
    parser.add_argument("labels", type=Path, help="organ label map (ids 1..13) or Slicer .seg.nrrd on that series' grid")
    parser.add_argument("output", type=Path, help="the DICOM SEG file to write (.dcm)")
    parser.add_argument("--model", default=None, help="name@version of the model whose result this is (recorded; segments are marked "
                        "SEMIAUTOMATIC, as a person may have edited them); without it: MANUAL")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.set_defaults(func=run)


def _algorithm(reference: str | None) -> Algorithm | None:
    if reference is None:
        return None
    name, _, version = reference.partition("@")
    if not name or not version:
        raise DccsegError(f"--model {reference!r} must be name@version, e.g. dccseg-abdomen@0.1.0")
    return Algorithm(name, version, "SEMIAUTOMATIC")


def run(args: argparse.Namespace, progress: Progress) -> int:
    algorithm = _algorithm(args.model)
    if args.output.suffix.lower() != ".dcm":
        raise DccsegError(f"name the DICOM SEG output with .dcm, not {args.output.name}")
    if args.output.exists() and not args.overwrite:
        raise DccsegError(f"{args.output} already exists; choose another name or pass --overwrite")
    check_dicom_source(args.series)
    progress.update("write", 0.0, "reading the series and the labels")
    ct = read_image(args.series, require_ct=False)
    labels = read_labelmap(args.labels)
    if not labels.same_grid(ct, GRID_TOLERANCE_MM):
        raise DccsegError(f"the labels are not on the series' grid ({grid_difference(ct, labels)}, series vs labels); export them on the DICOM volume's grid")
    check_label_ids(labels, str(args.labels))
    present = write_dicom_seg(ct.with_array(labels.array), args.series, args.output, algorithm=algorithm)
    progress.update("write", 1.0, str(args.output))
    progress.log(f"wrote {args.output}: {len(present)} segments ({', '.join(o.name for o in present)})")
    return 0
