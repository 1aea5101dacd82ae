"""Measure what each network variant costs on the CPU: parameters, weight size, forward latency.

Run `python -m dccseg.bench_networks [--threads 1] [--batch 32]`. Prints markdown tables (reduced-width
refine candidates, CPU execution options, coarse candidates, then the full-width encoder grid: depth x
stem x output stride) with wall and process-CPU time. On a shared machine wall time measures the load,
not the network; with one thread the process CPU time does not, and the 2-core projection divides it
by two. docs/networks.md records one run and the defaults chosen from it.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dccseg.networks import CoarseConfig, RefineConfig, build_coarse_net, build_refine_net

PATCH = 128
PATCHES_PER_CT = 1500  # ~100 slices x ~6 organs x K patches at the product's working resolution


@dataclass
class Measurement:
    name: str
    params: int
    gflop: float  # per batch item
    batch: int
    wall_s: float  # median wall time of one batch forward
    cpu_s: float  # median process CPU time of one batch forward

    @property
    def mb_fp32(self) -> float:
        return self.params * 4 / 2**20


def time_forward(run: Callable[[torch.Tensor], object], x: torch.Tensor, repeats: int, budget_s: float
                 ) -> tuple[float, float]:
    """Median (wall, process CPU) seconds of `run(x)` over 1..`repeats` calls (fewer once `budget_s` is spent).

    The warm-up call uses one item of the batch, so heavy variants do not pay a full extra batch.
    """
    run(x[:1])
    wall: list[float] = []
    cpu: list[float] = []
    while not wall or (len(wall) < repeats and sum(wall) < budget_s):
        w0, c0 = time.perf_counter(), time.process_time()
        run(x)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def gflop_per_item(net: nn.Module, x: torch.Tensor) -> float:
    """Forward GFLOP (2 x multiply-adds, as counted by torch's FlopCounterMode) for one batch item."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(x[:1])
    return counter.get_total_flops() / 1e9


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@contextlib.contextmanager
def cpu_mode(mode: str) -> Iterator[None]:
    if mode == "bf16":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    else:
        yield


def measure(name: str, net: nn.Module, x: torch.Tensor, repeats: int, budget_s: float, mode: str = "fp32") -> Measurement:
    net.eval()
    if mode == "channels_last":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def run(batch: torch.Tensor) -> object:
        with torch.inference_mode(), cpu_mode(mode):
            return net(batch)

    wall_s, cpu_s = time_forward(run, x, repeats, budget_s)
    return Measurement(name, count_params(net), gflop_per_item(net, x), x.shape[0], wall_s, cpu_s)


def encoder_grid() -> list[tuple[str, RefineConfig]]:
    """Full-width encoders with a 256-channel DeepLabV3+ head: what each encoder choice costs."""
    variants = []
    for depth in (18, 34, 50):
        for stem, os_ in (("standard", 16), ("standard", 8), ("cifar", 8)):
            cfg = RefineConfig(depth=depth, stem=stem, output_stride=os_, in_channels=6 if stem == "cifar" else 2,
                               aspp_depth=256, decoder_channels=256, width=64)
            variants.append((f"R{depth} {stem} OS{os_} w64 head256", cfg))
    variants.append(("paper preset: R50 cifar OS8 w64 aspp512 6ch", RefineConfig.paper()))
    return variants


def refine_candidates() -> list[tuple[str, RefineConfig]]:
    """Reduced-width networks that can meet the CPU target; the default is chosen among these."""
    def cfg(**kw: object) -> RefineConfig:
        return RefineConfig(**{"aspp_depth": 64, "decoder_channels": 64, **kw})

    return [
        ("R18 standard OS16 w16 head64", cfg(width=16)),
        ("R18 standard OS16 w32 head64", cfg(width=32)),
        ("R18 standard OS8 w32 head64", cfg(width=32, output_stride=8)),
        ("R34 standard OS16 w32 head64", cfg(depth=34, width=32)),
        ("R18 standard OS16 w32 head128", cfg(width=32, aspp_depth=128, decoder_channels=128)),
        ("R18 standard OS16 w32 aspp_only64", cfg(width=32, decoder="aspp_only")),
    ]


def coarse_variants() -> list[tuple[str, CoarseConfig]]:
    return [
        ("unet (16..256) res2", CoarseConfig(channels=(16, 32, 64, 128, 256), num_res_units=2)),
        ("unet (16..256) res1", CoarseConfig(channels=(16, 32, 64, 128, 256), num_res_units=1)),
        ("unet (16..128) res1", CoarseConfig(channels=(16, 32, 64, 128), num_res_units=1)),
        ("unet (8..128) res1", CoarseConfig(channels=(8, 16, 32, 64, 128), num_res_units=1)),
        ("segresnet 8 (4 levels)", CoarseConfig(architecture="segresnet", channels=(8, 16, 32, 64))),
        ("dynunet (16..128)", CoarseConfig(architecture="dynunet", channels=(16, 32, 64, 128))),
    ]


def print_table(title: str, rows: list[Measurement], per_ct: int | None) -> None:
    """Markdown table; the last column projects the CPU time per item onto 2 cores (linear scaling)."""
    print(f"\n### {title}\n")
    extra = f" | 2-core s per {per_ct} patches" if per_ct else " | 2-core s"
    print(f"| variant | params (M) | MB fp32 | MB fp16 | GFLOP/item | batch | wall ms/item | CPU ms/item{extra} |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in rows:
        cpu_item = m.cpu_s / m.batch
        projected = cpu_item * (per_ct or 1) / 2
        print(f"| {m.name} | {m.params / 1e6:.2f} | {m.mb_fp32:.1f} | {m.mb_fp32 / 2:.1f} | {m.gflop:.2f} | "
              f"{m.batch} | {m.wall_s / m.batch * 1000:.1f} | {cpu_item * 1000:.1f} | {projected:.1f} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="1 makes process CPU time a load-independent cost; use 2 on a quiet machine")
    parser.add_argument("--batch", type=int, default=32, help="128x128 patches per forward for the candidates")
    parser.add_argument("--grid-batch", type=int, default=8, help="patches per forward for the full-width grid")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=4.0, help="seconds of timed repeats per variant")
    parser.add_argument("--coarse-size", type=int, default=96)
    parser.add_argument("--skip-grid", action="store_true", help="skip the slow full-width encoder grid")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} threads, inference_mode, fp32 unless stated")

    def refine_rows(variants: list[tuple[str, RefineConfig]], batch: int, mode: str = "fp32") -> list[Measurement]:
        return [measure(name, build_refine_net(cfg), torch.randn(batch, cfg.in_channels, PATCH, PATCH),
                        args.repeats, args.budget, mode) for name, cfg in variants]

    print_table("Refine candidates, 128x128 patches", refine_rows(refine_candidates(), args.batch), PATCHES_PER_CT)
    default = [("default RefineConfig()", RefineConfig())]
    modes = [row for mode in ("fp32", "channels_last", "bf16") for row in refine_rows(
        [(f"{default[0][0]}, {mode}", default[0][1])], args.batch, mode)]
    print_table("CPU execution options, default refine network", modes, PATCHES_PER_CT)

    x3 = torch.randn(1, 1, args.coarse_size, args.coarse_size, args.coarse_size)
    coarse = [measure(name, build_coarse_net(cfg), x3, args.repeats, args.budget) for name, cfg in coarse_variants()]
    print_table(f"Coarse networks, one {args.coarse_size}^3 volume", coarse, None)

    if not args.skip_grid:
        print_table("Encoder grid (full width), 128x128 patches", refine_rows(encoder_grid(), args.grid_batch),
                    PATCHES_PER_CT)


if __name__ == "__main__":
    main()
