"""The context in which the hand-written time loops run: no autograd, no cyclic collector.

:class:`rnn_course.lstm_loop.LSTMLoop` and :class:`rnn_course.gru_loop.GRULoop` read and
write preallocated buffers through per-step views, made once per call with one
:meth:`torch.Tensor.unbind` per buffer (the cheapest way to make a view: about half a
microsecond each). A call keeps about ``10 T`` views alive at once forward and ``6 T``
backward. Python's cyclic garbage collector counts them as new container objects: beyond
its threshold of 700 they set off collections of the young generation during the call,
and the survivors move on until, every few hundred calls, a full collection of every
object in the process runs. Measured as means over alternating blocks of 50 calls (1000
calls each way, one thread, 200,000 other objects alive), the pause took the LSTM's
forward and backward pass at T=100, N=16, H=64 to 0.977 of the time without it (one
young collection per call and one full collection per 1000 calls without the pause; none
with it), at T=200 to 0.965 (three per call, a full one per 250 calls), the GRU's at
T=100 to 0.986, and made no difference at T=50, N=32 (1.003): the share grows with the
number of steps.

The views form no reference cycles (reference counting frees every one of them when the
call returns), so :func:`loop_context` pauses the cyclic collector while a loop runs, and
enters :func:`torch.inference_mode`, so that the loop's operations do no autograd
bookkeeping. The pause is shared by all threads (the collector is one per process, and on
CUDA autograd runs the backward passes on threads of its own): a counter under a lock
records how many loops are running; the first one in notes whether the collector was
enabled and switches it off, and the last one out switches it on again only if it was
enabled before. A program that switched the collector off with :func:`gc.disable` keeps it
off. A program that calls :func:`gc.disable` from another thread *while* a loop runs, or
that wants the collector untouched, turns the pause off with :data:`PAUSE_COLLECTOR`
(``rnn_course.loop_context.PAUSE_COLLECTOR = False``) or per call with
``loop_context(pause_collector=False)``; the loops then give the same results, a little
more slowly on average.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

# whether the hand-written loops pause the cyclic garbage collector while they run
PAUSE_COLLECTOR = True


class CollectorPause:
    """A pause of the cyclic collector that any number of threads may hold at once.

    :meth:`hold` is re-entrant across threads: the collector is off while at least one
    holder is inside, and is switched on again by the last one out, only if it was on
    when the first one came in.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._resume = False  # whether the last one out switches the collector back on

    @property
    def holders(self) -> int:
        """How many pauses are held now."""
        with self._lock:
            return self._holders

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the collector off for the body (see the class)."""
        with self._lock:
            if self._holders == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0 and self._resume:
                    gc.enable()


# the collector is one per process, and so is its pause
COLLECTOR_PAUSE = CollectorPause()


@contextmanager
def loop_context(pause_collector: bool | None = None) -> Iterator[None]:
    """Run the body in inference mode, with the cyclic collector paused (see the module).

    Args:
        pause_collector: whether to pause the collector; ``None`` (default) follows
            :data:`PAUSE_COLLECTOR`.
    """
    pause = PAUSE_COLLECTOR if pause_collector is None else pause_collector
    # a compiled loop makes no Python views at run time
    if not pause or torch.compiler.is_compiling():
        with torch.inference_mode():
            yield
        return
    with COLLECTOR_PAUSE.hold(), torch.inference_mode():
        yield
