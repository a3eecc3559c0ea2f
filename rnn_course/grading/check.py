"""``check(name)``: the front end that the assignments' test cells call.

It finds the student's functions in the calling notebook's namespace, runs every case of
the check through :func:`rnn_course.grading.drivers.run`, compares the outputs with the
expected ones and prints one line on success. A test cell only ever contains
``check("f")`` (public cases) and ``check("f", hidden=True)`` (hidden cases), so a grader
that runs the student's code elsewhere can perform the same checks from the cell's
``grade_id`` alone.

Nothing is written to stderr (nbgrader fails a test cell on any stderr output): library
warnings are silenced while the checks run.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import sys
import warnings
from typing import Any

from rnn_course.grading import cases as _cases
from rnn_course.grading import compare as _compare
from rnn_course.grading import drivers as _drivers
from rnn_course.grading import expected as _expected


def _caller_namespace() -> dict[str, Any]:
    """Globals of the code that called ``check`` (the notebook's ``__main__``)."""
    frame = inspect.currentframe()
    try:
        caller = frame.f_back.f_back if frame and frame.f_back else None
        if caller is not None:
            return caller.f_globals
    finally:
        del frame
    return vars(sys.modules["__main__"])


def run_check(name: str, namespace: dict[str, Any], *, hidden: bool = False) -> str:
    """Run check ``name`` against the functions in ``namespace``; return the success line."""
    inputs = _cases.cases(name, hidden=hidden)
    kind = "hidden" if hidden else "public"
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        for i, case in enumerate(inputs, start=1):
            outputs = _drivers.run(name, namespace, case)
            _compare.compare(
                name, outputs, _expected.expected(name, case), case_label=f"{kind} case {i}"
            )
    return f"{name}: all {len(inputs)} {kind} cases passed"


def check(name: str, *, hidden: bool = False) -> None:
    """Check the student's ``name`` on its public (or hidden) cases; raise on failure.

    Raises ``AssertionError`` with a hint when an output differs, and lets exceptions
    from the student's code through (for example ``NotImplementedError``).
    """
    if not isinstance(name, str) or name not in _cases.NAMES:
        raise ValueError(f"name must be one of {', '.join(_cases.NAMES)}; got {name!r}")
    print(run_check(name, _caller_namespace(), hidden=hidden))
