"""Which rows of a batch each time step runs, and in which order a direction visits them.

A padded batch of ``N`` sequences runs all ``N`` rows at every one of its ``T`` steps. A
packed batch (:class:`torch.nn.utils.rnn.PackedSequence`) holds sequences sorted by
decreasing length and runs only the first ``b_t`` rows at step ``t``, with
``b_0 ≥ b_1 ≥ … ≥ b_{T-1}``: sequence ``n`` takes part in step ``t`` while ``n < b_t``.
Both are described by their batch sizes, ``(N,) * T`` for a padded batch, and stored the
same way: the rows of all steps one after the other in time order, so that row ``n`` of
step ``t`` sits at ``offsets[t] + n`` of a ``(P, ·)`` buffer, ``P = Σ_t b_t``. A padded
``(T, N, ·)`` tensor is such a buffer once viewed as ``(T·N, ·)``.

A sequence's state never moves: the state of row ``n`` after step ``t`` is row ``n`` of
step ``t``. The forward direction (``reverse=False``) reads the previous step's first
``b_t`` rows and leaves the others, whose sequences have ended, as their final states. The
reverse direction visits the steps from last to first; at step ``t`` it continues the
``b_{t+1}`` rows that ran at step ``t + 1`` and starts rows ``b_{t+1} … b_t − 1`` from the
initial state. Padded steps (steps past a sequence's end) therefore neither change its
state nor receive a gradient: they are never run.

:class:`Schedule` cuts every step into **segments**, runs of rows that share the step
their state comes from (``prev``, or the initial state) and the step that continues them
(``next``, or none when the state is final). A padded batch has one segment per step, so
that for it the hand-written loops (:mod:`rnn_course.lstm_loop`,
:mod:`rnn_course.gru_loop`) are plain loops over the steps; a packed batch adds one
segment per change of batch size. :func:`run_steps` runs a cell over a schedule with
autograd, for the layers without a hand-written loop.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import torch
from torch import Tensor


class Segment(NamedTuple):
    """Rows ``r0 … r1 − 1`` of step ``step``; ``prev``/``next`` are steps or ``None``."""

    step: int
    r0: int
    r1: int
    prev: int | None  # the step whose state these rows read; None: the initial state
    next: int | None  # the step that continues these rows; None: their state is final


class Block(NamedTuple):
    """Rows ``rows`` of a buffer and the rows ``source`` of their previous states.

    ``initial`` says whether the previous states are rows of the initial state (else rows
    of the same buffer).
    """

    rows: slice
    initial: bool
    source: slice


@dataclass(frozen=True)
class Schedule:
    """The steps of one direction over a padded or packed batch (see the module).

    Args:
        batch_sizes: ``b_t`` for every step, non-increasing and positive.
        reverse: whether the steps are visited from last to first.
    """

    batch_sizes: tuple[int, ...]
    reverse: bool = False

    @classmethod
    def padded(cls, T: int, N: int, reverse: bool = False) -> Schedule:
        """``T`` steps of all ``N`` rows."""
        return cls((N,) * T, reverse)

    @property
    def num_steps(self) -> int:
        return len(self.batch_sizes)

    @property
    def batch(self) -> int:
        """``N``, the number of sequences (the rows of the first step)."""
        return self.batch_sizes[0]

    @cached_property
    def is_padded(self) -> bool:
        """Whether every step runs every row."""
        return self.batch_sizes[-1] == self.batch_sizes[0]

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        """Where each step's rows start in a buffer, and the buffer's length ``P`` last."""
        out = [0]
        for b in self.batch_sizes:
            out.append(out[-1] + b)
        return tuple(out)

    @property
    def order(self) -> range:
        """The steps in the order this direction visits them."""
        T = self.num_steps
        return range(T - 1, -1, -1) if self.reverse else range(T)

    @cached_property
    def _columns(self) -> tuple[tuple[int, ...], ...]:
        """The segments as five tuples: step, r0, r1, prev and next (−1 for none).

        Five objects however many segments, so that a schedule kept for the backward pass
        adds next to nothing to the cyclic collector's count (see
        :mod:`rnn_course.loop_context`).
        """
        b, T = self.batch_sizes, self.num_steps
        columns: tuple[list[int], ...] = ([], [], [], [], [])
        for s in self.order:
            p, n = (s + 1, s - 1) if self.reverse else (s - 1, s + 1)
            b_prev = b[p] if 0 <= p < T else 0
            b_next = b[n] if 0 <= n < T else 0
            cuts = sorted({0, b[s], min(b_prev, b[s]), min(b_next, b[s])})
            for r0, r1 in itertools.pairwise(cuts):
                row = (s, r0, r1, p if r1 <= b_prev else -1, n if r1 <= b_next else -1)
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
        return tuple(tuple(column) for column in columns)

    @property
    def segments(self) -> list[Segment]:
        """The segments in the order the forward pass runs them (see the module)."""
        return [self.segment(k) for k in range(len(self._columns[0]))]

    def segment(self, k: int) -> Segment:
        """Segment ``k`` in the order the forward pass runs them."""
        s, r0, r1, p, n = (column[k] for column in self._columns)
        return Segment(s, r0, r1, None if p < 0 else p, None if n < 0 else n)

    # --- views of buffers, one per segment ----------------------------------------------

    def _step_views(self, buffer: Tensor) -> tuple[Tensor, ...]:
        """One view per step, time order: one call for all steps (``unbind`` makes a view in
        about half the time ``split`` takes)."""
        if self.is_padded:
            return buffer.view(self.num_steps, self.batch, *buffer.shape[1:]).unbind(0)
        return buffer.split(self.batch_sizes)

    def _rows(self, steps: Sequence[Tensor], s: int, r0: int, r1: int) -> Tensor:
        view = steps[s]
        return view if r0 == 0 and r1 == self.batch_sizes[s] else view[r0:r1]

    def _segment_views(self, steps: Sequence[Tensor]) -> list[Tensor]:
        if self.is_padded:
            return list(steps[::-1] if self.reverse else steps)
        step, r0, r1 = self._columns[:3]
        return [self._rows(steps, *seg) for seg in zip(step, r0, r1, strict=True)]

    def views(self, buffer: Tensor) -> list[Tensor]:
        """Each segment's rows of ``buffer (P, ...)``, in the forward pass's order."""
        return self._segment_views(self._step_views(buffer))

    def with_prev(self, buffer: Tensor, initial: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """:meth:`views` of ``buffer`` and, for each segment, the rows its states come from.

        Those are rows of ``buffer`` at the previous step, or rows of ``initial (N, ...)``.
        """
        steps = self._step_views(buffer)
        own = self._segment_views(steps)
        if self.is_padded:
            return own, [initial, *own[:-1]]
        N = self.batch
        _, r0s, r1s, prevs, _ = self._columns
        prev = [
            (initial if r1 - r0 == N else initial[r0:r1]) if p < 0 else self._rows(steps, p, r0, r1)
            for r0, r1, p in zip(r0s, r1s, prevs, strict=True)
        ]
        return own, prev

    def with_next(
        self, buffer: Tensor, final: Tensor | None = None
    ) -> tuple[list[Tensor], list[Tensor | None]]:
        """:meth:`views` of ``buffer`` and, for each segment, its rows at the next step.

        A segment whose states are final gets its rows of ``final (N, ...)``, or ``None``.
        """
        steps = self._step_views(buffer)
        own = self._segment_views(steps)
        if self.is_padded:
            return own, [*own[1:], final]
        N = self.batch
        _, r0s, r1s, _, nexts = self._columns
        following = [
            (None if final is None else final if r1 - r0 == N else final[r0:r1])
            if n < 0
            else self._rows(steps, n, r0, r1)
            for r0, r1, n in zip(r0s, r1s, nexts, strict=True)
        ]
        return own, following

    def with_final(self, final: Tensor) -> list[Tensor | None]:
        """For each segment, its rows of ``final (N, ...)`` if its states are final, else
        ``None``."""
        if self.is_padded:
            return [*([None] * (self.num_steps - 1)), final]
        N = self.batch
        _, r0s, r1s, _, nexts = self._columns
        return [
            (final if r1 - r0 == N else final[r0:r1]) if n < 0 else None
            for r0, r1, n in zip(r0s, r1s, nexts, strict=True)
        ]

    # --- where the states start and end ---------------------------------------------------

    @cached_property
    def final_segments(self) -> tuple[int, ...]:
        """The indices of the segments that hold final states, in row order."""
        if self.is_padded:  # the last step processed
            return (self.num_steps - 1,)
        _, r0s, _, _, nexts = self._columns
        return tuple(sorted((k for k, n in enumerate(nexts) if n < 0), key=r0s.__getitem__))

    @cached_property
    def initial_segments(self) -> tuple[int, ...]:
        """The indices of the segments that read the initial state."""
        if self.is_padded:  # the first step processed
            return (0,)
        return tuple(k for k, p in enumerate(self._columns[3]) if p < 0)

    def rows(self, k: int) -> slice:
        """Where segment ``k``'s rows sit in a ``(P, ...)`` buffer."""
        if self.is_padded:
            N, s = self.batch, self.order[k]
            return slice(s * N, (s + 1) * N)
        s, r0, r1 = (column[k] for column in self._columns[:3])
        return slice(self.offsets[s] + r0, self.offsets[s] + r1)

    def _row_range(self, k: int) -> slice:
        """The sequences (rows of a step) that segment ``k`` runs."""
        if self.is_padded:
            return slice(0, self.batch)
        return slice(self._columns[1][k], self._columns[2][k])

    def final(self, buffer: Tensor) -> Tensor:
        """The final state of every sequence ``(N, ·)`` from ``buffer (P, ·)``, as a new tensor."""
        pieces = [buffer[self.rows(k)] for k in self.final_segments]
        return pieces[0].clone() if len(pieces) == 1 else torch.cat(pieces)

    def add_final(self, buffer: Tensor, value: Tensor) -> None:
        """Add ``value (N, ...)``, one row per sequence, to the rows of ``buffer`` that hold
        final states (the gradient of the final state enters the backward pass there)."""
        for k in self.final_segments:
            buffer[self.rows(k)].add_(value[self._row_range(k)])

    def initial(self, value: Callable[[slice], Tensor], like: Tensor) -> Tensor:
        """One row per sequence, from the rows of the segments that read the initial state.

        ``value(rows)`` gives the rows ``rows`` of a ``(P, ...)`` buffer's worth of values
        (for example the gradient of the states those rows start from); ``like (N, ...)``
        gives the result's shape when it is assembled from several segments.
        """
        segments = self.initial_segments
        if len(segments) == 1 and self.is_padded:  # every row starts at the first step
            return value(self.rows(segments[0]))
        out = torch.empty_like(like)
        for k in segments:
            out[self._row_range(k)] = value(self.rows(k))
        return out

    def products_with_prev(self, d: Tensor, states: Tensor, initial: Tensor) -> Tensor:
        """``Σ_s d_sᵀ h_{s-1}`` over all rows, with ``h_{s-1}`` each row's previous state.

        ``d (P, G)``, ``states (P, H)`` (the state after each row's step), ``initial (N, H)``;
        one matrix product per block (:attr:`blocks`): two for a padded batch.
        """
        total: Tensor | None = None
        for block in self.blocks:
            dt, prev = d[block.rows].t(), (initial if block.initial else states)[block.source]
            total = dt @ prev if total is None else total.addmm_(dt, prev)
        if total is None:
            raise ValueError("a schedule has at least one step")
        return total

    @cached_property
    def blocks(self) -> tuple[Block, ...]:
        """Every row of a buffer with the rows of its previous states, in few large blocks.

        Consecutive segments whose rows and previous rows both continue each other are
        merged, so that a padded batch has two blocks: the first processed step (initial
        states) and all the others (the neighbouring step's rows).
        """
        parts = []
        if self.is_padded:
            N, P = self.batch, self.offsets[-1]
            first = self.order[0] * N  # the first processed step reads the initial state
            parts.append((first, N, True, 0))
            if P > N:
                shift = N if self.reverse else -N  # the previous step's rows
                start = 0 if self.reverse else N
                parts.append((start, P - N, False, start + shift))
        else:
            for s, r0, r1, p, _ in zip(*self._columns, strict=True):
                start = self.offsets[s] + r0
                source = r0 if p < 0 else self.offsets[p] + r0
                parts.append((start, r1 - r0, p < 0, source))
        parts.sort()
        merged: list[list[int | bool]] = []
        for start, rows, initial, source in parts:
            if merged:
                m_start, m_rows, m_initial, m_source = merged[-1]
                if (
                    m_start + m_rows == start
                    and m_initial == initial
                    and m_source + m_rows == source
                ):
                    merged[-1][1] = m_rows + rows
                    continue
            merged.append([start, rows, initial, source])
        return tuple(
            Block(slice(start, start + rows), bool(initial), slice(source, source + rows))
            for start, rows, initial, source in merged
        )


