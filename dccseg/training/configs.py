"""Training presets: ``tiny`` (tests, minutes on CPU), ``default`` (the demo model, CPU) and ``paper`` (GPU).

A preset fixes the preprocessing that goes into the model card (so inference repeats it exactly),
both networks' architectures, the optimisers, the augmentations and the refine stage's prior.

Refine prior (the attention channel of training patches, method.md §1.1):

* ``oof`` (default and paper presets): out-of-fold coarse predictions. The training cases are
  split into ``folds`` folds; a coarse model trained on the other folds predicts each fold, so the
  mask has test-time quality. Costs ``folds`` extra coarse trainings (``fold_epochs`` each).
* ``coarse``: the final coarse model's predictions on its own training cases (too good to be true
  on training cases; cheap).
* ``degraded`` (tiny preset): the ground truth downsampled to the coarse spacing and randomly
  dilated/eroded/shifted. No coarse training at all, which is what keeps the tiny preset within
  minutes on a 2-core CPU.
* ``realistic``: the ground truth on the coarse grid with the errors a coarse network makes on an
  unseen patient (shifts, wrong size, missing ends, holes, leaks; ``priors.realistic_prior``).

Optimiser presets (method.md §1.6/§1.7): ``paper`` = Adam lr 1e-4, weight decay 1e-4 (finetune);
``code`` = SGD lr 1e-4, momentum 0.9, no weight decay, the authors' finetune script.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dccseg.errors import DccsegError
from dccseg.inference.settings import Preprocessing
from dccseg.networks import CoarseConfig, RefineConfig

PRESETS = ("tiny", "default", "paper")
PRIORS = ("oof", "coarse", "degraded", "realistic")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "poly", "cosine")


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 1e-5
    momentum: float = 0.9
    schedule: str = "poly"
    grad_clip: float | None = 12.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS or self.schedule not in SCHEDULES:
            raise DccsegError(f"optimizer must be one of {OPTIMIZERS} and schedule one of {SCHEDULES}")


OPTIMIZER_PRESETS = {
    "paper": OptimizerConfig("adam", lr=1e-4, weight_decay=1e-4, schedule="constant", grad_clip=None),
    "code": OptimizerConfig("sgd", lr=1e-4, weight_decay=0.0, momentum=0.9, schedule="constant", grad_clip=None),
}


@dataclass(frozen=True)
class PhaseAugment:
    """Contrast-phase augmentation: the lever that carries a model from one phase to the others.

    ``probability``: chance that a training sample's HU are moved to another, random phase
    (``dccseg.phantoms.simulate_phase``). ``synthetic_cases``: label-driven synthetic CTs in random
    phases (``synthesize_from_labels`` on the training cases' label maps) added to the training set.
    """

    probability: float = 0.6
    synthetic_cases: int = 0


@dataclass(frozen=True)
class CoarseTraining:
    network: CoarseConfig = CoarseConfig()
    epochs: int = 60
    batch_size: int = 2
    crop: tuple[int, int, int] = (96, 96, 96)
    samples_per_case: int = 4
    foreground_crops: float = 0.67
    rotate_degrees: float = 10.0
    scale_range: float = 0.12
    elastic: float = 0.5
    optimizer: OptimizerConfig = OptimizerConfig("adam", lr=1e-3, weight_decay=1e-5, schedule="poly")
    validate_every: int = 2
    patience: int | None = None

    def check_crop(self, option: str = "coarse__crop") -> None:
        """A clear error unless every crop edge is a multiple of the network's size divisor (else its skip connections do not meet)."""
        divisor = self.network.size_divisor
        if any(edge < divisor or edge % divisor for edge in self.crop):
            raise DccsegError(f"{option} must be a multiple of {divisor} (the network halves its grid {len(self.network.channels) - 1} times), got {'x'.join(map(str, self.crop))}")


@dataclass(frozen=True)
class RefineTraining:
    network: RefineConfig = RefineConfig()
    epochs: int = 20
    batch_size: int = 16
    patches_per_organ: int = 50
    val_patches_per_organ: int = 20
    phase_variants: int = 2
    prior: str = "oof"
    folds: int = 3
    fold_epochs: int = 30
    optimizer: OptimizerConfig = OptimizerConfig("adam", lr=5e-4, weight_decay=1e-4, schedule="cosine", grad_clip=None)
    validate_every: int = 1
    patience: int | None = None

    def __post_init__(self) -> None:
        if self.prior not in PRIORS:
            raise DccsegError(f"unknown prior '{self.prior}'; use one of {', '.join(PRIORS)}")
        if self.prior == "oof" and self.folds < 2:
            raise DccsegError("out-of-fold priors need --folds 2 or more")


@dataclass(frozen=True)
class PretrainTraining:
    """Settings of the contrastive pretraining stage (issue 4); method.md §1.6 for the paper values."""

    epochs: int = 10
    batch_size: int = 4
    lr: float = 3e-4
    weight_decay: float = 1e-4
    temperature: float = 0.07
    patches_per_organ: int = 50


@dataclass(frozen=True)
class TrainingConfig:
    name: str
    preprocessing: Preprocessing = Preprocessing()
    coarse: CoarseTraining = CoarseTraining()
    refine: RefineTraining = RefineTraining()
    pretrain: PretrainTraining = PretrainTraining()
    phase: PhaseAugment = PhaseAugment()
    val_fraction: float = 0.2
    seed: int = 0
    num_workers: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (saved in the run folder and the model card)."""
        data = dataclasses.asdict(self)
        data["preprocessing"] = self.preprocessing.to_card()
        data["coarse"]["network"] = self.coarse.network.to_dict()
        data["refine"]["network"] = self.refine.network.to_dict()
        return data


def tiny() -> TrainingConfig:
    """Tests: a few-thousand-parameter pair of networks on coarse grids; minutes on a 2-core CPU."""
    return TrainingConfig(
        name="tiny",
        preprocessing=Preprocessing(coarse_spacing=(8.0, 8.0, 8.0), refine_spacing=(3.0, 3.0), patch_size=32, patches_per_slice=3),
        coarse=CoarseTraining(
            network=CoarseConfig(channels=(8, 16, 32), num_res_units=0), epochs=10, batch_size=2, crop=(32, 32, 32), samples_per_case=8,
            optimizer=OptimizerConfig("adam", lr=1e-2, weight_decay=0.0, schedule="constant"), validate_every=1,
        ),
        refine=RefineTraining(
            network=RefineConfig.tiny(), epochs=4, batch_size=32, patches_per_organ=12, val_patches_per_organ=6,
            phase_variants=1, prior="degraded", folds=2, fold_epochs=2,
            optimizer=OptimizerConfig("adam", lr=1e-2, weight_decay=0.0, schedule="constant", grad_clip=None),
        ),
        pretrain=PretrainTraining(epochs=1, batch_size=8, patches_per_organ=4),
        phase=PhaseAugment(probability=0.5, synthetic_cases=0),
    )


def default() -> TrainingConfig:
    """The demo model on CPU: the product networks, out-of-fold priors, phase augmentation on."""
    return TrainingConfig(
        name="default",
        coarse=CoarseTraining(crop=(64, 64, 64)),  # 96^3 steps took ~20 s on 2 shared CPU cores, 64^3 about a third
        refine=RefineTraining(network=RefineConfig.fast()),
        phase=PhaseAugment(probability=0.6, synthetic_cases=4),
    )


def paper() -> TrainingConfig:
    """The paper's settings for a GPU: CIFAR-stem ResNet-50, Adam, 10 pretrain / 5 finetune epochs, batch 4."""
    return TrainingConfig(
        name="paper",
        preprocessing=Preprocessing(refine_spacing=(0.8, 0.8)),
        coarse=CoarseTraining(network=CoarseConfig(channels=(32, 64, 128, 256, 320)), epochs=300, crop=(96, 96, 96), batch_size=2),
        refine=RefineTraining(
            network=RefineConfig.paper(), epochs=5, batch_size=4, patches_per_organ=50, prior="oof", folds=5,
            fold_epochs=150, optimizer=OPTIMIZER_PRESETS["paper"],
        ),
        pretrain=PretrainTraining(),
        phase=PhaseAugment(probability=0.6, synthetic_cases=8),
    )


def preset(name: str) -> TrainingConfig:
    builders = {"tiny": tiny, "default": default, "paper": paper}
    if name not in builders:
        raise DccsegError(f"unknown training configuration '{name}'; use one of {', '.join(PRESETS)}")
    return builders[name]()


def with_overrides(config: TrainingConfig, **overrides: Any) -> TrainingConfig:
    """Apply command-line overrides: ``field=value`` or ``stage__field=value`` (None values are ignored)."""
    for key, value in overrides.items():
        if value is None:
            continue
        stage, _, name = key.partition("__")
        if not name:
            config = dataclasses.replace(config, **{stage: value})
            continue
        part = getattr(config, stage)
        if name == "optimizer" and isinstance(value, str):
            value = optimizer_preset(value)
        if name == "optimizer" and isinstance(value, dict):  # as recorded in a run's JSON request
            value = OptimizerConfig(**value)
        if name == "network" and isinstance(value, dict):  # as recorded in a run's JSON request
            value = type(part.network).from_dict(value)
        config = dataclasses.replace(config, **{stage: dataclasses.replace(part, **{name: value})})
    return config


def optimizer_preset(name: str) -> OptimizerConfig:
    if name not in OPTIMIZER_PRESETS:
        raise DccsegError(f"unknown optimizer preset '{name}'; use one of {', '.join(OPTIMIZER_PRESETS)}")
    return OPTIMIZER_PRESETS[name]
