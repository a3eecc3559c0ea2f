"""Synthetic sequence tasks with long-range or right-hand dependencies, small enough for a CPU.

Every task draws from its own :class:`torch.Generator` seeded with ``seed`` (on the CPU,
then moves the result to ``device``), so the same seed gives identical tensors on every
device and a different seed gives different ones. All tensors are batch-first.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from rnn_course.validation import expect_positive_int

# the label that torch.nn.functional.cross_entropy skips by default
IGNORE_INDEX = -100


class Batch(NamedTuple):
    """A batch of a task: ``inputs (N, T, ·)`` float and ``targets`` (shape per task)."""

    inputs: Tensor
    targets: Tensor


def _generator(seed: int) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _device(device: torch.device | str | None) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def adding_problem(
    batch_size: int, seq_len: int, *, seed: int, device: torch.device | str | None = None
) -> Batch:
    """The adding problem (Hochreiter & Schmidhuber 1997): add the two marked numbers.

    Channel 0 holds values drawn uniformly from [0, 1); channel 1 is 1 at exactly two
    steps, one in the first half ``[0, T//2)`` and one in the second half ``[T//2, T)``,
    else 0. The target is the sum of the two marked values; always predicting 1 gives a
    mean squared error of 1/6.

    Returns:
        ``Batch(inputs (N, T, 2) float32, targets (N, 1) float32)``.
    """
    N = expect_positive_int("batch_size", batch_size)
    T = expect_positive_int("seq_len", seq_len)
    if T < 2:
        raise ValueError(f"seq_len must be at least 2 (one marker per half), got {T}")
    gen = _generator(seed)
    values = torch.rand(N, T, generator=gen)
    half = T // 2
    first = torch.randint(0, half, (N,), generator=gen)
    second = torch.randint(half, T, (N,), generator=gen)
    markers = torch.zeros(N, T)
    rows = torch.arange(N)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    inputs = torch.stack([values, markers], dim=2)  # (N, T, 2)
    targets = (values[rows, first] + values[rows, second])[:, None]  # (N, 1)
    device = _device(device)
    return Batch(inputs.to(device), targets.to(device))


def copy_task(
    batch_size: int,
    delay: int,
    *,
    pattern_len: int = 5,
    num_symbols: int = 8,
    seed: int,
    device: torch.device | str | None = None,
) -> Batch:
    """Memorize a pattern, wait, reproduce it after a go signal.

    A sequence has ``T = 2 * pattern_len + delay + 1`` steps:

    ========================================  ===========================  ================
    steps                                     input                        target
    ========================================  ===========================  ================
    ``[0, P)``                                the pattern's symbols         -100
    ``[P, P + delay)``                        blank                         -100
    ``P + delay``                             go signal                     -100
    ``[P + delay + 1, T)``                    blank                         the pattern
    ========================================  ===========================  ================

    Inputs are one-hot over ``num_symbols + 2`` channels: the symbols ``0..S-1``, then
    blank (channel ``S``) and go (channel ``S + 1``). Targets are symbol indices, with
    -100 (ignored by ``cross_entropy``) where nothing is to be predicted.

    Returns:
        ``Batch(inputs (N, T, S + 2) float32, targets (N, T) int64)``.
    """
    N = expect_positive_int("batch_size", batch_size)
    if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
        raise ValueError(f"delay must be a non-negative int, got {delay!r}")
    P = expect_positive_int("pattern_len", pattern_len)
    S = expect_positive_int("num_symbols", num_symbols)
    gen = _generator(seed)
    T = 2 * P + delay + 1
    pattern = torch.randint(0, S, (N, P), generator=gen)
    codes = torch.full((N, T), S)  # blank everywhere
    codes[:, :P] = pattern
    codes[:, P + delay] = S + 1  # go
    inputs = torch.nn.functional.one_hot(codes, S + 2).float()  # (N, T, S + 2)
    targets = torch.full((N, T), IGNORE_INDEX)
    targets[:, P + delay + 1 :] = pattern
    device = _device(device)
    return Batch(inputs.to(device), targets.to(device))


def memory_task(
    batch_size: int,
    seq_len: int,
    *,
    num_classes: int = 4,
    noise: float = 0.5,
    seed: int,
    device: torch.device | str | None = None,
) -> Batch:
    """Report at the last step the class shown at the first step.

    Inputs have ``C + 1`` channels (``C = num_classes``). The first step,
    :math:`\\mathbf{x}^{(1)}` = ``inputs[:, 0]``, is the one-hot code of the class in channels
    ``0..C-1`` plus a 1 in channel ``C``, the "remember this" flag. Steps ``2..T`` are
    distractors: Gaussian noise of standard deviation ``noise`` on the class channels, flag
    0, independent of the label. A model must keep one symbol for
    ``T − 1`` steps while the noise keeps pushing its state; chance accuracy is ``1 / C``.

    Returns:
        ``Batch(inputs (N, T, C + 1) float32, targets (N,) int64)``.
    """
    N = expect_positive_int("batch_size", batch_size)
    T = expect_positive_int("seq_len", seq_len)
    C = expect_positive_int("num_classes", num_classes)
    if C < 2:
        raise ValueError(f"num_classes must be at least 2, got {C}")
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not noise >= 0:
        raise ValueError(f"noise must be a non-negative number, got {noise!r}")
    gen = _generator(seed)
    labels = torch.randint(0, C, (N,), generator=gen)
    inputs = torch.zeros(N, T, C + 1)
    # x^(2), ..., x^(T): Gaussian noise on the class channels, flag off
    inputs[:, 1:, :C] = noise * torch.randn(N, T - 1, C, generator=gen)
    # x^(1): the class, one-hot, and the flag
    inputs[:, 0, :C] = torch.nn.functional.one_hot(labels, C).float()
    inputs[:, 0, C] = 1.0
    device = _device(device)
    return Batch(inputs.to(device), labels.to(device))


def right_context_labels(tokens: Tensor, vocab_size: int) -> Tensor:
    """The labels of :func:`right_context_task` for token ids ``(N, T)``, shape ``(N, T)``.

    A token's polarity is ``token mod 2``; tokens in the upper half of the vocabulary
    (``token >= V/2``) are *flippers*. The label is the polarity, flipped when the next
    token is a flipper; the last token has no right neighbour and keeps its polarity.
    """
    polarity = tokens % 2
    flip = torch.zeros_like(tokens)
    flip[:, :-1] = (tokens[:, 1:] >= vocab_size // 2).long()
    # label of x^(t) = polarity(x^(t)) XOR flipper(x^(t+1))
    return polarity ^ flip


def right_context_ceiling(seq_len: int) -> float:
    """The best expected accuracy of a left-to-right tagger on :func:`right_context_task`.

    At every step ``t < T`` the next token is uniform and independent of everything read so
    far, so whether it flips the label is a fair coin: no causal model beats 1/2 there. At
    the last step the label is determined. Averaged over positions: ``(T + 1) / (2T)``.
    """
    T = expect_positive_int("seq_len", seq_len)
    return (T + 1) / (2 * T)


def right_context_task(
    batch_size: int,
    seq_len: int,
    *,
    vocab_size: int = 8,
    seed: int,
    device: torch.device | str | None = None,
) -> Batch:
    """Per-token tagging where the next token can flip a token's label.

    Like "terribly" in "terribly exciting", a word's polarity (``token mod 2``) is flipped
    when the following token is a flipper (``token >= vocab_size / 2``); see
    :func:`right_context_labels`. Tokens are uniform over the vocabulary, so a
    unidirectional RNN cannot exceed :func:`right_context_ceiling` ``= (T+1)/(2T)`` in
    expectation, while a bidirectional one sees the next token and can reach 100 %.

    Returns:
        ``Batch(inputs (N, T, V) one-hot float32, targets (N, T) int64 in {0, 1})``.
    """
    N = expect_positive_int("batch_size", batch_size)
    T = expect_positive_int("seq_len", seq_len)
    V = expect_positive_int("vocab_size", vocab_size)
    if V < 4 or V % 4 != 0:
        # a multiple of 4 gives both halves of the vocabulary both polarities equally often
        raise ValueError(f"vocab_size must be a positive multiple of 4, got {V}")
    gen = _generator(seed)
    tokens = torch.randint(0, V, (N, T), generator=gen)
    inputs = torch.nn.functional.one_hot(tokens, V).float()
    targets = right_context_labels(tokens, V)
    device = _device(device)
    return Batch(inputs.to(device), targets.to(device))
