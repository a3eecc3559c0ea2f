"""nbgrader configuration of the course (the repository root is the course directory).

Layout: instructor notebooks in ``solutions/<assignment>/<assignment>.ipynb``, student
notebooks generated into ``assignments/<assignment>/``; submissions, autograded copies,
feedback and ``gradebook.db`` use nbgrader's default folders next to this file.
"""

import os

from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearOutput,
    DeduplicateIds,
    NbGraderPreprocessor,
    OverwriteCells,
    OverwriteKernelspec,
)


class DropEmptyGraderMetadata(NbGraderPreprocessor):
    """Remove the empty ``nbgrader`` metadata that ``DeduplicateIds`` leaves on a copied cell.

    Without this, a student who duplicated a graded cell makes ``OverwriteCells`` (with
    ``add_missing_cells``) fail on the missing ``grade_id`` and the submission is not graded.
    """

    def preprocess_cell(self, cell, resources, index):  # noqa: ANN001, ANN201
        if "nbgrader" in cell.metadata and not cell.metadata.nbgrader.get("grade_id"):
            del cell.metadata["nbgrader"]
        return cell, resources


c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

#: The three graded assignments, in course order. ``nbgrader generate_assignment`` adds
#: each to the gradebook (``db_assignments`` no longer exists in nbgrader 0.9).
ASSIGNMENTS = ["rnn_bptt", "gated_cells", "deep_birnn"]

# --- course directory ---------------------------------------------------------------------
c.CourseDirectory.course_id = "rnn-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
# Only notebooks are released or collected: nothing else in solutions/<a>/ reaches students.
c.CourseDirectory.include = ["*.ipynb"]

# --- generating the student version -------------------------------------------------------
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.ClearSolutions.enforce_metadata = True
c.ClearOutput.enabled = True

# --- executing (validate and autograde) ---------------------------------------------------
# Seconds per cell; a cell that runs longer is interrupted and counts as failed.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
c.Execute.startup_timeout = 120
c.Execute.execute_retries = 0
# Library warnings must not fail a correct answer: a test cell fails on any stderr output.
# The kernel inherits this environment; the setup cell and check() silence warnings too.
os.environ["PYTHONWARNINGS"] = "ignore"
os.environ.setdefault("MPLBACKEND", "Agg")

# --- autograding --------------------------------------------------------------------------
# Restore test cells that a student deleted, so that a batch never stops on one notebook.
c.OverwriteCells.add_missing_cells = True
c.Autograde.sanitize_preprocessors = [
    ClearOutput,
    DeduplicateIds,
    DropEmptyGraderMetadata,
    OverwriteKernelspec,
    OverwriteCells,
    CheckCellMetadata,
]
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 40

# --- collecting from an LMS download (make collect A=<assignment>) -------------------------
# Put the LMS's bulk download (zip) in downloaded/<assignment>/archive/. The pattern below
# is Canvas's "Download submissions" naming,
#     <name>_[late_]<user id>_<submission id>_<file name>[-<n>].ipynb
# e.g. "doejane_late_48121_5203311_rnn_bptt-1.ipynb" -> student "doejane", rnn_bptt.ipynb
# (Canvas appends -<n> to resubmitted files). Adapt it for another LMS; it must define the
# groups student_id and file_id (the released notebook's name without extension).
c.ZipCollectApp.archive_directory = "archive"
c.ZipCollectApp.extracted_directory = "extracted"
c.FileNameCollectorPlugin.valid_ext = [".ipynb"]
c.FileNameCollectorPlugin.named_regexp = (
    r".*/(?P<student_id>[a-z0-9]+)_(?:late_)?\d+_\d+_(?P<file_id>[A-Za-z0-9_]+?)(?:-\d+)?\.ipynb$"
)

# --- exporting grades (make grades) -------------------------------------------------------
c.ExportApp.plugin_class = "nbgrader.plugins.export.CsvExportPlugin"

# --- trusted grading ----------------------------------------------------------------------
# `nbgrader autograde` checks the graded functions in a bubblewrap sandbox where neither
# torch nor rnn_course can be imported; expected values and comparisons stay in this
# process (see the book's "Trusted grading" page). Grading refuses to run where bubblewrap
# does not work, unless `c.TrustedExecute.unsafe_no_sandbox = True` is set here.
from rnn_grader.autograde import configure  # noqa: E402

configure(c)
