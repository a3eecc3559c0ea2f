"""Autograde logs that warn only about what deserves a warning.

Two kinds of noise made every honest submission look tampered with:

- ``Attribute 'checksum' for cell test_... has changed!``, six times per student.
  ``generate_assignment`` stores each test cell's checksum *with* its hidden tests, and
  the student receives the cell without them, so the checksums differ by design.
  :class:`ReleasedChecksums` compares a locked cell with the gradebook source *as
  released* (hidden tests removed, exactly as ``generate_assignment`` does): a match is
  restored silently, and one line per run says why; only a cell that differs from what
  the student received is reported, as an edit.
- SQLAlchemy's ``SAWarning: Object of type <SubmittedAssignment> not in session`` from
  nbgrader's ``Gradebook.add_submission`` under SQLAlchemy 2 (the objects are added to
  the session right after; the warning is about the order, not lost data).
  :func:`quiet_gradebook` filters exactly those messages, only while it is entered
  (``rnn-course autograde`` enters it around nbgrader's calls, and
  :func:`quiet_add_submission` around ``Gradebook.add_submission``, the call that emits
  them, for plain ``nbgrader autograde``; nothing changes the process's own warning
  filters).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings
from collections.abc import Iterator
from typing import Any

from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.api import MissingEntry
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells

__all__ = ["ReleasedChecksums", "quiet_add_submission", "quiet_gradebook"]

_EXPLAINED = "autograde: the test cells' checksums in the gradebook include the hidden tests,"


class ReleasedChecksums(OverwriteCells):
    """``OverwriteCells`` that does not report the hidden tests as a student's edit."""

    _explained_once = False

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict, cell_index: int
    ) -> tuple[NotebookNode, dict]:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None and utils.is_locked(cell):
            try:
                source = self.gradebook.find_source_cell(
                    grade_id, self.notebook_id, self.assignment_id
                )
            except MissingEntry:
                source = None
            if (
                source is not None
                and source.locked
                and source.source != cell.source
                and self._as_released(cell, source.source) == utils.compute_checksum(cell)
            ):
                cell.source = source.source  # what OverwriteCells would restore
                self._explain()
        return super().preprocess_cell(cell, resources, cell_index)

    def _as_released(self, cell: NotebookNode, source: str) -> str:
        released = copy.deepcopy(cell)
        released.source = source
        clear = ClearHiddenTests(parent=self)
        clear.preprocess_cell(released, {}, 0)
        return utils.compute_checksum(released)

    def _explain(self) -> None:
        if not ReleasedChecksums._explained_once:
            ReleasedChecksums._explained_once = True
            self.log.info(
                "%s which students never receive; cells that match the released version "
                "are restored without a warning, and any other change is reported.",
                _EXPLAINED,
            )


@contextlib.contextmanager
def quiet_gradebook() -> Iterator[None]:
    """Hide SQLAlchemy's "not in session" warnings of nbgrader's gradebook, while entered."""
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"Object of type <Submitted(Assignment|Notebook)> not in session",
            category=SAWarning,
        )
        yield


def quiet_add_submission() -> None:
    """Make nbgrader's ``Gradebook.add_submission`` run inside :func:`quiet_gradebook`.

    Installed once by :func:`rnn_grader.autograde.configure`; the method's behaviour is
    unchanged, and the filter holds only while the call runs.
    """
    from nbgrader.api import Gradebook

    original = Gradebook.add_submission
    if getattr(original, "quiet_gradebook", False):
        return

    @functools.wraps(original)
    def add_submission(self: Gradebook, *args: Any, **kwargs: Any) -> Any:
        with quiet_gradebook():
            return original(self, *args, **kwargs)

    add_submission.quiet_gradebook = True  # type: ignore[attr-defined]
    Gradebook.add_submission = add_submission  # type: ignore[method-assign]
