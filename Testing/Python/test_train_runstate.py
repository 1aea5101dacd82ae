"""The run folder contract (status.json, metrics.jsonl, checkpoints) and the shared epoch loop, on a toy model."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dccseg.errors import DccsegError
from dccseg.progress import QUIET
from dccseg.training import distributed
from dccseg.training.loop import Stage, run_stage
from dccseg.training.runstate import RunState, StopFlag, read_metrics, read_status

STATUS_KEYS = {"state", "stage", "epoch", "epochs", "fraction", "message", "pid", "updated", "best", "model_ref", "error"}
METRIC_KEYS = {"stage", "epoch", "train_loss", "val_dice_mean", "val_dice", "lr", "seconds"}


def toy_stage(epochs: int, stop: StopFlag | None = None, stop_after_batches: int | None = None) -> Stage:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.9)
    target = torch.tensor([[1.0], [-2.0], [0.5]])
    calls = {"n": 0}

    def batches(epoch: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(epoch)
        return [torch.randn(8, 3, generator=gen) for _ in range(4)]

    def loss_fn(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if stop is not None and stop_after_batches is not None and calls["n"] >= stop_after_batches:
            stop.requested = True
        return ((net(x) - x @ target) ** 2).mean()

    def validate(net: nn.Module) -> dict[str, float]:
        error = float((net.weight.detach().T - target).abs().mean())
        return {"liver": max(0.0, 1.0 - error), "spleen": float("nan")}

    return Stage("coarse", epochs, model, optimizer, scheduler, batches, loss_fn, validate)


def run(tmp_path, epochs: int, resume: bool, stop: StopFlag | None = None, stop_after: int | None = None):
    state = RunState(tmp_path, {"coarse": 1.0})
    state.open(resume=resume)
    flag = stop or StopFlag()
    result = run_stage(toy_stage(epochs, flag, stop_after), distributed.setup("cpu"), state, flag, QUIET, resume)
    state.finish("finished" if result.state == "finished" else "stopped")
    return result


def test_run_folder_files_follow_the_contract(tmp_path):
    result = run(tmp_path, epochs=3, resume=False)
    assert result.state == "finished" and result.epoch == 3
    status = read_status(tmp_path)
    assert set(status) == STATUS_KEYS
    assert status["state"] == "finished" and status["epoch"] == 3 and status["epochs"] == 3 and status["fraction"] == 1.0
    assert status["best"]["metric"] == "val_dice_mean" and status["best"]["epoch"] == result.best_epoch
    records = read_metrics(tmp_path)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for record in records:
        assert set(record) == METRIC_KEYS and record["stage"] == "coarse"
        assert record["val_dice_mean"] == pytest.approx(record["val_dice"]["liver"], abs=1e-5)  # NaN organs are left out of the mean
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    last = torch.load(tmp_path / "coarse" / "last.pt", weights_only=True)
    assert last["epoch"] == 3 and set(last) >= {"model", "optimizer", "scheduler", "scaler", "rng", "record"}
    assert torch.load(tmp_path / "coarse" / "best.pt", weights_only=True)["epoch"] == result.best_epoch
    json.dumps(status)


def test_existing_run_needs_resume(tmp_path):
    run(tmp_path, epochs=1, resume=False)
    with pytest.raises(DccsegError, match="--resume"):
        RunState(tmp_path, {"coarse": 1.0}).open(resume=False)


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    run(straight, epochs=4, resume=False)
    stop = StopFlag()
    result = run(interrupted, epochs=4, resume=False, stop=stop, stop_after=10)  # stops inside epoch 3
    assert result.state == "stopped" and result.epoch == 2
    assert read_status(interrupted)["state"] == "stopped"
    assert [r["epoch"] for r in read_metrics(interrupted)] == [1, 2]
    run(interrupted, epochs=4, resume=True)
    a, b = read_metrics(straight), read_metrics(interrupted)
    assert [r["epoch"] for r in b] == [1, 2, 3, 4]
    assert [r["train_loss"] for r in a] == pytest.approx([r["train_loss"] for r in b], rel=1e-6)
    assert read_status(interrupted)["state"] == "finished"


def test_resume_drops_metric_lines_logged_after_the_checkpoint(tmp_path):
    run(tmp_path, epochs=2, resume=False)
    records = read_metrics(tmp_path)
    ghost = dict(records[-1], epoch=3)
    with open(tmp_path / "metrics.jsonl", "a") as stream:  # as if killed between logging epoch 3 and its checkpoint
        stream.write(json.dumps(ghost) + "\n")
    run(tmp_path, epochs=3, resume=True)
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    assert read_metrics(tmp_path)[-1]["train_loss"] != ghost["train_loss"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_paths_train_and_resume(tmp_path, dtype):
    """The CUDA code path (autocast; fp16 with a gradient scaler), exercised with CPU autocast."""
    ctx = distributed.DeviceContext(torch.device("cpu"), amp_dtype=dtype)
    for epochs, resume in ((2, False), (3, True)):
        state = RunState(tmp_path, {"coarse": 1.0})
        state.open(resume=resume)
        result = run_stage(toy_stage(epochs), ctx, state, StopFlag(), QUIET, resume)
    assert result.state == "finished" and [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2, 3]
    scaler = torch.load(tmp_path / "coarse" / "last.pt", weights_only=True)["scaler"]
    assert bool(scaler) == (dtype == torch.float16)
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in read_metrics(tmp_path))


def test_patience_stops_a_stage_that_no_longer_improves(tmp_path):
    stage = toy_stage(12)
    values = iter([0.5, 0.6, 0.55, 0.58, 0.59, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
    stage.validate = lambda net: {"liver": next(values)}
    stage.patience = 3
    state = RunState(tmp_path, {"coarse": 1.0})
    state.open(resume=False)
    result = run_stage(stage, distributed.setup("cpu"), state, StopFlag(), QUIET, False)
    assert result.state == "finished" and (result.best_epoch, result.best_value) == (2, 0.6)
    assert [r["epoch"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5]

