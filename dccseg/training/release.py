"""``dccseg train release``: the release model in one command, on a wall-clock budget (one GPU: 9 minutes).

CPU worker processes synthesise cases from the training bodies (``release_data``) while the device trains the
coarse network, then the refine network (degraded-ground-truth prior, as the CPU recipe), each on its share of
the budget (``release_stages.run_timed``). Networks and preprocessing are the ``default`` preset's (the ``tiny``
scale: the ``tiny`` preset's, for tests), so inference and the card are those of any other model. The model
folder (card + coarse/refine safetensors) is written at the end; the card records the bodies drawn.
"""

from __future__ import annotations

import dataclasses
import shlex
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dccseg.errors import DccsegError
from dccseg.inference.body_size import reference_volumes
from dccseg.losses import binary_dice_loss, coarse_dice_ce_loss
from dccseg.networks import build_coarse_net, build_refine_net
from dccseg.phantoms.templates import BODY_SPLIT
from dccseg.progress import QUIET, Progress
from dccseg.store import dataset_hash
from dccseg.store.card import check_name, parse_version
from dccseg.training import distributed
from dccseg.training.augment import random_intensity, random_warp
from dccseg.training.configs import TrainingConfig, preset
from dccseg.training.distributed import DeviceContext
from dccseg.training.export import build_card, write_model_folder
from dccseg.training.refine_data import gather_patches
from dccseg.training.release_data import REAL_CASE, CaseRecipe, ReleaseCase, source_files
from dccseg.training.release_stages import CoarsePool, RefinePool, TimedResult, coarse_validation, refine_validation, run_timed
from dccseg.training.release_workers import CaseWorkers, default_workers
from dccseg.volume import Volume

NAME, VERSION = "dccseg-abdomen", "0.5.0"  # the next version after the shipped CPU-trained 0.4.6
NEVER_TRAINED_ON = [*BODY_SPLIT["test"], "the real portal-venous slab"]
POLL_S = 0.05


@dataclass(frozen=True)
class ReleaseScale:
    """Sizes of one scale: ``release`` (the shipped model, one GPU) or ``tiny`` (tests, seconds on a CPU)."""

    preset: str
    refine_slice_thickness: float
    template_step: int
    coarse_crop: tuple[int, int, int]
    coarse_batch: int
    refine_batch: int
    coarse_pool: int
    refine_pool: int
    coarse_share: float  # of the training time left once the first cases are in
    refine_share_while_coarse: float  # chance that a worker makes a refine case during the coarse stage
    validations: int
    validation_cases: int
    end_reserve_s: float  # writing the model folder and stopping the workers
    refine_sharpen: int  # the refine network's full-resolution head (RefineConfig.sharpen_channels; 0.4.6 ships with 8)


SCALES = {
    "release": ReleaseScale("default", 3.0, 1, (96, 128, 128), 4, 64, 96, 128, 0.55, 0.3, 6, 8, 15.0, 8),
    "tiny": ReleaseScale("tiny", 6.0, 2, (32, 32, 32), 2, 16, 8, 8, 0.5, 0.5, 2, 2, 2.0, 2),
}


def release_config(scale: ReleaseScale) -> TrainingConfig:
    """The preset's networks with the scale's full-resolution refine head, and its preprocessing; refine slices at the scale's thickness (recorded in the card)."""
    config = preset(scale.preset)
    refine = dataclasses.replace(config.refine, network=dataclasses.replace(config.refine.network, sharpen_channels=scale.refine_sharpen))
    return dataclasses.replace(config, refine=refine, preprocessing=dataclasses.replace(config.preprocessing, refine_slice_thickness=scale.refine_slice_thickness))


class CaseRouter:
    """Puts delivered cases into the pools, or into the validation sets (the first ``cap`` validation cases of a kind)."""

    def __init__(self, workers: CaseWorkers, coarse: CoarsePool, refine: RefinePool, refine_val: RefinePool, cap: int) -> None:
        self.workers, self.coarse, self.refine, self.refine_val, self.cap = workers, coarse, refine, refine_val, cap
        self.coarse_val: list[ReleaseCase] = []
        self.trained: Counter = Counter()
        self.validated: Counter = Counter()

    def feed(self) -> None:
        for kind, pool in (("coarse", self.coarse), ("refine", self.refine)):
            for case in self.workers.drain(kind):
                if case.id.startswith("val-"):
                    self._validation(case)
                else:
                    pool.add(case)
                    self.trained[(kind, case.source, case.phase, case.style, case.pathology)] += 1

    def _validation(self, case: ReleaseCase) -> None:
        if case.kind == "coarse" and len(self.coarse_val) < self.cap:
            self.coarse_val.append(case)
        elif case.kind == "refine" and len(self.refine_val) < self.cap:
            self.refine_val.add(case)
        else:
            return
        self.validated[(case.kind, case.source)] += 1

    def wait(self, ready, deadline: float, what: str) -> None:
        """Feed until ``ready()``; an error when the workers died or the budget ran out first."""
        while not ready():
            if not self.workers.alive():
                raise DccsegError(f"the case workers stopped before {what} were ready; run again with --workers 1 to see why")
            if time.monotonic() > deadline:
                raise DccsegError(f"no {what} within the budget; give more --minutes or more --workers")
            time.sleep(POLL_S)
            self.feed()

    def summary(self) -> dict[str, Any]:
        def count(index: int, kind: str) -> dict[str, int]:
            out: Counter = Counter()
            for key, n in self.trained.items():
                if key[0] == kind:
                    out[key[index]] += n
            return dict(sorted(out.items()))
        return {
            kind: {"cases": sum(n for k, n in self.trained.items() if k[0] == kind),
                   "by_source": count(1, kind), "by_phase": count(2, kind), "by_style": count(3, kind),
                   "with_pathology": count(4, kind).get(True, 0)}
            for kind in ("coarse", "refine")
        }

    def bodies(self) -> list[str]:
        return sorted({key[1] for key in self.trained} - {REAL_CASE})


