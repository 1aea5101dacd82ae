"""Device, mixed precision and multi-GPU (``torchrun``) set-up for the training loops.

Under ``torchrun`` (``WORLD_SIZE`` > 1) every process joins a process group (NCCL on CUDA, gloo on
CPU), trains on its shard of the data (DistributedSampler) through DistributedDataParallel, and
only rank 0 writes files. On CUDA the forward pass runs under autocast: bf16 where the GPU
supports it, otherwise fp16 with a gradient scaler. CPU training is plain fp32.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn

from dccseg.errors import DccsegError

DEVICE_CHOICES = ("auto", "cuda", "cpu")


@dataclass
class DeviceContext:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    amp_dtype: torch.dtype | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A scaler that is active only for fp16 autocast (bf16 and fp32 need none)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)


def resolve_device(choice: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without a GPU is a user error."""
    if choice not in DEVICE_CHOICES:
        raise DccsegError(f"unknown device {choice!r}; use one of {', '.join(DEVICE_CHOICES)}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise DccsegError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def setup(choice: str, amp: bool = True) -> DeviceContext:
    """Resolve the device and, under torchrun, join the process group (one GPU per process)."""
    device = resolve_device(choice)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world_size > 1:
        if device.type == "cuda":
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    amp_dtype = None
    if amp and device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return DeviceContext(device=device, rank=rank, world_size=world_size, amp_dtype=amp_dtype)


def teardown(ctx: DeviceContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, ctx: DeviceContext) -> nn.Module:
    """The model moved to the device, inside DistributedDataParallel when several processes train."""
    model = model.to(ctx.device)
    if not ctx.distributed:
        return model
    if ctx.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[ctx.device.index])
    return nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def any_rank(flag: bool, ctx: DeviceContext) -> bool:
    """True on every rank when ``flag`` is true on at least one (e.g. a stop request)."""
    if not ctx.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def mean_over_ranks(value: float, ctx: DeviceContext) -> float:
    if not ctx.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / ctx.world_size


def barrier(ctx: DeviceContext) -> None:
    if ctx.distributed:
        dist.barrier()


@contextlib.contextmanager
def evaluation(model: nn.Module) -> Iterator[nn.Module]:
    """The unwrapped model in eval mode without gradients; back to train mode afterwards."""
    inner = unwrap(model)
    was_training = inner.training
    inner.eval()
    try:
        with torch.no_grad():
            yield inner
    finally:
        inner.train(was_training)
