"""Training many seeds at once reproduces training each alone; summaries and intervals."""

from __future__ import annotations

import math

import pytest
import torch

from rnn_course.experiments import (
    SEEDS,
    GroupOptimizer,
    bootstrap_interval,
    clip_groups_,
    evaluate_groups,
    group_losses,
    grouped_truncated_bptt,
    spread,
    stack_batches,
    train_char_lm_groups,
    train_groups,
    wilson_interval,
)
from rnn_course.grouped import GroupedCharLM, GroupedSequenceModel
from rnn_course.language.models import CharLM
from rnn_course.language.training import LMConfig, train_char_lm
from rnn_course.models import SequenceModel
from rnn_course.tasks import Batch, memory_task
from rnn_course.training import TrainConfig, accuracy, train


def memory(seed: int, device: torch.device) -> Batch:
    return memory_task(8, 5, seed=seed, device=device)


def new_model(cell: str, seed: int) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(cell, 5, 6, 4)


def test_ten_seeds_by_default() -> None:
    assert tuple(range(10)) == SEEDS


def test_a_review_with_new_seeds_sets_the_first_one(monkeypatch) -> None:
    from rnn_course import experiments

    monkeypatch.setenv(experiments.SEEDS_VARIABLE, "100")
    assert experiments._seeds() == tuple(range(100, 110))
    monkeypatch.setenv(experiments.SEEDS_VARIABLE, "-3")
    with pytest.raises(ValueError, match="non-negative integer"):
        experiments._seeds()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_train_groups_reproduces_train_for_every_seed(cell, optimizer) -> None:
    seeds = (3, 7)
    grouped = GroupedSequenceModel.from_models([new_model(cell, s) for s in seeds])
    history = train_groups(grouped, memory, seeds, steps=12, lr=0.02, optimizer=optimizer)
    for g, seed in enumerate(seeds):
        alone = new_model(cell, seed)
        config = TrainConfig(steps=12, lr=0.02, seed=seed, optimizer=optimizer)
        expected = train(alone, memory, None, config)
        torch.testing.assert_close(
            history.loss[:, g], torch.tensor(expected.loss), atol=1e-5, rtol=1e-4
        )
        for a, b in zip(grouped.model(g).parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_every_group_has_its_own_learning_rate() -> None:
    seeds = (0, 0)
    grouped = GroupedSequenceModel.from_models([new_model("rnn", s) for s in seeds])
    train_groups(grouped, memory, seeds, steps=5, lr=[0.01, 0.05])
    for g, lr in enumerate((0.01, 0.05)):
        alone = new_model("rnn", 0)
        train(alone, memory, None, TrainConfig(steps=5, lr=lr, seed=0))
        for a, b in zip(grouped.model(g).parameters(), alone.parameters(), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_clipping_is_per_group() -> None:
    p = torch.zeros(2, 3, requires_grad=True)
    p.grad = torch.tensor([[3.0, 4.0, 0.0], [0.3, 0.4, 0.0]])
    norms = clip_groups_([p], 1.0)
    torch.testing.assert_close(norms, torch.tensor([5.0, 0.5]))
    torch.testing.assert_close(p.grad[0].norm(), torch.tensor(1.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(p.grad[1], torch.tensor([0.3, 0.4, 0.0]))


def test_group_losses_ignore_padding_targets() -> None:
    logits = torch.zeros(2, 1, 3, 4)
    targets = torch.tensor([[[0, 1, -100]], [[2, -100, -100]]])
    torch.testing.assert_close(group_losses(logits, targets), torch.full((2,), math.log(4)))


def test_stack_batches_pads_to_the_longest() -> None:
    a = Batch(torch.ones(2, 3, dtype=torch.int64), torch.zeros(2, dtype=torch.int64))
    b = Batch(torch.ones(2, 5, dtype=torch.int64), torch.ones(2, dtype=torch.int64))
    stacked = stack_batches([a, b])
    assert stacked.inputs.shape == (2, 2, 5)
    assert stacked.inputs[0, :, 3:].sum() == 0


def test_evaluate_groups_matches_accuracy() -> None:
    models = [new_model("gru", s) for s in (0, 1)]
    grouped = GroupedSequenceModel.from_models(models)
    batch = memory_task(32, 5, seed=9)
    acc = evaluate_groups(grouped, batch)
    for g, model in enumerate(models):
        assert acc[g].item() == pytest.approx(accuracy(model, batch))


def test_grouped_truncated_bptt_returns_one_loss_per_chunk_and_group() -> None:
    model = GroupedSequenceModel.from_models(
        [SequenceModel("rnn", 4, 5, 4, readout="all") for _ in range(3)]
    )
    opt = GroupOptimizer(list(model.parameters()), torch.full((3,), 0.01))
    x = torch.randn(3, 2, 10, 4)
    y = torch.randint(0, 4, (3, 2, 10))
    losses = grouped_truncated_bptt(model.run, x, y, 4, opt)
    assert losses.shape == (3, 3)


@pytest.mark.parametrize("batches", ["tbptt", "windows"])
def test_char_lm_groups_reproduce_train_char_lm(batches) -> None:
    ids = torch.randint(0, 12, (2000,))
    seeds = (1, 2)
    models = []
    for s in seeds:
        torch.manual_seed(s)
        models.append(CharLM("lstm", 12, 6))
    grouped = GroupedCharLM.from_models(models)
    history = train_char_lm_groups(
        grouped, ids, ids[:300], seeds, steps=6, lr=0.02, batch_size=4, bptt=8, batches=batches
    )
    for g, s in enumerate(seeds):
        torch.manual_seed(s)
        alone = CharLM("lstm", 12, 6)
        config = LMConfig(steps=6, lr=0.02, batch_size=4, bptt=8, seed=s, batches=batches)
        expected = train_char_lm(alone, ids, ids[:300], config)
        torch.testing.assert_close(
            history.bpc[:, g], torch.tensor(expected.bpc), atol=1e-4, rtol=1e-4
        )
        assert history.valid_bpc[-1, g].item() == pytest.approx(expected.valid_bpc[-1], rel=1e-4)


def test_spread_and_intervals() -> None:
    assert spread([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and 0.65 < low < 0.75
    low, high = wilson_interval(5, 10)
    assert low < 0.5 < high
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    data = torch.arange(100.0)
    low, high = bootstrap_interval(lambda index: data[index].mean(dim=1), 100)
    assert low < 49.5 < high and high - low < 20
