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
    OverwriteKernelspec,
)

from rnn_grader.autograde.checksums import ReleasedChecksums


class DropEmptyGraderMetadata(NbGraderPreprocessor):
    """Remove the empty ``nbgrader`` metadata that ``DeduplicateIds`` leaves on a copied cell.

    Without this, a student who duplicated a graded cell makes ``OverwriteCells`` (with
    ``add_missing_cells``) fail on the missing ``grade_id`` and the submission is not graded.
    """

    def preprocess_cell(self, cell, resources, index):
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
# Library warnings must not fail a correct answer (a test cell fails on any stderr output):
# the notebooks' setup cells and check() silence them inside the kernel.
os.environ.setdefault("MPLBACKEND", "Agg")

# --- autograding --------------------------------------------------------------------------
# Restore test cells that a student deleted, so that a batch never stops on one notebook.
c.OverwriteCells.add_missing_cells = True
c.Autograde.sanitize_preprocessors = [
    ClearOutput,
    DeduplicateIds,
    DropEmptyGraderMetadata,
    OverwriteKernelspec,
    ReleasedChecksums,  # OverwriteCells, without reporting the hidden tests as an edit
    CheckCellMetadata,
]
c.LimitOutput.max_lines = 200
c.LimitOutput.max_traceback = 40
# nbgrader's gradebook under SQLAlchemy 2 warns "not in session" for every submission (the
# objects are added right after); `rnn-course autograde` hides exactly that warning.

# --- collecting from the LMS (make collect A=<assignment>) ------------------------------
# Put the LMS's bulk download (zip) in downloaded/<assignment>/archive/; `make collect`
# runs `rnn-course collect <assignment>`, which reads Canvas's naming
#     <sortable name>_[LATE_]<user id>_<attachment id>_<file name>[-<n>].ipynb
# keys each student by the LMS user id (the folder name in submitted/), keeps the display
# name in the gradebook, writes nbgrader's timestamp.txt with the upload's time and
# records the upload in submitted/<id>/<a>/lms.json. For another LMS, add a class to
# rnn_grader/lms/ and name it here.
c.LmsCourse.lms = "canvas"
# The zone of the times the LMS stamps on the files of its download.
c.LmsCourse.download_timezone = "UTC"
# Optional: the LMS's own gradebook export (Canvas: Grades > Export), for display names,
# SIS ids and sections; keep it in downloaded/ (git-ignored), e.g. "downloaded/roster.csv".
# Without it, names come from the file names.
c.LmsCourse.roster = ""
# Canvas assignment column per nbgrader assignment, as in Canvas's gradebook export,
# "<title> (<Canvas assignment id>)"; by default the nbgrader name (a new column).
c.LmsCourse.assignment_columns = {}

# --- late work (applied by make grades) -----------------------------------------------
# Due dates make formgrader show lateness and let a per-day policy count days; extensions
# move one student's deadline. kind: "none" (default), "per_day" or "flat".
c.LatePolicy.due = {}  # e.g. {"rnn_bptt": "2027-02-01 23:59 Europe/Zurich"}
c.LatePolicy.kind = "none"
c.LatePolicy.percent_per_day = 10.0  # of the points earned, per started day late
c.LatePolicy.max_percent = 50.0
c.LatePolicy.flat_percent = 20.0
c.LatePolicy.grace_minutes = 5.0
c.LatePolicy.extensions = {}  # e.g. {"rnn_bptt": {"48122": "2027-02-05 23:59 Europe/Zurich"}}

# --- exporting grades (make grades A=<assignment>) -------------------------------------
# `rnn-course grades <assignment>` writes exports/<a>/canvas-grades.csv for Canvas's
# gradebook import (Grades > Import): one column for the graded assignment, rows only for
# students who submitted, total points including the manually graded written answers,
# less the late deduction; a submission whose written answers are not graded yet is left
# blank (Canvas keeps what it has) and listed. exports/<a>/summary.csv adds the upload
# time, lateness, the policy and what it deducted.
c.ExportApp.plugin_class = "nbgrader.plugins.export.CsvExportPlugin"

# --- viewing submissions: formgrader and feedback --------------------------------------
# Student-authored Markdown, HTML and outputs are sanitized wherever nbgrader renders a
# notebook to HTML (formgrader's submission view and generate_feedback): nbconvert's
# own switch, a Markdown filter that renders formulas as MathML (so formgrader shows them
# offline too) and cleans the rendered HTML (nbgrader's templates bypass the switch for
# Markdown cells), and a preprocessor for outputs, raw cells and metadata.
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.filters = {
    "markdown2html": "rnn_grader.feedback.sanitize.markdown2html_sanitized",
}
c.HTMLExporter.preprocessors = [
    "rnn_grader.feedback.sanitize.SanitizeStudentContent",
    "rnn_grader.feedback.messages.ExplainBlankAnswers",
]
# Feedback a student can read offline: formulas as MathML (no script, no network), one
# small stylesheet, messages wrapped, blank answers explained ("you have not implemented
# f yet"). `make feedback` then names a copy of each file for the LMS (exports/<a>/feedback/
# and a zip for Canvas's "Re-upload submissions").
c.GenerateFeedback.exporter_class = "rnn_grader.feedback.exporter.FeedbackExporter"

# --- trusted grading ----------------------------------------------------------------------
# `nbgrader autograde` checks the graded functions in a bubblewrap sandbox where neither
# torch nor rnn_course can be imported; expected values and comparisons stay in this
# process (see the book's "Trusted grading" page). Grading refuses to run where bubblewrap
# does not work, unless `c.TrustedExecute.unsafe_no_sandbox = True` is set here.
from rnn_grader.autograde import configure  # noqa: E402

configure(c)
