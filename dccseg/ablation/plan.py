"""What an ablation runs: the arms, the benchmark data, the shared training budget and the seeds.

Every arm trains with the same training preset, overrides, data and seeds; the arms differ only
in the pretraining of the refine encoder (none, or one loss / form / d scale). Training data come
from the training bodies of ``BODY_SPLIT``, test data from its test bodies and real scans of unseen
patients. Configurations:

* ``tiny``: seconds-scale, for the test suite (toy budget, 3 arms);
* ``small``: the 2-core CPU configuration (about 30 minutes), the four main arms;
* ``large``: the GPU configuration (the product network, more data, three seeds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dccseg.errors import DccsegError
from dccseg.fileutil import strip_suffix
from dccseg.phantoms.templates import BODY_SPLIT

CONFIGS = ("tiny", "small", "large")
PHASE_CODES = {"non-contrast": "nc", "arterial": "art", "portal-venous": "pv", "delayed": "del"}
TRAINING_SCAN_NAMES = {**{body: body for body in BODY_SPLIT["train"]}, "example_ct": "totalseg_example", "example_ct_sm": "totalseg_example"}
"""File or folder names that show a training body (``example_ct*`` is the CT of the ``totalseg_example`` anatomy)."""


@dataclass(frozen=True)
class Arm:
    """One pretraining variant; ``loss`` None means no pretraining (train the refine net from scratch)."""

    name: str
    loss: str | None
    form: str = "paper"
    d_scale: str = "fixed"


BASE_ARMS = (Arm("none", None), Arm("simclr", "simclr"), Arm("agcl", "agcl"), Arm("dcc", "dcc"))
OPTIONAL_ARMS = {
    "dcc-percentile": Arm("dcc-percentile", "dcc", d_scale="percentile"),
    "supcon": Arm("supcon", "supcon"), "ce": Arm("ce", "ce"), "dcc-code": Arm("dcc-code", "dcc", form="code"),
}


@dataclass(frozen=True)
class RealScan:
    """A real CT (file or DICOM folder) of an unseen patient with its reference labels, for the test set.

    Plans and benchmark specs record it by its names (``to_dict``), not its paths, so the same run can
    continue on a machine that keeps the scans elsewhere.
    """

    ct: str
    labels: str
    phase: str

    @property
    def name(self) -> str:
        """The CT's folder and own name, e.g. ``s0009-ct`` for ``.../s0009/ct.nii.gz``."""
        path = Path(self.ct)
        return "-".join(part for part in (path.parent.name, strip_suffix(path)) if part)

    @property
    def id(self) -> str:
        return f"real-{self.name}-{PHASE_CODES[self.phase]}"

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "phase": self.phase, "ct": _short(self.ct), "labels": _short(self.labels)}


def real_scan(ct: str, labels: str, phase: str) -> RealScan:
    """A checked ``RealScan``: a known phase, and no scan whose path names a training body."""
    if phase not in PHASE_CODES:
        raise DccsegError(f"unknown phase '{phase}' for the real scan {ct}; use one of {', '.join(PHASE_CODES)}")
    for part in Path(ct).parts:
        body = TRAINING_SCAN_NAMES.get(strip_suffix(part))
        if body is not None:
            raise DccsegError(f"{ct} shows the training body {body}; give real scans of unseen bodies (test bodies: {', '.join(BODY_SPLIT['test'])})")
    return RealScan(str(ct), str(labels), phase)


def _short(path: str) -> str:
    """A path's folder and name (``s0009/ct.nii.gz``): what identifies a scan on any machine."""
    parts = Path(path).parts
    return "/".join(parts[-2:])


