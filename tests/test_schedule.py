"""Schedules: which rows each step runs, where their states come from and go to."""

from __future__ import annotations

import pytest
import torch

from rnn_course.schedule import Schedule, Segment, run_steps

# a packed batch of four sequences of lengths 4, 3, 3 and 1
SIZES = (4, 3, 3, 1)


def positions(schedule: Schedule) -> torch.Tensor:
    """A (P, 1) buffer whose value is each row's own position."""
    return torch.arange(schedule.offsets[-1], dtype=torch.float64).unsqueeze(1)


def where(sequence: int, step: int, schedule: Schedule) -> int:
    return schedule.offsets[step] + sequence


def test_a_padded_batch_has_one_segment_per_step():
    schedule = Schedule.padded(3, 2)
    assert schedule.is_padded and schedule.batch == 2 and schedule.offsets == (0, 2, 4, 6)
    assert schedule.segments == [
        Segment(0, 0, 2, None, 1),
        Segment(1, 0, 2, 0, 2),
        Segment(2, 0, 2, 1, None),
    ]
    backward = Schedule.padded(3, 2, reverse=True)
    assert backward.segments == [
        Segment(2, 0, 2, None, 1),
        Segment(1, 0, 2, 2, 0),
        Segment(0, 0, 2, 1, None),
    ]


def test_packed_segments_split_where_the_batch_size_changes():
    forward = Schedule(SIZES)
    # forward: a step's rows are cut where the next step has fewer (the rest are final)
    assert forward.segments == [
        Segment(0, 0, 3, None, 1),
        Segment(0, 3, 4, None, None),
        Segment(1, 0, 3, 0, 2),
        Segment(2, 0, 1, 1, 3),
        Segment(2, 1, 3, 1, None),
        Segment(3, 0, 1, 2, None),
    ]
    # reverse: a step's rows are cut where the previous step had fewer (the rest start)
    assert Schedule(SIZES, reverse=True).segments == [
        Segment(3, 0, 1, None, 2),
        Segment(2, 0, 1, 3, 1),
        Segment(2, 1, 3, None, 1),
        Segment(1, 0, 3, 2, 0),
        Segment(0, 0, 3, 1, None),
        Segment(0, 3, 4, None, None),
    ]


@pytest.mark.parametrize("sizes", [SIZES, (2, 2, 2), (3,), (5, 1, 1, 1)])
@pytest.mark.parametrize("reverse", [False, True])
def test_views_previous_and_next_rows_follow_each_sequence(sizes, reverse):
    """For every segment and row: the previous rows are the same sequence one step back in
    the visiting order (or its initial state), the next rows one step on (or final)."""
    schedule = Schedule(sizes, reverse)
    buffer = positions(schedule)
    initial = -1 - torch.arange(schedule.batch, dtype=torch.float64).unsqueeze(1)
    final = 100 + torch.arange(schedule.batch, dtype=torch.float64).unsqueeze(1)
    own, prev = schedule.with_prev(buffer, initial)
    own_again, following = schedule.with_next(buffer, final)
    assert all(torch.equal(a, b) for a, b in zip(own, own_again, strict=True))
    T, step = len(sizes), -1 if reverse else 1
    visited = []
    for k, (s, r0, r1, _, _) in enumerate(schedule.segments):
        for j, n in enumerate(range(r0, r1)):
            visited.append((s, n))
            assert own[k][j, 0] == where(n, s, schedule)
            before, after = s - step, s + step
            runs = [t for t in range(T) if n < sizes[t]]  # the steps sequence n has
            want_prev = where(n, before, schedule) if before in runs else -1 - n
            want_next = where(n, after, schedule) if after in runs else 100 + n
            assert prev[k][j, 0] == want_prev
            assert following[k][j, 0] == want_next
    assert sorted(visited) == sorted((s, n) for s in range(T) for n in range(sizes[s]))


@pytest.mark.parametrize("sizes", [SIZES, (2, 2, 2), (3,), (5, 1, 1, 1)])
@pytest.mark.parametrize("reverse", [False, True])
def test_blocks_pair_every_row_with_its_previous_state(sizes, reverse):
    schedule = Schedule(sizes, reverse)
    buffer = positions(schedule)
    initial = -1 - torch.arange(schedule.batch, dtype=torch.float64).unsqueeze(1)
    own, prev = schedule.with_prev(buffer, initial)
    want = {int(o[j, 0]): float(p[j, 0]) for o, p in zip(own, prev, strict=True)
            for j in range(o.shape[0])}  # fmt: skip
    got = {}
    for block in schedule.blocks:
        source = (initial if block.initial else buffer)[block.source, 0]
        for row, value in zip(buffer[block.rows, 0].tolist(), source.tolist(), strict=True):
            assert row not in got
            got[int(row)] = value
    assert got == want
    if schedule.is_padded:
        assert len(schedule.blocks) == (1 if len(sizes) == 1 else 2)


@pytest.mark.parametrize("reverse", [False, True])
def test_final_initial_and_add_final_use_each_sequence_s_own_rows(reverse):
    schedule = Schedule(SIZES, reverse)
    buffer = positions(schedule)
    last = [max(t for t in range(len(SIZES)) if n < SIZES[t]) for n in range(4)]
    ends = [0] * 4 if reverse else last
    starts = last if reverse else [0] * 4
    assert schedule.final(buffer).flatten().tolist() == [
        where(n, ends[n], schedule) for n in range(4)
    ]
    assert schedule.initial(lambda rows: buffer[rows], torch.empty(4, 1)).flatten().tolist() == [
        where(n, starts[n], schedule) for n in range(4)
    ]
    grad = torch.zeros_like(buffer)
    schedule.add_final(grad, torch.arange(1.0, 5.0, dtype=torch.float64).unsqueeze(1))
    for n in range(4):
        assert grad[where(n, ends[n], schedule), 0] == n + 1
    assert grad.sum() == 10


def test_run_steps_runs_only_the_rows_of_each_step():
    """A counting cell: each sequence's state counts the steps it ran."""
    schedule = Schedule(SIZES)
    xw = torch.ones(schedule.offsets[-1], 1)
    state = (torch.zeros(4, 1),)
    out, (final,) = run_steps(lambda x, s: (s[0] + x,), xw, state, schedule)
    assert final.flatten().tolist() == [4.0, 3.0, 3.0, 1.0]
    assert out.flatten().tolist() == [1.0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4]
    backward = Schedule(SIZES, reverse=True)
    out, (final,) = run_steps(lambda x, s: (s[0] + x,), xw, state, backward)
    assert final.flatten().tolist() == [4.0, 3.0, 3.0, 1.0]
    assert out.flatten().tolist() == [4.0, 3, 3, 1, 3, 2, 2, 2, 1, 1, 1]
