"""Trusted autograding: student code runs in a bubblewrap sandbox, comparisons run here.

``configure(c)`` installs the back end into an nbgrader config object (in
``nbgrader_config.py``): it replaces nbgrader's ``Execute`` by
:class:`~rnn_grader.autograde.preprocessor.TrustedExecute` and ``SaveAutoGrades`` by
:class:`~rnn_grader.autograde.regrade.KeepManualGrades` (a regrade keeps manual grades
graded), keeps every other preprocessor, puts
:class:`~rnn_grader.autograde.guard.GradebookCells` first in the sanitize pass, reads
notebooks through
:class:`~rnn_grader.autograde.guard.GuardedNotebookExporter` (size limit before
parsing; a notebook's errors stay that student's) and turns on
``OverwriteCells.add_missing_cells``; SQLAlchemy's warnings about the order in which
``Gradebook.add_submission`` adds objects are hidden during that call
(:func:`~rnn_grader.autograde.checksums.quiet_add_submission`). ``nbgrader collect``
(JupyterHub exchange) uses :class:`~rnn_grader.autograde.exchange.HardenedExchangeCollect`.

The sandbox's limits are traits of ``TrustedExecute`` (see ``book/trusted_grading.md``):
``check_timeout``, ``cell_timeout``, ``optional_timeout``, ``notebook_timeout``,
``memory_limit`` (per process),
``sandbox_memory`` (all processes, cgroup), ``cpu_limit`` (CPUs per sandbox, cgroup),
``max_processes``, ``max_output_bytes``, ``max_frame_bytes``, ``max_notebook_bytes``,
``require_cgroup`` and ``unsafe_no_sandbox``.
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
    from nbgrader.preprocessors import Execute, SaveAutoGrades

    from rnn_grader.autograde.checksums import quiet_add_submission
    from rnn_grader.autograde.guard import GradebookCells, GuardedNotebookExporter
    from rnn_grader.autograde.preprocessor import TrustedExecute
    from rnn_grader.autograde.regrade import KeepManualGrades

    if "Autograde" in c and "autograde_preprocessors" in c.Autograde:
        current = list(c.Autograde.autograde_preprocessors)
    else:
        current = list(Autograde.autograde_preprocessors.default())
    swap = {
        Execute: TrustedExecute,
        "nbgrader.preprocessors.Execute": TrustedExecute,
        SaveAutoGrades: KeepManualGrades,
        "nbgrader.preprocessors.SaveAutoGrades": KeepManualGrades,
    }
    replaced = [swap.get(p, p) if isinstance(p, str | type) else p for p in current]
    if TrustedExecute not in replaced:
        replaced.insert(0, TrustedExecute)
    c.Autograde.autograde_preprocessors = replaced
    if "Autograde" in c and "sanitize_preprocessors" in c.Autograde:
        sanitize = list(c.Autograde.sanitize_preprocessors)
    else:
        sanitize = list(Autograde.sanitize_preprocessors.default())
    if GradebookCells not in sanitize:
        c.Autograde.sanitize_preprocessors = [GradebookCells, *sanitize]
    # JupyterHub exchange: collect only folders really owned by the student, no links.
    c.ExchangeFactory.collect = "rnn_grader.autograde.exchange.HardenedExchangeCollect"
    # Size limit before parsing; one notebook's errors fail that student alone.
    c.Autograde.exporter_class = GuardedNotebookExporter
    # What is tested comes from the gradebook: restore deleted test cells too.
    c.OverwriteCells.add_missing_cells = True
    # SQLAlchemy 2's "not in session" warnings of add_submission, hidden during that call
    quiet_add_submission()
    if unsafe_no_sandbox:
        c.TrustedExecute.unsafe_no_sandbox = True
