"""Running a network on batches with the device's precision, and surviving CUDA out-of-memory.

Out of GPU memory, the batch is halved and retried; once a single sample does not fit, the
network moves to the CPU and the run continues there, with a message on the progress log.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

from ..progress import QUIET, Progress

CPU_BATCH = 32
CUDA_BATCH_PER_GIB = 12
"""Refine patches per GiB of free GPU memory at 128 x 128 in bf16 (headroom estimate, capped by MAX_CUDA_BATCH)."""
MAX_CUDA_BATCH = 512
REFERENCE_PATCH = 128


def default_batch_size(device: torch.device, patch_size: int = REFERENCE_PATCH) -> int:
    """A starting batch size for refine patches on ``device``: same memory per batch as 128 x 128 patches."""
    area_factor = max(1.0, (REFERENCE_PATCH / patch_size) ** 2)
    if device.type != "cuda":
        return int(CPU_BATCH * area_factor)
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(8, min(MAX_CUDA_BATCH * area_factor, CUDA_BATCH_PER_GIB * area_factor * free / 2**30)))


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing on the CPU (fp32 is faster there)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class BatchRunner:
    """Applies a network to a batch in chunks, halving the chunk on CUDA OOM and then falling back to CPU."""

    def __init__(self, net: nn.Module, device: torch.device, batch_size: int | None = None, progress: Progress = QUIET, patch_size: int = REFERENCE_PATCH) -> None:
        self.net = net
        self.device = device
        self.patch_size = patch_size
        self.batch_size = batch_size or default_batch_size(device, patch_size)
        self.progress = progress

    def __call__(self, inputs: torch.Tensor, post: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> torch.Tensor:
        """``post(net(chunk))`` for all chunks of ``inputs`` along dim 0, concatenated on ``self.device``."""
        outputs = []
        start = 0
        while start < inputs.shape[0]:
            chunk = inputs[start : start + self.batch_size]
            try:
                outputs.append(self._forward(chunk, post))
            except torch.cuda.OutOfMemoryError:
                self._shrink()
                continue
            start += chunk.shape[0]
        return torch.cat([o.to(self.device) for o in outputs]) if outputs else torch.empty(0, device=self.device)

    def _forward(self, chunk: torch.Tensor, post: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode(), autocast(self.device):
            return post(self.net(chunk.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)).float())

    def _shrink(self) -> None:
        torch.cuda.empty_cache()
        if self.batch_size > 1:
            self.batch_size //= 2
            self.progress.log(f"GPU out of memory: retrying with batches of {self.batch_size}")
            return
        self.progress.log("GPU out of memory even for one sample: continuing on the CPU (slower); try --fast or --device cpu")
        self.device = torch.device("cpu")
        self.net.to(self.device)
        self.batch_size = default_batch_size(self.device, self.patch_size)
