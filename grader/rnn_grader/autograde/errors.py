"""Errors on the instructor's side of grading."""

from __future__ import annotations


class GraderError(BaseException):
    """A failure of the grader itself (a check's cases, reference, comparison, the worker).

    Grading stops with a message naming the cause: no student is charged for it. It
    derives from ``BaseException`` so that nbgrader's per-student ``except Exception``
    cannot turn it into one student's failed notebook and carry on with the next.
    """