def _check_output(output: Path) -> None:
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise DccsegError(f"{output} already exists; give a new folder for the model")


def train_release(output: str | Path, *, minutes: float = 9.0, device: str = "auto", workers: int | None = None, scale: str = "release",
                  seed: int = 0, name: str = NAME, version: str = VERSION, progress: Progress = QUIET) -> Path:
    """Train the release model within ``minutes`` of wall time and write its model folder to ``output``."""
    started = time.monotonic()
    output = Path(output)
    if scale not in SCALES:
        raise DccsegError(f"unknown scale '{scale}'; use one of {', '.join(SCALES)}")
    if minutes <= 0:
        raise DccsegError(f"--minutes must be positive, not {minutes}")
    _check_output(output)
    check_name(name)
    parse_version(version)
    sizes, workers = SCALES[scale], workers or default_workers()
    if workers < 1:
        raise DccsegError(f"--workers must be at least 1, not {workers}")
    deadline = started + minutes * 60.0
    config = release_config(sizes)
    ctx = distributed.setup(device)
    if ctx.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    recipe = CaseRecipe(config.preprocessing, BODY_SPLIT["train"], template_step=sizes.template_step)
    rng = np.random.default_rng([seed, 11])
    progress.log(f"release training on {_device_name(ctx)} for {minutes:g} min with {workers} case workers ({scale} scale)")
    with CaseWorkers(recipe, workers, seed, validation_workers=sizes.validation_cases) as case_workers:
        case_workers.set_refine_share(sizes.refine_share_while_coarse)
        refine_pool, refine_val = RefinePool(sizes.refine_pool, ctx.device), RefinePool(sizes.validation_cases, ctx.device)
        router = CaseRouter(case_workers, CoarsePool(sizes.coarse_pool, ctx.device), refine_pool, refine_val, sizes.validation_cases)
        router.wait(lambda: len(router.coarse) >= min(workers, 4) and router.coarse_val, deadline, "coarse cases")
        setup_s = time.monotonic() - started
        coarse_s = (deadline - time.monotonic() - sizes.end_reserve_s) * sizes.coarse_share
        coarse = _coarse_stage(config, sizes, router, coarse_s, ctx, rng, progress)
        case_workers.set_refine_share(1.0)
        router.wait(lambda: len(refine_pool) >= min(workers, 4) and len(refine_val), deadline, "refine cases")
        refine = _refine_stage(config, sizes, router, deadline - time.monotonic() - sizes.end_reserve_s, ctx, rng, progress)
        summary, bodies, validated = router.summary(), router.bodies(), router.validated
    organ_volumes = size_reference(router.coarse_val, config.preprocessing.coarse_spacing)
    config = dataclasses.replace(config, preprocessing=dataclasses.replace(config.preprocessing, size_reference_ml=organ_volumes))
    training = {
        "recipe": f"dccseg train release {shlex.quote(str(output))} --minutes {minutes:g} --scale {scale} --device {device} "
                  f"--workers {workers} --seed {seed} --name {name} --version {version}",
        "scale": scale, "preset": config.name, "device": _device_name(ctx), "budget_minutes": minutes,
        "seconds": round(time.monotonic() - started, 1),
        "setup_seconds": round(setup_s, 1), "case_workers": workers, "pretraining": None, "data_hash": dataset_hash(source_files(recipe.bodies)),
        "data": {
            "bodies": {"train": bodies, "never_trained_on": NEVER_TRAINED_ON}, "cases": summary,
            "validation": {"what": "fresh anatomies of the training bodies (seeds no training case uses)",
                           "cases": {f"{k}:{s}": n for (k, s), n in sorted(validated.items())}},
            "real_cases": [f"{REAL_CASE} (non-contrast; TotalSegmentator example_ct, labels are model predictions), moved to random phases"],
            "synthesis": dataclasses.asdict(recipe) | {"preprocessing": config.preprocessing.to_card()},
        },
        "stages": {"coarse": _stage_card(coarse, crop=list(sizes.coarse_crop), batch=sizes.coarse_batch),
                   "refine": _stage_card(refine, prior="degraded", batch=sizes.refine_batch)},
    }
    coarse_info = {"architecture": config.coarse.network.to_dict(), "preprocessing": config.preprocessing.to_card()}
    refine_info = {"architecture": config.refine.network.to_dict(), "preprocessing": config.preprocessing.to_card()}
    metrics = {"validation": {"coarse_val_dice": _best(coarse), "refine_val_patch_dice": _best(refine)}}
    card = build_card(name, version, coarse_info, refine_info, training, metrics,
                      description=f"Trained by 'dccseg train release' in {minutes:g} min on {_device_name(ctx)} from the training bodies "
                                  "(synthetic CT in any phase, field of view and protocol) + one real non-contrast CT")
    write_model_folder(output, card, {"coarse": coarse.state, "refine": refine.state})
    progress.log(f"wrote {output} in {time.monotonic() - started:.0f} s")
    return output


