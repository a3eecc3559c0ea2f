"""Character language models: the TBPTT training loop, bits per character and the sampler."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rnn_course.language.corpus import Vocabulary
from rnn_course.language.models import CharLM
from rnn_course.language.sampling import sample, temperature_probs
from rnn_course.language.training import LMConfig, evaluate_bpc, train_char_lm

TEXT = "the cat sat on the mat. the dog sat on the log.\n" * 40


@pytest.fixture
def data() -> tuple[Vocabulary, torch.Tensor]:
    vocab = Vocabulary.from_text(TEXT)
    return vocab, vocab.encode(TEXT)


def test_evaluate_bpc_is_cross_entropy_in_bits(data) -> None:
    vocab, ids = data
    torch.manual_seed(0)
    model = CharLM("gru", len(vocab), 6)
    N = 4
    S = (len(ids) - 1) // N
    x, y = ids[: N * S].view(N, S), ids[1 : N * S + 1].view(N, S)
    with torch.no_grad():
        logits, _ = model(x)
    expected = F.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1)).item() / math.log(2)
    assert evaluate_bpc(model, ids, streams=N) == pytest.approx(expected, rel=1e-6)
    assert model.training  # restored


@pytest.mark.parametrize("batches", ["tbptt", "windows"])
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_training_lowers_validation_bpc(data, cell: str, batches: str) -> None:
    vocab, ids = data
    torch.manual_seed(0)
    model = CharLM(cell, len(vocab), 16)
    before = evaluate_bpc(model, ids)
    config = LMConfig(steps=40, batch_size=8, bptt=12, lr=3e-2, batches=batches, eval_every=20)
    history = train_char_lm(model, ids, ids, config)
    assert len(history.bpc) == 40 and len(history.grad_norm) == 40
    assert history.eval_steps == [20, 40]
    assert history.valid_bpc[-1] < before - 0.5


def test_training_is_reproducible_and_clipping_bounds_the_step(data) -> None:
    vocab, ids = data
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = CharLM("rnn", len(vocab), 8)
        runs.append(train_char_lm(model, ids, None, LMConfig(steps=10, batch_size=4, bptt=8)))
    assert runs[0].bpc == runs[1].bpc and runs[0].valid_bpc == []
    with pytest.raises(ValueError, match="clip_norm"):
        LMConfig(clip_norm=0.0)
    with pytest.raises(ValueError, match="optimizer"):
        LMConfig(optimizer="rmsprop")


def test_sampler_is_reproducible_per_seed(data) -> None:
    vocab, _ = data
    torch.manual_seed(0)
    model = CharLM("lstm", len(vocab), 8)
    a = sample(model, vocab, "the ", 50, temperature=1.0, seed=1)
    b = sample(model, vocab, "the ", 50, temperature=1.0, seed=1)
    c = sample(model, vocab, "the ", 50, temperature=1.0, seed=2)
    assert a == b and a != c
    assert a.startswith("the ") and len(a) == 54 and set(a) <= set(vocab.chars)


def test_sampler_continues_the_models_state(data) -> None:
    """A greedy continuation equals argmax decoding with a full re-run of the prefix."""
    vocab, _ = data
    torch.manual_seed(0)
    model = CharLM("gru", len(vocab), 8)
    text = sample(model, vocab, "the c", 6, temperature=1e-4, seed=0)
    prefix = "the c"
    with torch.no_grad():
        for _ in range(6):
            logits, _ = model(vocab.encode(prefix).unsqueeze(0))
            prefix += vocab.chars[int(logits[0, -1].argmax())]
    assert text == prefix


def test_temperature_probs() -> None:
    logits = torch.tensor([2.0, 1.0, 0.0])
    for tau in (0.5, 1.0, 3.0):
        assert temperature_probs(logits, tau).sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(temperature_probs(logits, 1.0), torch.softmax(logits, 0))
    assert temperature_probs(logits, 0.01)[0] > 0.999
    assert temperature_probs(logits, 100.0).max() < 0.34
    with pytest.raises(ValueError, match="temperature"):
        temperature_probs(logits, 0.0)
