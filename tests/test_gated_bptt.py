"""The gated cells' hand-written BPTT agrees with autograd, finite differences and the cells."""

from __future__ import annotations

import pytest
import torch

import rnn_course
from rnn_course.gated_bptt import (
    GRU_BLOCKS,
    LSTM_BLOCKS,
    autograd_gradients,
    finite_difference_gradients,
    gru_cell_state_dict,
    gru_sequence_backward,
    gru_sequence_forward,
    lstm_cell_state_dict,
    lstm_sequence_backward,
    lstm_sequence_forward,
    max_relative_error,
    random_parameters,
)

CASES = [
    (LSTM_BLOCKS, lstm_sequence_forward, lstm_sequence_backward),
    (GRU_BLOCKS, gru_sequence_forward, gru_sequence_backward),
]


@pytest.mark.parametrize(("blocks", "forward", "backward"), CASES)
def test_backward_matches_autograd_and_finite_differences(blocks, forward, backward) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    dh = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    p = random_parameters(blocks, 3, 4, seed=1)
    _, cache = forward(x, p)
    manual = backward(dh, p, cache)
    assert set(manual) == set(p)
    assert max_relative_error(manual, autograd_gradients(forward, x, dh, p)) < 1e-12
    assert max_relative_error(manual, finite_difference_gradients(forward, x, dh, p, 1e-5)) < 1e-7


def test_a_dropped_cell_path_is_caught() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    dh = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    p = random_parameters(LSTM_BLOCKS, 3, 4, seed=1)
    _, cache = lstm_sequence_forward(x, p)
    for step in cache:  # a forget gate of zero cuts the path from the next cell
        step["f"] = torch.zeros_like(step["f"])
    wrong = lstm_sequence_backward(dh, p, cache)
    assert max_relative_error(wrong, autograd_gradients(lstm_sequence_forward, x, dh, p)) > 1e-3


def test_state_dicts_load_into_the_package_cells() -> None:
    x = torch.randn(1, 3, dtype=torch.float64)
    p = random_parameters(GRU_BLOCKS, 3, 4, seed=2)
    cell = rnn_course.GRUCell(3, 4, reset_after=False, dtype=torch.float64)
    cell.load_state_dict(gru_cell_state_dict(p))
    torch.testing.assert_close(cell(x[0]), gru_sequence_forward(x, p)[0][0])
    p = random_parameters(LSTM_BLOCKS, 3, 4, seed=2)
    cell = rnn_course.LSTMCell(3, 4, dtype=torch.float64)
    cell.load_state_dict(lstm_cell_state_dict(p))
    torch.testing.assert_close(cell(x[0])[0], lstm_sequence_forward(x, p)[0][0])
