"""Every graded function's :class:`~rnn_grader.checks.base.Check`, by assignment.

Each assignment keeps its checks in a module of its own (:mod:`.rnn_bptt`,
:mod:`.gated_cells`, :mod:`.deep_birnn`); :data:`CHECKS`, :data:`ASSIGNMENTS` and
:data:`DEPENDENCIES` are what the grader, the release and the self-check read.
"""

from __future__ import annotations

from rnn_grader.checks import char_lm, deep_birnn, gated_cells, rnn_bptt
from rnn_grader.checks.base import Check

_ENTRIES: list[Check] = [*rnn_bptt.CHECKS, *char_lm.CHECKS, *gated_cells.CHECKS, *deep_birnn.CHECKS]
CHECKS: dict[str, Check] = {c.name: c for c in _ENTRIES}
ASSIGNMENTS: dict[str, tuple[str, ...]] = {}
for _c in _ENTRIES:
    ASSIGNMENTS.setdefault(_c.assignment, ())
    ASSIGNMENTS[_c.assignment] += (_c.name,)
NAMES: tuple[str, ...] = tuple(CHECKS)
#: The student functions each check calls (a wrong forward also fails its backward check).
DEPENDENCIES: dict[str, list[str]] = {c.name: c.functions() for c in _ENTRIES}


def get(name: str) -> Check:
    """The check named ``name``; ``ValueError`` naming the known checks otherwise."""
    if name not in CHECKS:
        raise ValueError(f"name must be one of {', '.join(NAMES)}; got {name!r}")
    return CHECKS[name]
