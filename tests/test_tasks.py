"""The synthetic tasks: shapes, determinism per seed, targets recomputed independently."""

from __future__ import annotations

import pytest
import torch

from rnn_course.tasks import (
    IGNORE_INDEX,
    Batch,
    adding_problem,
    copy_task,
    memory_task,
    right_context_ceiling,
    right_context_labels,
    right_context_task,
)

TASKS = {
    "adding": lambda seed, device: adding_problem(6, 12, seed=seed, device=device),
    "copy": lambda seed, device: copy_task(6, 4, seed=seed, device=device),
    "memory": lambda seed, device: memory_task(6, 9, seed=seed, device=device),
    "right": lambda seed, device: right_context_task(6, 10, seed=seed, device=device),
}


@pytest.mark.parametrize("name", TASKS)
def test_same_seed_same_batch_other_seed_differs(name: str, device) -> None:
    make = TASKS[name]
    a, b, c = make(0, device), make(0, device), make(1, device)
    assert isinstance(a, Batch)
    assert a.inputs.device.type == device.type and a.targets.device.type == device.type
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)
    # the global RNG is not touched
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    make(5, device)
    assert torch.equal(torch.rand(3), expected)


def test_adding_problem(device) -> None:
    inputs, targets = adding_problem(50, 20, seed=3, device=device)
    assert inputs.shape == (50, 20, 2) and inputs.dtype == torch.float32
    assert targets.shape == (50, 1) and targets.dtype == torch.float32
    values, markers = inputs[..., 0], inputs[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert (markers.sum(1) == 2).all()
    assert (markers[:, :10].sum(1) == 1).all() and (markers[:, 10:].sum(1) == 1).all()
    torch.testing.assert_close(targets[:, 0], (values * markers).sum(1))


def test_adding_problem_odd_length_halves() -> None:
    inputs, _ = adding_problem(200, 3, seed=0)
    markers = inputs[..., 1]
    assert (markers[:, 0] == 1).all()  # the first half of T=3 is step 0 only
    assert (markers[:, 1:].sum(1) == 1).all()


def test_copy_task(device) -> None:
    P, delay, S = 4, 6, 5
    inputs, targets = copy_task(7, delay, pattern_len=P, num_symbols=S, seed=2, device=device)
    T = 2 * P + delay + 1
    assert inputs.shape == (7, T, S + 2) and inputs.dtype == torch.float32
    assert targets.shape == (7, T) and targets.dtype == torch.int64
    assert (inputs.sum(-1) == 1).all()  # one-hot everywhere
    codes = inputs.argmax(-1)
    pattern = codes[:, :P]
    assert (pattern < S).all()
    assert (codes[:, P : P + delay] == S).all()  # blanks
    assert (codes[:, P + delay] == S + 1).all()  # go
    assert (codes[:, P + delay + 1 :] == S).all()
    assert (targets[:, : P + delay + 1] == IGNORE_INDEX).all()
    assert torch.equal(targets[:, P + delay + 1 :], pattern)


def test_copy_task_zero_delay() -> None:
    inputs, targets = copy_task(2, 0, pattern_len=3, seed=0)
    assert inputs.shape[1] == 7 and (targets[:, 4:] >= 0).all()


def test_memory_task(device) -> None:
    C = 3
    inputs, targets = memory_task(40, 11, num_classes=C, seed=4, device=device)
    assert inputs.shape == (40, 11, C + 1) and inputs.dtype == torch.float32
    assert targets.shape == (40,) and targets.dtype == torch.int64
    assert torch.equal(inputs[:, 0, :C].argmax(-1), targets)
    assert (inputs[:, 0, :C].sum(-1) == 1).all()
    assert (inputs[:, 0, C] == 1).all() and (inputs[:, 1:, C] == 0).all()
    assert set(targets.tolist()) == set(range(C))
    # the distractors carry no information about the label: they do not depend on it
    assert inputs[:, 1:, :C].std() > 0.1


def test_memory_task_noise_level() -> None:
    quiet = memory_task(8, 5, noise=0.0, seed=0).inputs
    assert (quiet[:, 1:] == 0).all()


def test_right_context_labels_by_hand() -> None:
    V = 8
    tokens = torch.tensor([[1, 4, 2, 3, 7]])
    # polarity 1,0,0,1,1; flippers (>= 4) at positions 1 and 4 flip the tokens before them
    assert right_context_labels(tokens, V).tolist() == [[0, 0, 0, 0, 1]]


def test_right_context_task(device) -> None:
    V = 8
    inputs, targets = right_context_task(30, 10, vocab_size=V, seed=5, device=device)
    assert inputs.shape == (30, 10, V) and targets.shape == (30, 10)
    assert targets.dtype == torch.int64 and set(targets.unique().tolist()) <= {0, 1}
    tokens = inputs.argmax(-1).cpu()
    for n in range(30):
        for t in range(10):
            label = tokens[n, t].item() % 2
            if t + 1 < 10 and tokens[n, t + 1].item() >= V // 2:
                label = 1 - label
            assert targets[n, t].item() == label


def test_right_context_ceiling_is_reachable_and_not_beaten_by_causal_rule() -> None:
    """The best causal rule (guess the polarity, never the flip) scores the ceiling."""
    T = 12
    inputs, targets = right_context_task(4000, T, seed=6)
    guess = inputs.argmax(-1) % 2  # uses x_t only; the flip is a fair coin
    acc = (guess == targets).float().mean().item()
    assert acc == pytest.approx(right_context_ceiling(T), abs=0.01)
    assert right_context_ceiling(1) == 1.0
    assert right_context_ceiling(T) == pytest.approx((T + 1) / (2 * T))


def test_validation() -> None:
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        adding_problem(0, 5, seed=0)
    with pytest.raises(ValueError, match="seq_len must be at least 2"):
        adding_problem(3, 1, seed=0)
    with pytest.raises(TypeError, match="seed must be an int, got float"):
        memory_task(3, 5, seed=1.5)
    with pytest.raises(ValueError, match="delay must be a non-negative int"):
        copy_task(3, -1, seed=0)
    with pytest.raises(ValueError, match="num_classes must be at least 2"):
        memory_task(3, 5, num_classes=1, seed=0)
    with pytest.raises(ValueError, match="vocab_size must be a positive multiple of 4"):
        right_context_task(3, 5, vocab_size=6, seed=0)
    with pytest.raises(ValueError, match="noise must be a non-negative number"):
        memory_task(3, 5, noise=-1.0, seed=0)