def size_reference(cases: list[ReleaseCase], spacing: tuple[float, float, float]) -> dict[str, float] | None:
    """The card's ``size_reference_ml`` (``--body-scale auto``): mean whole-organ volumes of the coarse validation cases (fresh
    anatomies of the training bodies) drawn without pathology, whose enlarged and shrunken organs would skew a mean of a few cases."""
    typical = [case for case in cases if not case.pathology] or cases
    return reference_volumes(Volume(case.labels, spacing, (0.0, 0.0, 0.0), tuple(np.eye(3).ravel())) for case in typical) or None


def _coarse_stage(config: TrainingConfig, sizes: ReleaseScale, router: CaseRouter, seconds: float, ctx: DeviceContext, rng: np.random.Generator,
                  progress: Progress) -> TimedResult:
    settings = config.coarse
    torch.manual_seed(config.seed)
    net = _on_device(build_coarse_net(settings.network), ctx, 3)
    loss = coarse_dice_ce_loss()
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))

    def step(module: torch.nn.Module) -> torch.Tensor:
        image, labels = router.coarse.batch(sizes.coarse_batch, sizes.coarse_crop, settings.foreground_crops, rng)
        image, labels = random_warp(image, labels, generator, settings.rotate_degrees, settings.scale_range, settings.elastic)
        image = random_intensity(image, generator)
        return loss(module(_memory_format(image, ctx, 3)), labels)

    validate = coarse_validation(list(router.coarse_val), settings.network.size_divisor, ctx)
    return run_timed("coarse", net, settings.optimizer, seconds, step, validate, sizes.validations, ctx, progress, router.feed)


def _refine_stage(config: TrainingConfig, sizes: ReleaseScale, router: CaseRouter, seconds: float, ctx: DeviceContext, rng: np.random.Generator,
                  progress: Progress) -> TimedResult:
    settings = config.refine
    torch.manual_seed(config.seed)
    net = _on_device(build_refine_net(settings.network), ctx, 2)
    size, channels = settings.network.patch_size, settings.network.in_channels

    def step(module: torch.nn.Module) -> torch.Tensor:
        inputs, targets, _ = gather_patches(router.refine.cases, router.refine.rows(sizes.refine_batch, rng), size, channels, ctx.device)
        return binary_dice_loss(module(_memory_format(inputs, ctx, 2)), targets)

    validate = refine_validation(router.refine_val, size, channels, sizes.refine_batch * 4, ctx)
    return run_timed("refine", net, settings.optimizer, seconds, step, validate, sizes.validations, ctx, progress, router.feed)


def _on_device(net: torch.nn.Module, ctx: DeviceContext, dims: int) -> torch.nn.Module:
    net = net.to(ctx.device)
    return net.to(memory_format=_format(dims)) if ctx.device.type == "cuda" else net


def _memory_format(tensor: torch.Tensor, ctx: DeviceContext, dims: int) -> torch.Tensor:
    """Channels-last on CUDA (faster convolutions under bf16); plain layout on the CPU."""
    return tensor.contiguous(memory_format=_format(dims)) if ctx.device.type == "cuda" else tensor


def _format(dims: int) -> torch.memory_format:
    return torch.channels_last_3d if dims == 3 else torch.channels_last


def _device_name(ctx: DeviceContext) -> str:
    return torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else "CPU"


def _best(result: TimedResult) -> float | None:
    return None if result.best is None else result.best["value"]


def _stage_card(result: TimedResult, **extra: Any) -> dict[str, Any]:
    return {"steps": result.steps, "seconds": round(result.seconds, 1), "best": result.best, "validations": result.history, **extra}
