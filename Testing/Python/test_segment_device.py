"""Batched network runs: out-of-memory halves the batch, then falls back to the CPU, with messages."""

import io
import json

import torch
from torch import nn

from dccseg.inference.device import BatchRunner, default_batch_size
from dccseg.progress import Progress


class FlakyNet(nn.Module):
    """Doubles its input; raises CUDA OOM for batches above ``limit`` or for the first ``failures`` calls."""

    def __init__(self, limit: int = 10**9, failures: int = 0) -> None:
        super().__init__()
        self.limit, self.failures, self.sizes = limit, failures, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit or self.failures > 0:
            self.failures -= 1
            raise torch.cuda.OutOfMemoryError("simulated")
        self.sizes.append(x.shape[0])
        return 2 * x


def _messages(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["message"] for line in stream.getvalue().splitlines()]


def test_out_of_memory_halves_the_batch_and_keeps_every_sample():
    stream = io.StringIO()
    net = FlakyNet(limit=5)
    runner = BatchRunner(net, torch.device("cpu"), batch_size=32, progress=Progress("json", stream))
    x = torch.arange(50, dtype=torch.float32).reshape(50, 1, 1, 1)
    assert torch.equal(runner(x), 2 * x)
    assert runner.batch_size == 4 and max(net.sizes) == 4 and sum(net.sizes) == 50
    assert _messages(stream) == [f"GPU out of memory: retrying with batches of {n}" for n in (16, 8, 4)]


def test_out_of_memory_for_one_sample_falls_back_to_the_cpu():
    stream = io.StringIO()
    runner = BatchRunner(FlakyNet(failures=3), torch.device("cpu"), batch_size=4, progress=Progress("json", stream))
    x = torch.ones(6, 1, 2, 2)
    assert torch.equal(runner(x), 2 * x)
    assert runner.device.type == "cpu" and runner.batch_size == default_batch_size(torch.device("cpu"))
    assert "continuing on the CPU" in _messages(stream)[-1]


def test_cpu_batch_scales_with_patch_area():
    assert default_batch_size(torch.device("cpu"), 64) == 4 * default_batch_size(torch.device("cpu"), 128)
    assert default_batch_size(torch.device("cpu"), 256) == default_batch_size(torch.device("cpu"), 128)
