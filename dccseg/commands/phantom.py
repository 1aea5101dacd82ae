"""``dccseg phantom procedural|synth|simulate-phase``: phase-aware synthetic CT as ready datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..dataset import Dataset
from ..errors import DccsegError
from ..fileutil import strip_suffix
from ..io import read_image, read_labelmap, write_image
from ..phantoms import ANATOMY_PRESETS, CONTRAST_PHASES, load_templates, procedural_phantom, simulate_phase, synthesize_from_labels
from ..phantoms.field_of_view import FieldOfViewSettings
from ..phantoms.pathology import PathologySettings
from ..phantoms.synthesis import prepared
from ..phantoms.templates import BODY_SPLIT, BUNDLED
from ..progress import Progress
from ..volume import Volume


ANY_PHASE = "any"


TRAINING_BODIES = "training-bodies"


def _phases(text: str) -> list[str]:
    if text == "all":
        return list(CONTRAST_PHASES)
    if text == ANY_PHASE:
        return [ANY_PHASE]
    phases = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in phases if p not in CONTRAST_PHASES]
    if unknown or not phases:
        raise DccsegError(f"unknown phase '{','.join(unknown) or text}'; use all or a comma-separated list of: {', '.join(CONTRAST_PHASES)}")
    return phases


def _shape(text: str) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 8:
        raise DccsegError(f"--shape must be three integers >= 8 as z,y,x (e.g. 64,64,64), not '{text}'")
    return values  # type: ignore[return-value]


def _store(dataset: Dataset, case_id: str, ct: Volume, labels: Volume, phase: str, source: str, notes: str, subject: str = "") -> None:
    if dataset.case(case_id) is not None:
        raise DccsegError(f"{dataset.root} already holds case '{case_id}'; use another --seed or another output folder")
    hu = ct.with_array(np.round(ct.array).astype(np.float32))
    dataset.add_volumes(case_id, hu, labels, phase, source=source, notes=notes, subject=subject)


def run_procedural(args: argparse.Namespace, progress: Progress) -> int:
    shape, phases = _shape(args.shape), _phases(args.phase)
    dataset = Dataset.open_or_new(args.out_dir, name="procedural phantoms")
    for index, phase in enumerate(phases):
        progress.update("phantom", index / len(phases), f"{phase} (seed {args.seed})")
        ct, labels = procedural_phantom(shape, phase=phase, seed=args.seed)
        _store(dataset, f"procedural-{args.seed}-{phase}", ct, labels, phase, "dccseg phantom procedural", f"shape {args.shape}, seed {args.seed}")
    progress.update("phantom", 1.0, f"{len(phases)} case(s) in {dataset.root}")
    return 0


def _template_names(text: str) -> list[str]:
    """``--template``: one name or path, a comma-separated list, or ``training-bodies`` (the bundled bodies training may use)."""
    if text == TRAINING_BODIES:
        return list(BODY_SPLIT["train"])
    return [part.strip() for part in text.split(",") if part.strip()]


def run_synth(args: argparse.Namespace, progress: Progress) -> int:
    phases = _phases(args.phase)
    if args.count < 1:
        raise DccsegError("--count must be at least 1")
    for option, value in (("--random-style", args.random_style), ("--pathology", args.pathology)):
        if not 0.0 <= value <= 1.0:
            raise DccsegError(f"{option} is a fraction of the anatomies between 0 and 1, not {value}")
    progress.update("synth", 0.0, "preparing the template anatomy")
    sources = [(name, template) for name in _template_names(args.template) for template in load_templates(name)]
    if not sources:
        raise DccsegError(f"template '{args.template}' holds no label maps; give a dataset with labelled cases or a structure folder")
    spacing = tuple(float(v) for v in args.spacing.split(",")) if args.spacing else None
    dataset = Dataset.open_or_new(args.out_dir, name="synthetic CT")
    total = args.count * len(phases)
    anatomy = ANATOMY_PRESETS[args.anatomy]
    for i in range(args.count):
        name, (labels_volume, names) = sources[i % len(sources)]
        tag = strip_suffix(Path(name)) if Path(name).exists() else name
        template = prepared(labels_volume, names)
        donors = [prepared(*other) for k, (_, other) in enumerate(sources) if k != i % len(sources)] if anatomy.organ_swap > 0 else []
        seed = args.seed * 100003 + i
        rng = np.random.default_rng([seed, 1])
        style = "random" if rng.uniform() < args.random_style else "realistic"
        pathology = PathologySettings() if rng.uniform() < args.pathology else None
        for j, phase in enumerate(phases):
            phase = str(rng.choice(CONTRAST_PHASES)) if phase == ANY_PHASE else phase
            progress.update("synth", (i * len(phases) + j) / total, f"case {i + 1}/{args.count}, {tag}, {phase}")
            view = None if args.whole_view else FieldOfViewSettings()
            ct, labels = synthesize_from_labels(template, phase=phase, seed=seed, output_spacing=spacing, style=style, field_of_view=view, pathology=pathology,
                                                anatomy=anatomy, donors=donors)
            notes = f"template {tag}, seed {seed}, {args.anatomy} anatomy, {style} HU{', pathology' if pathology else ''}; same anatomy in every phase of this seed"
            _store(dataset, f"synth-{tag}-{seed}-{phase}", ct, labels, phase, "dccseg phantom synth", notes, subject=tag)
    progress.update("synth", 1.0, f"{total} case(s) in {dataset.root}")
    return 0


def run_simulate(args: argparse.Namespace, progress: Progress) -> int:
    progress.update("simulate-phase", 0.0, "reading")
    ct = read_image(args.ct)
    labels = read_labelmap(args.label, reference=ct)
    progress.update("simulate-phase", 0.3, f"{args.source} -> {args.target}")
    out = simulate_phase(ct, labels, args.source, args.target, seed=args.seed)
    write_image(out.with_array(np.round(out.array).astype(np.float32)), args.out)
    progress.update("simulate-phase", 1.0, f"wrote {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("phantom", parents=[common], help="phase-aware synthetic CT (procedural, from real anatomy, phase simulation)")
    sub = parser.add_subparsers(dest="phantom_command", metavar="KIND", required=True)
    phases = f"all or a comma-separated list of: {', '.join(CONTRAST_PHASES)}"

    procedural = sub.add_parser("procedural", parents=[common], help="analytic abdomen phantoms, written as a dataset folder")
    procedural.add_argument("out_dir", help="dataset folder (new, empty, or an existing dataset to add to)")
    procedural.add_argument("--phase", default="all", help=f"contrast phase(s): {phases} (default all)")
    procedural.add_argument("--shape", default="64,64,64", help="grid size z,y,x (default 64,64,64)")
    procedural.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same phantom")
    procedural.set_defaults(func=run_procedural)

    synth = sub.add_parser("synth", parents=[common], help="synthetic CT from template anatomy (deformed, rendered per phase), as a dataset folder")
    synth.add_argument("out_dir", help="dataset folder (new, empty, or an existing dataset to add to)")
    synth.add_argument("--phase", default="all", help=f"contrast phase(s) rendered for each anatomy: {phases}, or {ANY_PHASE} (one random phase each; default all)")
    synth.add_argument("--count", type=int, default=4, help="number of random anatomies, drawn from the templates in turn (default 4)")
    synth.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same cases")
    synth.add_argument("--template", default="totalseg_example", help=f"bundled body ({', '.join(BUNDLED)}), {TRAINING_BODIES}, a structure-mask folder, a labelmap, a dataset folder, or a comma-separated list")
    synth.add_argument("--whole-view", action="store_true", help="render every organ's whole z range and the whole axial plane (test sets); default: varied fields of view")
    synth.add_argument("--pathology", type=float, default=0.0, help="fraction of anatomies drawn with pathology: lesions, masses, enlarged, shrunken or missing organs (default 0)")
    synth.add_argument("--random-style", type=float, default=0.0, help="fraction of anatomies rendered with random HU per tissue (domain randomisation; default 0)")
    synth.add_argument("--spacing", default=None, help="output spacing x,y,z in mm (default: the template's)")
    synth.add_argument("--anatomy", choices=sorted(ANATOMY_PRESETS), default="typical",
                       help="how far each body is deformed: typical (+-15%% size), wide (bodies +-25%%, organs +-30%% and moved up to 15 mm) or mixed "
                            "(typical, and each solid or hollow organ shaped, half the time, as another --template body's; default typical)")
    synth.set_defaults(func=run_synth)

    simulate = sub.add_parser("simulate-phase", parents=[common], help="make a real CT look like another contrast phase inside its organ masks")
    simulate.add_argument("ct", help="input CT (NIfTI, NRRD, MHA or DICOM folder)")
    simulate.add_argument("label", help="organ labelmap (ids 1..13) on the CT's grid")
    simulate.add_argument("out", help="output CT file (.nii.gz, .nrrd, .mha)")
    simulate.add_argument("--from", dest="source", required=True, choices=CONTRAST_PHASES, help="phase of the input CT")
    simulate.add_argument("--to", dest="target", required=True, choices=CONTRAST_PHASES, help="phase to simulate")
    simulate.add_argument("--seed", type=int, default=None, help="draw random organ means within the target ranges (default: typical means)")
    simulate.set_defaults(func=run_simulate)
