"""A layer's recurrent state between calls, and cutting the graph behind it.

A state is what a recurrent layer returns and takes back: ``None`` (zeros), a tensor (tanh
RNN, GRU) or a tuple ``(h, c)`` (LSTM). Truncated backpropagation through time
(:mod:`rnn_course.bptt`), the gradient-flow measurements (:mod:`rnn_course.gradient_flow`)
and the language models' training (:mod:`rnn_course.language.training`) keep the value of
a state and drop its graph with :func:`detach_state`.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

State = Any  # a tensor, a tuple of tensors (LSTM) or None


def detach_state(state: State) -> State:
    """Cut the graph behind a recurrent state: ``None``, a tensor, or a tuple/list of them."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, tuple | list):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"state must be None, a tensor or a tuple of tensors, got {type(state)}")
