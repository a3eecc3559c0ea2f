"""Grouped models compute, group by group, what the package's ordinary models compute."""

from __future__ import annotations

import pytest
import torch

from rnn_course.grouped import (
    GroupedCharLM,
    GroupedEmbedding,
    GroupedLinear,
    GroupedSequenceModel,
    GroupedStack,
    GroupedTokenClassifier,
)
from rnn_course.language.models import CharLM, TokenClassifier
from rnn_course.models import SequenceModel

CELLS = ("rnn", "lstm", "gru")


def seeded(factory, seeds=(0, 1, 2)):
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(factory())
    return models


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("readout", ["last", "all"])
def test_sequence_model_groups_match_the_models(cell, bidirectional, readout) -> None:
    models = seeded(
        lambda: SequenceModel(cell, 5, 7, 3, bidirectional=bidirectional, readout=readout)
    )
    grouped = GroupedSequenceModel.from_models(models)
    x = torch.randn(3, 4, 6, 5)
    out = grouped(x)
    for g, model in enumerate(models):
        torch.testing.assert_close(out[g], model(x[g]), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_a_group_unstacks_into_an_ordinary_model(cell) -> None:
    models = seeded(lambda: SequenceModel(cell, 5, 7, 3))
    grouped = GroupedSequenceModel.from_models(models)
    x = torch.randn(4, 6, 5)
    torch.testing.assert_close(grouped.model(1)(x), models[1](x))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(("layers", "skip"), [(1, None), (2, None), (3, "residual")])
def test_token_classifier_groups_read_the_last_real_word(cell, layers, skip) -> None:
    models = seeded(lambda: TokenClassifier(cell, 20, 6, 7, num_layers=layers, skip=skip))
    grouped = GroupedTokenClassifier.from_models(models)
    tokens = torch.randint(1, 20, (3, 5, 8))
    tokens[:, :2, 5:] = 0  # two shorter sentences, right-padded
    out = grouped(tokens)
    for g, model in enumerate(models):
        torch.testing.assert_close(out[g], model(tokens[g]), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_char_lm_groups_match_and_carry_their_state(cell, bidirectional) -> None:
    models = seeded(lambda: CharLM(cell, 30, 9, bidirectional=bidirectional))
    grouped = GroupedCharLM.from_models(models)
    ids = torch.randint(0, 30, (4, 7))
    first, state = grouped(ids[:, :3])
    second, _ = grouped(ids[:, 3:], state)
    for g, model in enumerate(models):
        expected, model_state = model(ids[:, :3])
        torch.testing.assert_close(first[g], expected, atol=1e-6, rtol=1e-5)
        if not bidirectional:  # a carried state continues the stream
            torch.testing.assert_close(
                second[g], model(ids[:, 3:], model_state)[0], atol=1e-6, rtol=1e-5
            )
    torch.testing.assert_close(grouped.model(2)(ids)[0], models[2](ids)[0])


def test_stack_parameters_have_the_package_names() -> None:
    stack = GroupedStack("lstm", 4, 3, 5, num_layers=2, bidirectional=True)
    names = dict(stack.named_parameters())
    assert names["weight_ih_l0"].shape == (4, 20, 3)
    assert names["weight_ih_l1_reverse"].shape == (4, 20, 10)
    assert names["bias_hh_l1"].shape == (4, 20)
    reference = SequenceModel("lstm", 3, 5, 2, num_layers=2, bidirectional=True).rnn
    assert set(names) == {name for name, _ in reference.named_parameters()}


def test_groups_do_not_share_gradients() -> None:
    linear = GroupedLinear(3, 4, 2)
    x = torch.randn(3, 5, 4)
    linear(x)[1].sum().backward()
    assert linear.weight.grad[0].abs().sum() == 0 and linear.weight.grad[2].abs().sum() == 0
    assert linear.weight.grad[1].abs().sum() > 0


def test_embedding_padding_is_zero_and_gets_no_gradient() -> None:
    embed = GroupedEmbedding(2, 6, 3)
    with torch.no_grad():
        embed.weight.normal_()
    tokens = torch.tensor([[[0, 1, 2]], [[3, 0, 0]]])
    out = embed(tokens)
    assert out[0, 0, 0].abs().sum() == 0 and out[1, 0, 2].abs().sum() == 0
    out.sum().backward()
    assert embed.weight.grad[:, 0].abs().sum() == 0


def test_skip_other_than_residual_is_rejected() -> None:
    with pytest.raises(ValueError, match="skip"):
        GroupedStack("rnn", 2, 3, 4, num_layers=2, skip="dense")


def test_lstm_recurrence_backward_passes_gradcheck() -> None:
    from rnn_course.grouped import LSTMRecurrence

    gen = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).requires_grad_()

    xw, w_hh = rand(2, 4, 3, 8), rand(2, 8, 2, scale=0.5)
    h0, c0 = rand(2, 3, 2), rand(2, 3, 2)
    for reverse in (False, True):
        assert torch.autograd.gradcheck(LSTMRecurrence.apply, (xw, w_hh, h0, c0, reverse))


def test_gru_recurrence_backward_passes_gradcheck() -> None:
    from rnn_course.grouped import GRURecurrence

    gen = torch.Generator().manual_seed(1)

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).requires_grad_()

    xw, w_hh, b_hh = rand(2, 4, 3, 6), rand(2, 6, 2, scale=0.5), rand(2, 6)
    h0 = rand(2, 3, 2)
    for reverse in (False, True):
        assert torch.autograd.gradcheck(GRURecurrence.apply, (xw, w_hh, b_hh, h0, reverse))


def test_rnn_recurrence_backward_passes_gradcheck() -> None:
    from rnn_course.grouped import RNNRecurrence

    gen = torch.Generator().manual_seed(2)

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).requires_grad_()

    xw, w_hh, h0 = rand(2, 4, 3, 2), rand(2, 2, 2, scale=0.5), rand(2, 3, 2)
    for reverse in (False, True):
        assert torch.autograd.gradcheck(RNNRecurrence.apply, (xw, w_hh, h0, reverse))
