"""Trusted autograding: student code runs in a bubblewrap sandbox, comparisons run here.

``configure(c)`` installs the back end into an nbgrader config object (in
``nbgrader_config.py``): it replaces nbgrader's ``Execute`` by
:class:`~rnn_grader.autograde.preprocessor.TrustedExecute`, keeps every other
preprocessor, puts :class:`~rnn_grader.autograde.sanitize.GradebookCells` first in the
sanitize pass and turns on ``OverwriteCells.add_missing_cells``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["configure"]


def configure(c: Any, *, unsafe_no_sandbox: bool = False) -> None:
    """Install the trusted back end into the nbgrader config ``c``.

    Args:
        c: the ``get_config()`` object of ``nbgrader_config.py``.
        unsafe_no_sandbox: run student code without bubblewrap (only where it cannot work).
    """
    from nbgrader.converters.autograde import Autograde
    from nbgrader.preprocessors import Execute

    from rnn_grader.autograde.preprocessor import TrustedExecute
    from rnn_grader.autograde.sanitize import GradebookCells

    if "Autograde" in c and "autograde_preprocessors" in c.Autograde:
        current = list(c.Autograde.autograde_preprocessors)
    else:
        current = list(Autograde.autograde_preprocessors.default())
    replaced = [
        TrustedExecute if p in (Execute, "nbgrader.preprocessors.Execute") else p for p in current
    ]
    if TrustedExecute not in replaced:
        replaced.insert(0, TrustedExecute)
    c.Autograde.autograde_preprocessors = replaced
    if "Autograde" in c and "sanitize_preprocessors" in c.Autograde:
        sanitize = list(c.Autograde.sanitize_preprocessors)
    else:
        sanitize = list(Autograde.sanitize_preprocessors.default())
    if GradebookCells not in sanitize:
        c.Autograde.sanitize_preprocessors = [GradebookCells, *sanitize]
    # What is tested comes from the gradebook: restore deleted test cells too.
    c.OverwriteCells.add_missing_cells = True
    if unsafe_no_sandbox:
        c.TrustedExecute.unsafe_no_sandbox = True
