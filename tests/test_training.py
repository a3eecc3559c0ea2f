"""The training loop learns, clips, is reproducible and honours the device."""

from __future__ import annotations

import math

import pytest
import torch

from rnn_course.models import SequenceModel
from rnn_course.tasks import Batch, memory_task
from rnn_course.training import (
    History,
    TrainConfig,
    accuracy,
    batch_seed,
    task_loss,
    train,
)


def short_memory(seed: int, device: torch.device) -> Batch:
    return memory_task(16, 4, seed=seed, device=device)


def make_model(device=None) -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel("gru", 5, 8, 4, device=device)


def test_tiny_model_learns_tiny_task(device) -> None:
    model = make_model(device)
    config = TrainConfig(steps=150, lr=0.02, seed=1)
    history = train(model, short_memory, None, config, device=device)
    assert isinstance(history, History)
    assert len(history.loss) == len(history.grad_norm) == len(history.accuracy) == 150
    first = sum(history.loss[:10]) / 10
    last = sum(history.loss[-10:]) / 10
    assert last < 0.3 * first
    assert history.final_accuracy > 0.9


def test_clipping_caps_the_update(device) -> None:
    """With plain SGD the parameter change of a step is lr times the clipped gradient."""
    model = make_model(device)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    config = TrainConfig(steps=1, lr=0.5, clip_norm=1e-3, optimizer="sgd", seed=2)
    history = train(model, short_memory, None, config, device=device)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    step = (after - before).norm().item()
    assert history.grad_norm[0] > 1e-2  # the raw gradient was far above the threshold
    assert step == pytest.approx(0.5 * 1e-3, rel=1e-3)


def test_without_clipping_update_is_full_gradient(device) -> None:
    model = make_model(device)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    config = TrainConfig(steps=1, lr=0.5, clip_norm=None, optimizer="sgd", seed=2)
    history = train(model, short_memory, None, config, device=device)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm().item() == pytest.approx(0.5 * history.grad_norm[0], rel=1e-4)


def test_runs_are_reproducible() -> None:
    config = TrainConfig(steps=20, seed=3)
    a = train(make_model(), short_memory, None, config)
    b = train(make_model(), short_memory, None, config)
    assert a.loss == b.loss and a.grad_norm == b.grad_norm and a.accuracy == b.accuracy
    c = train(make_model(), short_memory, None, TrainConfig(steps=20, seed=4))
    assert a.loss != c.loss


def test_each_step_gets_a_fresh_batch() -> None:
    seeds: list[int] = []

    def make_batch(seed: int, device: torch.device) -> Batch:
        seeds.append(seed)
        return short_memory(seed, device)

    train(make_model(), make_batch, None, TrainConfig(steps=5, seed=7))
    assert seeds[:5] == [batch_seed(7, s) for s in range(5)]
    assert len(set(seeds)) == 6  # five training batches and one evaluation batch


def test_device_is_honoured(device) -> None:
    model = make_model()  # created on the CPU
    seen: list[torch.device] = []

    def make_batch(seed: int, dev: torch.device) -> Batch:
        seen.append(dev)
        return short_memory(seed, dev)

    train(model, make_batch, None, TrainConfig(steps=2), device=device)
    assert all(d.type == device.type for d in seen)
    assert all(p.device.type == device.type for p in model.parameters())


def test_regression_history_has_nan_accuracy() -> None:
    torch.manual_seed(0)
    model = SequenceModel("lstm", 2, 4, 1)

    def make_batch(seed: int, device: torch.device) -> Batch:
        from rnn_course.tasks import adding_problem

        return adding_problem(8, 6, seed=seed, device=device)

    history = train(model, make_batch, torch.nn.functional.mse_loss, TrainConfig(steps=3))
    assert all(math.isfinite(v) for v in history.loss)
    assert all(math.isnan(v) for v in history.accuracy)
    assert math.isnan(history.final_accuracy)


def test_progress_bar_writes_only_when_enabled(capsys) -> None:
    train(make_model(), short_memory, None, TrainConfig(steps=3, progress=False))
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""
    train(make_model(), short_memory, None, TrainConfig(steps=3, log_every=1, progress=True))
    loud = capsys.readouterr()
    assert loud.out == "" and loud.err != ""


def test_accuracy_counts_argmax_and_ignores_padding() -> None:
    class Fixed(torch.nn.Module):
        def __init__(self, logits: torch.Tensor) -> None:
            super().__init__()
            self.logits = logits

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.logits

    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]]])  # predicts 0, 1, 0
    batch = Batch(torch.zeros(1, 3, 1), torch.tensor([[0, 0, -100]]))
    assert accuracy(Fixed(logits), batch) == 0.5
    with pytest.raises(ValueError, match="accuracy needs integer class targets"):
        accuracy(Fixed(logits), Batch(torch.zeros(1, 3, 1), torch.zeros(1, 3)))


def test_task_loss() -> None:
    logits = torch.randn(2, 3, 4)
    targets = torch.tensor([[0, 1, -100], [3, -100, 2]])
    expected = torch.nn.functional.cross_entropy(logits[targets != -100], targets[targets != -100])
    torch.testing.assert_close(task_loss(logits, targets), expected)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="optimizer must be one of 'adam', 'sgd', got 'rmsprop'"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="clip_norm must be None or a positive number"):
        TrainConfig(clip_norm=0.0)
    with pytest.raises(ValueError, match="steps must be positive"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        TrainConfig(lr=-1.0)
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train(make_model(), short_memory, None, {"steps": 3})
    with pytest.raises(AttributeError):
        TrainConfig().steps = 3  # frozen
