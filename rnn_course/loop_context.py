"""The context in which the hand-written time loops run: no autograd, no cyclic collector.

:class:`rnn_course.lstm_loop.LSTMLoop` and :class:`rnn_course.gru_loop.GRULoop` read and
write preallocated buffers through per-step views, made once per call with
:meth:`torch.Tensor.unbind` (the cheapest way to make a view: about a microsecond each).
A call keeps several views per time step alive at once, about ``8 T`` forward and as many
backward. Python's cyclic garbage collector counts them as new container objects: they
survive its young generations and, every few dozen calls, set off a full collection of
every object in the process, which with PyTorch loaded takes a tenth of a second or more.
At T=100, N=16, H=64 that cost, amortized, about a quarter of the LSTM's forward pass.

The views form no reference cycles (reference counting frees every one of them when the
call returns), so :func:`loop_context` pauses the cyclic collector for the duration of the
loop and resumes it only if it was running before. It also enters
:func:`torch.inference_mode`, so that the loop's operations do no autograd bookkeeping.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor


@contextmanager
def loop_context() -> Iterator[None]:
    """Run the body in inference mode with the cyclic garbage collector paused."""
    if torch.compiler.is_compiling():  # a compiled loop makes no Python views at run time
        with torch.inference_mode():
            yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with torch.inference_mode():
            yield
    finally:
        if was_enabled:
            gc.enable()


def step_views(buffer: Tensor, reverse: bool) -> tuple[Tensor, ...]:
    """The per-step views of ``buffer (T, ...)``, stored in time order, in processing order.

    One :meth:`torch.Tensor.unbind` for all ``T`` steps; ``reverse`` lists them last first.
    """
    steps = buffer.unbind(0)
    return steps[::-1] if reverse else steps
