"""Models for the language experiments, built from the package's recurrent layers.

* :class:`TokenClassifier` reads a right-padded batch of word ids and classifies each
  sequence from the state at its last real word (the agreement task);
* :class:`CharLM` predicts the next character at every step and carries its state between
  calls (truncated BPTT, sampling);
* :func:`reverse_padded` and :class:`MaskedBidirectional` run a bidirectional layer on a
  right-padded batch so that the backward direction starts at each sequence's last real
  step, the result :func:`torch.nn.utils.rnn.pack_padded_sequence` gives with ``torch.nn``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnn_course.layers import GRU, LSTM, RNN
from rnn_course.validation import expect_choice, expect_positive_int

LAYERS: dict[str, type[nn.Module]] = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
GATES: dict[str, int] = {"rnn": 1, "lstm": 4, "gru": 3}


def lengths_from_padding(tokens: Tensor, pad: int = 0) -> Tensor:
    """The number of real tokens per row of a right-padded ``(N, T)`` id tensor."""
    return (tokens != pad).sum(dim=1)


def last_real_step(out: Tensor, lengths: Tensor) -> Tensor:
    """``out[n, lengths[n] - 1]`` for every row: ``(N, T, F)`` → ``(N, F)``."""
    index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, out.shape[2])
    return out.gather(1, index).squeeze(1)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse the first ``lengths[n]`` steps of every row and leave the padding in place.

    Applying it twice gives ``x`` back. This is TensorFlow's ``reverse_sequence``: a
    backward direction that reads ``reverse_padded(x)`` from left to right starts at each
    sequence's last real step instead of on padding.

    Shape:
        - x: ``(N, T, ...)``, batch first
        - lengths: ``(N,)`` int64, each in ``[0, T]``
        - output: like ``x``
    """
    N, T = x.shape[:2]
    steps = torch.arange(T, device=x.device).expand(N, T)  # (N, T)
    L = lengths.to(x.device).view(N, 1)
    index = torch.where(steps < L, L - 1 - steps, steps)  # (N, T)
    index = index.view(N, T, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


class MaskedBidirectional(nn.Module):
    """A bidirectional one-layer ``rnn``/``lstm``/``gru`` that respects each row's length.

    Two one-direction layers of the package: the forward one reads ``x``, the backward one
    reads :func:`reverse_padded` ``(x)``; the backward outputs are reversed back, and both
    are zeroed on padding. The parameters are named like one ``torch.nn`` bidirectional
    layer split in two: ``forward_layer.weight_ih_l0`` is ``weight_ih_l0`` and
    ``backward_layer.weight_ih_l0`` is ``weight_ih_l0_reverse``.

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        input_size: D.
        hidden_size: H per direction.

    Shape:
        - x: ``(N, T, D)``; lengths: ``(N,)`` int64 in ``[1, T]``
        - output: ``(N, T, 2H)``, zero on padding (as ``pad_packed_sequence`` returns it)
        - h_n: ``(2, N, H)``: the forward state at step ``lengths - 1`` and the backward
          state at step 0
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int) -> None:
        super().__init__()
        expect_choice("cell", cell, tuple(LAYERS))
        self.cell = cell
        self.hidden_size = hidden_size
        self.forward_layer = LAYERS[cell](input_size, hidden_size, batch_first=True)
        self.backward_layer = LAYERS[cell](input_size, hidden_size, batch_first=True)

    def load_torch_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load the state dict of a one-layer bidirectional ``torch.nn`` layer."""
        forward = {k: v for k, v in state.items() if not k.endswith("_reverse")}
        backward = {
            k.removesuffix("_reverse"): v for k, v in state.items() if k.endswith("_reverse")
        }
        self.forward_layer.load_state_dict(forward)
        self.backward_layer.load_state_dict(backward)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        mask = torch.arange(x.shape[1], device=x.device) < lengths.to(x.device).view(-1, 1)
        mask = mask.unsqueeze(2).to(x.dtype)  # (N, T, 1)
        out_f, _ = self.forward_layer(x)  # (N, T, H); steps past the length are discarded
        out_b, _ = self.backward_layer(reverse_padded(x, lengths))  # (N, T, H), reversed time
        out_b = reverse_padded(out_b, lengths)
        out = torch.cat([out_f, out_b], dim=2) * mask  # (N, T, 2H)
        h_n = torch.stack([last_real_step(out_f, lengths), out_b[:, 0]])  # (2, N, H)
        return out, h_n


class TokenClassifier(nn.Module):
    """Embedding, a recurrent stack of the package and a linear readout at the last real word.

    Args:
        cell: ``"rnn"`` (tanh), ``"lstm"`` or ``"gru"``.
        vocab_size: V, ids ``0 … V-1`` with 0 the padding.
        embed_size: E, features per word.
        hidden_size: H.
        num_classes: K.
        num_layers: stacked layers.
        skip: ``None`` or ``"residual"`` (any of the layer's ``skip`` options).

    Shape:
        - tokens: ``(N, T)`` int64, right-padded with 0
        - output: ``(N, K)`` logits, read from the top layer at step ``length - 1`` (the
          steps after it only ever see padding, and a left-to-right layer's earlier states
          do not depend on them, so no mask is needed)
    """

    def __init__(
        self,
        cell: str,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        num_classes: int = 2,
        *,
        num_layers: int = 1,
        skip: str | None = None,
    ) -> None:
        super().__init__()
        expect_choice("cell", cell, tuple(LAYERS))
        for name, value in (
            ("vocab_size", vocab_size),
            ("embed_size", embed_size),
            ("hidden_size", hidden_size),
            ("num_classes", num_classes),
        ):
            expect_positive_int(name, value)
        self.embed = nn.Embedding(vocab_size, embed_size, padding_idx=0)
        kwargs: dict[str, Any] = {} if skip is None else {"skip": skip}
        self.rnn = LAYERS[cell](
            embed_size, hidden_size, num_layers=num_layers, batch_first=True, **kwargs
        )
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        lengths = lengths_from_padding(tokens)  # (N,)
        out, _ = self.rnn(self.embed(tokens))  # (N, T, H)
        return self.head(last_real_step(out, lengths))  # (N, K)


class CharLM(nn.Module):
    """A character language model: one-hot input, a recurrent layer, a softmax readout.

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        vocab_size: V characters.
        hidden_size: H per direction.
        num_layers: stacked layers.
        bidirectional: read the sequence both ways (a model that cannot generate: see the
            chapter "Language, measured").

    Shape:
        - ids: ``(N, T)`` int64
        - state: the layer's ``hx`` (``None`` for zeros), as returned by the previous call
        - output: logits ``(N, T, V)`` for the character after each position, and the state
    """

    def __init__(
        self,
        cell: str,
        vocab_size: int,
        hidden_size: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        expect_choice("cell", cell, tuple(LAYERS))
        expect_positive_int("vocab_size", vocab_size)
        expect_positive_int("hidden_size", hidden_size)
        self.cell = cell
        self.vocab_size = vocab_size
        self.rnn = LAYERS[cell](
            vocab_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
        )
        self.head = nn.Linear((2 if bidirectional else 1) * hidden_size, vocab_size)

    def forward(self, ids: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        x = F.one_hot(ids, self.vocab_size).to(self.head.weight.dtype)  # (N, T, V)
        out, state = self.rnn(x, state)  # (N, T, D·H)
        return self.head(out), state  # (N, T, V)


def char_lm_parameters(cell: str, vocab_size: int, hidden_size: int) -> int:
    """Parameters of a one-layer unidirectional :class:`CharLM` (without building it)."""
    G, V, H = GATES[cell], vocab_size, hidden_size
    return G * H * (V + H + 2) + (H + 1) * V


def hidden_size_for_budget(cell: str, vocab_size: int, budget: int) -> int:
    """The largest H whose one-layer :class:`CharLM` has at most ``budget`` parameters."""
    expect_choice("cell", cell, tuple(GATES))
    H = 1
    if char_lm_parameters(cell, vocab_size, H) > budget:
        raise ValueError(f"budget {budget} is below the smallest {cell} model")
    while char_lm_parameters(cell, vocab_size, H + 1) <= budget:
        H += 1
    return H