State = tuple[Tensor, ...]


def run_steps(
    cell: Callable[[Tensor, State], State], xw: Tensor, state: State, schedule: Schedule
) -> tuple[Tensor, State]:
    """Run ``state = cell(xw_t, state)`` over ``schedule`` with autograd.

    ``xw (P, ·)`` holds every step's rows in time order, ``state`` the initial state
    (tensors of ``N`` rows), and ``cell`` returns the new state of the rows it is given,
    whose first tensor is the output. Returns the outputs ``(P, H)`` in time order and the
    final state of every row. Only the rows a step runs are passed to ``cell``: the state
    of a sequence that has ended is kept (forward direction), and a sequence that has not
    started yet keeps its initial state until its last step comes (reverse direction).
    """
    sizes = schedule.batch_sizes
    steps = xw.split(sizes)  # one autograd node for all steps, time order
    outs: list[Tensor] = [xw] * len(sizes)  # every entry is replaced
    order = schedule.order
    first = sizes[order[0]]
    live = tuple(s if s.shape[0] == first else s[:first] for s in state)
    ended: list[State] = []  # the states of rows that ended, forward direction
    for t in order:
        b, rows = sizes[t], live[0].shape[0]
        if b < rows:  # rows b … rows − 1 ended at the previous step
            ended.append(tuple(s[b:] for s in live))
            live = tuple(s[:b] for s in live)
        elif b > rows:  # rows rows … b − 1 start here (reverse direction)
            live = tuple(torch.cat([s, s0[rows:b]]) for s, s0 in zip(live, state, strict=True))
        live = cell(steps[t], live)
        outs[t] = live[0]
    final = tuple(
        torch.cat([s, *reversed(pieces)]) if ended else s
        for s, *pieces in zip(live, *ended, strict=True)
    )
    return torch.cat(outs), final
