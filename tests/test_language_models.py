"""Language models and the masked bidirectional layer: padding, parity with packing, budgets."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnn_course.language.models import (
    CharLM,
    MaskedBidirectional,
    TokenClassifier,
    char_lm_parameters,
    hidden_size_for_budget,
    last_real_step,
    lengths_from_padding,
    reverse_padded,
)

TORCH_LAYERS = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def test_reverse_padded_reverses_within_each_length() -> None:
    x = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8], [9, 0, 0, 0, 0]])
    out = reverse_padded(x, torch.tensor([3, 5, 1]))
    assert out.tolist() == [[3, 2, 1, 0, 0], [8, 7, 6, 5, 4], [9, 0, 0, 0, 0]]
    features = torch.randn(3, 5, 4)
    lengths = torch.tensor([3, 5, 1])
    assert torch.equal(reverse_padded(reverse_padded(features, lengths), lengths), features)


def test_last_real_step_and_lengths() -> None:
    tokens = torch.tensor([[3, 4, 0], [5, 6, 7]])
    lengths = lengths_from_padding(tokens)
    assert lengths.tolist() == [2, 3]
    out = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    assert torch.equal(last_real_step(out, lengths), torch.stack([out[0, 1], out[1, 2]]))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_masked_bidirectional_equals_torch_nn_with_packing(cell: str) -> None:
    torch.manual_seed(0)
    N, T, D, H = 4, 9, 5, 6
    x = torch.randn(N, T, D, dtype=torch.float64)
    lengths = torch.tensor([9, 3, 6, 1])
    reference = TORCH_LAYERS[cell](D, H, batch_first=True, bidirectional=True).double()
    masked = MaskedBidirectional(cell, D, H).double()
    masked.load_torch_state_dict(reference.state_dict())
    out, h_n = masked(x, lengths)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    ref_packed, ref_state = reference(packed)
    ref_out, _ = pad_packed_sequence(ref_packed, batch_first=True, total_length=T)
    ref_h = ref_state[0] if cell == "lstm" else ref_state
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(h_n, ref_h)
    assert out[1, 3:].eq(0).all()  # padding positions are zero


def test_unmasked_bidirectional_layer_is_wrong_on_padding() -> None:
    """The pitfall the masked layer fixes: the backward direction reads the padding first."""
    torch.manual_seed(1)
    N, T, D, H = 2, 8, 3, 5
    x = torch.randn(N, T, D)
    x[1, 4:] = 0.0
    lengths = torch.tensor([8, 4])
    layer = torch.nn.GRU(D, H, batch_first=True, bidirectional=True)
    masked = MaskedBidirectional("gru", D, H)
    masked.load_torch_state_dict(layer.state_dict())
    padded_out, _ = layer(x)
    alone, _ = layer(x[1:, :4])
    masked_out, _ = masked(x, lengths)
    assert (padded_out[1, :4, H:] - alone[0, :, H:]).abs().max() > 1e-2
    torch.testing.assert_close(masked_out[1, :4], alone[0])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_token_classifier_ignores_right_padding(cell: str) -> None:
    torch.manual_seed(2)
    model = TokenClassifier(cell, 10, 4, 6, 3, num_layers=2)
    tokens = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    batch = model(tokens)
    alone = model(tokens[:1, :3])
    assert batch.shape == (2, 3)
    torch.testing.assert_close(batch[:1], alone)


def test_residual_stack_builds_and_runs() -> None:
    model = TokenClassifier("rnn", 10, 8, 8, num_layers=4, skip="residual")
    assert model(torch.tensor([[1, 2, 3]])).shape == (1, 2)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_parameter_budget(cell: str) -> None:
    V, budget = 70, 9000
    H = hidden_size_for_budget(cell, V, budget)
    assert char_lm_parameters(cell, V, H) <= budget < char_lm_parameters(cell, V, H + 1)
    model = CharLM(cell, V, H)
    assert sum(p.numel() for p in model.parameters()) == char_lm_parameters(cell, V, H)
    with pytest.raises(ValueError, match="budget"):
        hidden_size_for_budget(cell, V, 10)


def test_char_lm_shapes_and_bidirectional_readout() -> None:
    ids = torch.randint(0, 12, (3, 7))
    logits, state = CharLM("lstm", 12, 5)(ids)
    assert logits.shape == (3, 7, 12) and state[0].shape == (1, 3, 5)
    logits, state = CharLM("gru", 12, 5, bidirectional=True)(ids)
    assert logits.shape == (3, 7, 12) and state.shape == (2, 3, 5)
