"""Shared pytest setup: keep torch to the CI machine's two cores and make runs deterministic."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import torch  # noqa: E402

torch.set_num_threads(2)
