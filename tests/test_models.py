"""SequenceModel: shapes of both readouts, the bidirectional summary, parameters on device."""

from __future__ import annotations

import pytest
import torch

from rnn_course.models import SequenceModel

CELLS = ["rnn", "lstm", "gru"]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_output_shapes(cell: str, bidirectional: bool, device) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 7, 5, device=device)
    last = SequenceModel(cell, 5, 4, 2, bidirectional=bidirectional, device=device)
    every = SequenceModel(
        cell, 5, 4, 2, num_layers=2, bidirectional=bidirectional, readout="all", device=device
    )
    assert last(x).shape == (3, 2)
    assert every(x).shape == (3, 7, 2)
    assert all(p.device.type == device.type for p in last.parameters())


@pytest.mark.parametrize("cell", CELLS)
def test_last_readout_reads_final_state(cell: str) -> None:
    torch.manual_seed(0)
    model = SequenceModel(cell, 3, 4, 2, dtype=torch.float64)
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    _, state = model.rnn(x)
    h_n = state[0] if isinstance(state, tuple) else state
    torch.testing.assert_close(model(x), model.head(h_n[-1]))


@pytest.mark.parametrize("cell", CELLS)
def test_bidirectional_summary_uses_backward_state_at_time_zero(cell: str) -> None:
    torch.manual_seed(0)
    model = SequenceModel(cell, 3, 4, 2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    _, state = model.rnn(x)
    h_n = state[0] if isinstance(state, tuple) else state  # (2, N, H): forward, backward
    expected = model.head(torch.cat([h_n[0], h_n[1]], dim=1))
    torch.testing.assert_close(model(x), expected)
    # the backward direction's summary depends on the first input: changing it changes
    # the output even though the forward direction sees it only through 5 steps
    y = x.clone()
    y[:, 0] += 1.0
    assert not torch.allclose(model(x), model(y))


def test_all_readout_is_per_step_head() -> None:
    torch.manual_seed(0)
    model = SequenceModel("gru", 3, 4, 5, readout="all", dtype=torch.float64)
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    out, _ = model.rnn(x)
    torch.testing.assert_close(model(x), model.head(out))


def test_uses_rnn_course_layers() -> None:
    import rnn_course.layers

    for cell, name in [("rnn", "RNN"), ("lstm", "LSTM"), ("gru", "GRU")]:
        model = SequenceModel(cell, 2, 3, 1)
        assert type(model.rnn) is getattr(rnn_course.layers, name)
        assert model.rnn.batch_first


def test_skip_is_passed_to_layer() -> None:
    torch.manual_seed(0)
    plain = SequenceModel("rnn", 4, 4, 1, num_layers=3)
    residual = SequenceModel("rnn", 4, 4, 1, num_layers=3, skip="residual")
    residual.load_state_dict(plain.state_dict())
    x = torch.randn(2, 5, 4)
    assert residual(x).shape == (2, 1)
    # same weights, different wiring between the layers
    assert not torch.allclose(residual(x), plain(x))


def test_dtype_and_cell_case() -> None:
    model = SequenceModel("LSTM", 2, 3, 1, dtype=torch.float64)
    assert model.cell == "lstm"
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_validation() -> None:
    with pytest.raises(ValueError, match="cell must be one of 'rnn', 'lstm', 'gru', got 'tcn'"):
        SequenceModel("tcn", 2, 3, 1)
    with pytest.raises(ValueError, match="readout must be one of 'last', 'all'"):
        SequenceModel("rnn", 2, 3, 1, readout="mean")
    with pytest.raises(ValueError, match="hidden_size must be positive, got 0"):
        SequenceModel("rnn", 2, 0, 1)
    with pytest.raises(ValueError, match="skip must be one of"):
        SequenceModel("rnn", 2, 3, 1, skip="bypass")
    with pytest.raises(TypeError, match="cell must be a str, got int"):
        SequenceModel(3, 2, 3, 1)
