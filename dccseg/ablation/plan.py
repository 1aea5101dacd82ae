"""What an ablation runs: the arms, the benchmark data, the shared training budget and the seeds.

Every arm trains with the same training preset, overrides, data and seeds; the arms differ only
in the pretraining of the refine encoder (none, or one loss / form / d scale). Configurations:

* ``tiny``: seconds-scale, for the test suite (toy budget, 3 arms);
* ``small``: the 2-core CPU configuration (<= 30 minutes on an idle machine);
* ``large``: the GPU configuration (the product network, more data, three seeds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dccseg.errors import DccsegError

CONFIGS = ("tiny", "small", "large")


@dataclass(frozen=True)
class Arm:
    """One pretraining variant; ``loss`` None means no pretraining (train the refine net from scratch)."""

    name: str
    loss: str | None
    form: str = "paper"
    d_scale: str = "fixed"


BASE_ARMS = (
    Arm("none", None),
    Arm("simclr", "simclr"),
    Arm("agcl", "agcl"),
    Arm("dcc", "dcc"),
    Arm("dcc-percentile", "dcc", d_scale="percentile"),
)
OPTIONAL_ARMS = {"supcon": Arm("supcon", "supcon"), "ce": Arm("ce", "ce"), "dcc-code": Arm("dcc-code", "dcc", form="code")}


@dataclass(frozen=True)
class BenchmarkData:
    """Synthetic multi-phase CT from the bundled real anatomy (``dccseg.phantoms``).

    ``train``/``test``: number of label-driven synthetic cases per phase (different seeds, so
    different deformations, body habitus, field of view and contrast timing). ``real_test_phases``:
    the bundled real CT (non-contrast) and its phase-simulated versions, added to the test set.
    Few training cases of one phase (``arterial`` by default) make the held-out-phase setting.
    """

    train: dict[str, int] = field(default_factory=lambda: {"non-contrast": 4, "portal-venous": 4, "delayed": 3, "arterial": 1})
    test: dict[str, int] = field(default_factory=lambda: {"non-contrast": 2, "arterial": 2, "portal-venous": 2, "delayed": 2})
    real_test_phases: tuple[str, ...] = ("non-contrast", "arterial", "portal-venous", "delayed")
    spacing: tuple[float, float, float] = (3.0, 3.0, 3.0)
    seed: int = 2024

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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
    data = BenchmarkData(train={"non-contrast": 1, "arterial": 1}, test={"non-contrast": 1, "arterial": 1}, real_test_phases=(), spacing=(6.0, 6.0, 6.0))
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


def build_plan(name: str, extra_arms: tuple[str, ...] = ()) -> AblationPlan:
    """The named configuration, with optional extra arms (``supcon``, ``ce``, ``dcc-code``)."""
    builders = {"tiny": tiny, "small": small, "large": large}
    if name not in builders:
        raise DccsegError(f"unknown ablation configuration '{name}'; use one of {', '.join(CONFIGS)}")
    unknown = [a for a in extra_arms if a not in OPTIONAL_ARMS]
    if unknown:
        raise DccsegError(f"unknown extra arm(s) {', '.join(unknown)}; use {', '.join(OPTIONAL_ARMS)}")
    plan = builders[name]()
    return dataclasses.replace(plan, arms=plan.arms + tuple(OPTIONAL_ARMS[a] for a in extra_arms))

