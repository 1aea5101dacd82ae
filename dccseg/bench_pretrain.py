"""Pretraining throughput: the whole pretraining step vs the same encoder's bare forward + backward.

Run ``python -m dccseg.bench_pretrain [--config tiny|default|paper] [--batch-size N] [--steps N]
[--device auto|cpu|cuda] [--loss dcc]``. Both loops run in the same process on the same network:

* pretraining: patch centres -> batched crops from cached volumes (CPU) -> two views on the device
  (crop/rotate/flip, d on the fixed scale) -> encoder + head under autocast -> the loss in fp32 ->
  backward -> optimiser step (what ``dccseg train pretrain`` does per batch);
* bare: a fixed input tensor of the same shape already on the device -> encoder + head -> mean of
  the embeddings -> backward -> optimiser step.

It prints both rates and their ratio. Target on a GPU (issue 4): ratio >= 0.70, i.e. the data
pipeline and the loss cost at most 30% on top of the network itself.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch

from dccseg.inference.settings import InferenceSettings
from dccseg.losses import build_pretrain_loss
from dccseg.networks import build_encoder
from dccseg.training.configs import PRESETS, preset
from dccseg.training.distributed import DEVICE_CHOICES, setup
from dccseg.training.pretrain import PretrainObjective
from dccseg.training.pretrain_data import batch_views, gather_batch, patch_rows, pretrain_case
from dccseg.training.views import ViewConfig
from dccseg.volume import Volume

TARGET_RATIO = 0.70


def synthetic_case(size: int, settings: InferenceSettings):
    """A (24, 3*size, 3*size) volume in HU with four box organs, as a cached pretraining case."""
    rng = np.random.default_rng(0)
    side = 3 * size
    ct = rng.normal(40.0, 30.0, (24, side, side)).astype(np.float32)
    labels = np.zeros(ct.shape, dtype=np.uint8)
    for organ, (y, x) in zip((1, 2, 6, 8), ((1, 1), (1, 2), (2, 1), (2, 2))):
        labels[2:22, y * size - size // 3 : y * size + size // 3, x * size - size // 3 : x * size + size // 3] = organ
        ct[labels == organ] += 30.0 * organ
    volume = Volume(ct, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return pretrain_case("bench", "portal-venous", volume, volume.with_array(labels), settings, "fixed")


def rate(step: Callable[[], torch.Tensor], steps: int, device: torch.device) -> float:
    """Steps per second after two warm-up steps; every step reads its loss back (as the training loop does)."""
    for _ in range(2):
        float(step())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        float(step())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=PRESETS, default="tiny", help="training preset whose refine encoder is pretrained")
    parser.add_argument("--batch-size", type=int, help="patches per batch (two views each); default: the preset's")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--loss", default="dcc")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = preset(args.config)
    network = config.refine.network
    batch_size = args.batch_size or config.pretrain.batch_size
    ctx = setup(args.device)
    device = ctx.device
    settings = InferenceSettings.from_card(config.preprocessing.to_card())
    cases = [synthetic_case(network.patch_size, settings)]
    torch.manual_seed(0)
    encoder = build_encoder(network)
    objective = PretrainObjective(encoder, build_pretrain_loss(args.loss, feature_dim=encoder.out_channels[1])).to(device)
    optimizer = torch.optim.Adam(objective.parameters(), lr=3e-4)
    views = ViewConfig(size=network.patch_size)
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    rows = patch_rows(cases, 4096, rng)

    def pretrain_step() -> torch.Tensor:
        batch_rows = rows[rng.integers(0, len(rows), batch_size)]
        optimizer.zero_grad(set_to_none=True)
        with ctx.autocast():
            inputs, targets = batch_views(gather_batch(cases, batch_rows, network.patch_size), views, network.in_channels, generator, device)
            loss, _ = objective(inputs, targets)
        loss.backward()
        optimizer.step()
        return loss.detach()

    fixed = torch.randn(2 * batch_size, network.in_channels, network.patch_size, network.patch_size, device=device).clamp(-1, 1)

    def bare_step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with ctx.autocast():
            pooled = objective.encoder(fixed)["high"].mean(dim=(-2, -1))
            loss = objective.head(pooled.float()).mean()
        loss.backward()
        optimizer.step()
        return loss.detach()

    bare = rate(bare_step, args.steps, device)
    full = rate(pretrain_step, args.steps, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; preset {args.config} (depth {network.depth}, stem {network.stem}, width {network.width}, patch {network.patch_size}); "
          f"batch {batch_size} patches = {2 * batch_size} views; loss {args.loss}; amp {ctx.amp_dtype}")
    print(f"bare encoder forward+backward: {bare:.2f} steps/s ({bare * 2 * batch_size:.0f} views/s)")
    print(f"pretraining step:              {full:.2f} steps/s ({full * 2 * batch_size:.0f} views/s)")
    verdict = "" if device.type != "cuda" else (" (meets the GPU target)" if full / bare >= TARGET_RATIO else f" (below the GPU target {TARGET_RATIO:.2f})")
    print(f"ratio pretraining / bare: {full / bare:.2f}{verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
