"""Sampling text from a character language model, one character at a time."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnn_course.language.corpus import Vocabulary
from rnn_course.validation import expect_positive_int


def temperature_probs(logits: Tensor, temperature: float) -> Tensor:
    """``softmax(logits / temperature)`` over the last axis.

    A temperature below 1 sharpens the distribution towards the most likely character, 1
    leaves it as the model predicts it, above 1 flattens it towards uniform.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    return torch.softmax(logits / temperature, dim=-1)


@torch.no_grad()
def sample(
    model: nn.Module,
    vocab: Vocabulary,
    prompt: str,
    length: int,
    *,
    temperature: float = 1.0,
    seed: int = 0,
) -> str:
    """Continue ``prompt`` by ``length`` characters drawn from ``model``.

    The model reads the prompt, then each drawn character is fed back with the state it
    returned (``model(ids (1, T), state) -> (logits (1, T, V), state)``, as
    :class:`~rnn_course.language.models.CharLM`). Draws come from a
    :class:`torch.Generator` seeded with ``seed``: the same seed gives the same text.

    Returns:
        ``prompt`` followed by the ``length`` sampled characters.
    """
    expect_positive_int("length", length)
    if not prompt:
        raise ValueError("prompt must contain at least one character")
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        logits, state = model(vocab.encode(prompt).unsqueeze(0))  # (1, P, V)
        drawn: list[int] = []
        for _ in range(length):
            probs = temperature_probs(logits[0, -1], temperature)  # (V,)
            next_id = int(torch.multinomial(probs, 1, generator=gen))
            drawn.append(next_id)
            logits, state = model(torch.tensor([[next_id]]), state)  # (1, 1, V)
    finally:
        model.train(was_training)
    return prompt + vocab.decode(drawn)
