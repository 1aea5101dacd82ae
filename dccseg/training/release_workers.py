"""CPU worker processes that make release-training cases while the accelerator trains.

Worker ``i`` of ``n`` renders the training bodies ``bodies[i::n]`` (so each prepares few templates) and, now and
then, the real CT. Each case is a refine case with probability ``refine_share`` (set by the trainer: low while
the coarse stage runs, so the refine pool fills, then 1), the first one a coarse case. The first ``validation``
workers make their first case of each kind a validation case: a fresh anatomy whose seed no training case uses.
Cases go to one queue per kind; workers are spawned (safe next to CUDA) and stop when the trainer sets the stop event.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from dataclasses import dataclass, field
from typing import Any

from dccseg.training.release_data import KINDS, CaseMaker, CaseRecipe, ReleaseCase

VALIDATION, TRAINING = 0, 1  # first element of a case's seed after the run seed: the two never share a seed
PUT_TIMEOUT_S = 0.5


def worker_bodies(index: int, count: int, bodies: tuple[str, ...]) -> tuple[str, ...]:
    return bodies[index::count] or (bodies[index % len(bodies)],)


def worker_main(index: int, count: int, recipe: CaseRecipe, seed: int, validation: int, refine_share: Any, queues: dict[str, Any], stop: Any) -> None:
    """Make cases until ``stop`` is set (runs in a spawned process)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    maker = CaseMaker(recipe)
    bodies = worker_bodies(index, count, recipe.bodies)
    rng = np.random.default_rng([seed, index])
    validated = set() if index < validation else set(KINDS)
    made = 0
    while not stop.is_set():
        kind = "refine" if made and rng.uniform() < refine_share.value else "coarse"
        role = TRAINING if kind in validated else VALIDATION
        validated.add(kind)
        prefix = "val" if role == VALIDATION else "train"
        case = maker.make(kind, bodies, (seed, role, index, made), f"{prefix}-{kind}-w{index}-{made}")
        made += 1
        while not stop.is_set():
            try:
                queues[kind].put(case, timeout=PUT_TIMEOUT_S)
                break
            except queue.Full:
                continue


@dataclass
class CaseWorkers:
    """The running workers and their queues; use as a context manager (workers are stopped on exit)."""

    recipe: CaseRecipe
    count: int
    seed: int
    validation_workers: int = 1
    queue_size: int = 4
    processes: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        context = mp.get_context("spawn")
        self.stop = context.Event()
        self.refine_share = context.Value("d", 0.0)
        self.queues = {kind: context.Queue(maxsize=self.queue_size * self.count) for kind in KINDS}
        self._context = context

    def __enter__(self) -> "CaseWorkers":
        for index in range(self.count):
            args = (index, self.count, self.recipe, self.seed, self.validation_workers, self.refine_share, self.queues, self.stop)
            process = self._context.Process(target=worker_main, args=args, daemon=True)
            process.start()
            self.processes.append(process)
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop at once: a case half made is not needed, and waiting for it (or for a queue to flush) costs budget."""
        self.stop.set()
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join(timeout=5)

    def set_refine_share(self, share: float) -> None:
        self.refine_share.value = float(share)

    def drain(self, kind: str, limit: int = 64) -> list[ReleaseCase]:
        """The cases of ``kind`` ready now (at most ``limit``), without waiting."""
        out = []
        while len(out) < limit:
            try:
                out.append(self.queues[kind].get_nowait())
            except queue.Empty:
                break
        return out

    def alive(self) -> bool:
        return any(p.is_alive() for p in self.processes)


def default_workers() -> int:
    return max(1, (os.cpu_count() or 2) - 2)