@dataclass(frozen=True)
class BenchmarkData:
    """Synthetic multi-phase CT of real anatomies (``dccseg.phantoms``), split by body, plus real scans.

    ``train``/``test``: number of label-driven synthetic cases per phase (different seeds, so
    different deformations, body habitus, field of view and contrast timing), rendered from
    ``train_bodies``/``test_bodies`` in turn; a body is never in both. ``real_test``: real scans of
    unseen patients added to the test set. Few training cases of one phase (``arterial`` by default)
    make the held-out-phase setting.
    """

    train: dict[str, int] = field(default_factory=lambda: {"non-contrast": 4, "portal-venous": 4, "delayed": 3, "arterial": 1})
    test: dict[str, int] = field(default_factory=lambda: {"non-contrast": 3, "arterial": 3, "portal-venous": 3, "delayed": 3})
    train_bodies: tuple[str, ...] = BODY_SPLIT["train"]
    test_bodies: tuple[str, ...] = BODY_SPLIT["test"]
    real_test: tuple[RealScan, ...] = ()
    spacing: tuple[float, float, float] = (3.0, 3.0, 3.0)
    seed: int = 2024

    def __post_init__(self) -> None:
        leaked = sorted(set(self.train_bodies) & (set(self.test_bodies) | set(BODY_SPLIT["test"])))
        if leaked:
            raise DccsegError(f"the training bodies include test bodies ({', '.join(leaked)}); train on {', '.join(BODY_SPLIT['train'])} only")
        ids = [scan.id for scan in self.real_test]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise DccsegError(f"real scan(s) {', '.join(repeated)} given twice; give each scan and phase once")

    def to_dict(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "real_test"}
        return {**fields, "real_test": [scan.to_dict() for scan in self.real_test]}


@dataclass(frozen=True)
class AblationPlan:
    name: str
    preset: str  # dccseg training preset (networks, preprocessing)
    overrides: dict[str, Any]  # training overrides shared by every arm (``stage__field`` keys)
    arms: tuple[Arm, ...]
    data: BenchmarkData
    seeds: tuple[int, ...] = (0,)
    test_prior_seed: int = 777  # seeds the degraded ground-truth priors of the test cases (shared by all arms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "preset": self.preset, "overrides": dict(self.overrides), "arms": [dataclasses.asdict(a) for a in self.arms],
            "data": self.data.to_dict(), "seeds": list(self.seeds), "test_prior_seed": self.test_prior_seed,
        }


SHARED = {"val_fraction": 0.0, "phase__probability": 0.0, "refine__phase_variants": 0, "refine__prior": "degraded"}


def tiny() -> AblationPlan:
    overrides = {**SHARED, "pretrain__epochs": 1, "pretrain__batch_size": 8, "pretrain__patches_per_organ": 2, "refine__epochs": 1, "refine__patches_per_organ": 2}
    data = BenchmarkData(train={"non-contrast": 1, "arterial": 1}, test={"non-contrast": 1, "arterial": 1}, spacing=(6.0, 6.0, 6.0))
    return AblationPlan("tiny", "tiny", overrides, (BASE_ARMS[0], BASE_ARMS[1], BASE_ARMS[3]), data)


def small() -> AblationPlan:
    overrides = {
        **SHARED, "pretrain__epochs": 6, "pretrain__batch_size": 32, "pretrain__patches_per_organ": 8,
        "refine__epochs": 8, "refine__patches_per_organ": 8, "refine__batch_size": 32,
    }
    return AblationPlan("small", "tiny", overrides, BASE_ARMS, BenchmarkData())


def large() -> AblationPlan:
    overrides = {
        **SHARED, "pretrain__epochs": 20, "pretrain__batch_size": 64, "pretrain__patches_per_organ": 50,
        "refine__epochs": 20, "refine__patches_per_organ": 50, "refine__batch_size": 32,
    }
    data = BenchmarkData(
        train={"non-contrast": 10, "portal-venous": 10, "delayed": 8, "arterial": 2},
        test={"non-contrast": 5, "arterial": 5, "portal-venous": 5, "delayed": 5},
        spacing=(1.5, 1.5, 3.0),
    )
    return AblationPlan("large", "default", overrides, BASE_ARMS, data, seeds=(0, 1, 2))


def build_plan(name: str, extra_arms: tuple[str, ...] = (), real_test: tuple[RealScan, ...] = ()) -> AblationPlan:
    """The named configuration, with optional extra arms (``OPTIONAL_ARMS``) and real test scans."""
    builders = {"tiny": tiny, "small": small, "large": large}
    if name not in builders:
        raise DccsegError(f"unknown ablation configuration '{name}'; use one of {', '.join(CONFIGS)}")
    unknown = [a for a in extra_arms if a not in OPTIONAL_ARMS]
    if unknown:
        raise DccsegError(f"unknown extra arm(s) {', '.join(unknown)}; use {', '.join(OPTIONAL_ARMS)}")
    plan = builders[name]()
    data = dataclasses.replace(plan.data, real_test=tuple(real_test))
    return dataclasses.replace(plan, arms=plan.arms + tuple(OPTIONAL_ARMS[a] for a in extra_arms), data=data)

