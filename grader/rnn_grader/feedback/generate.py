"""Feedback for every graded student: nbgrader's ``generate_feedback``, then LMS names.

``rnn-course feedback <a>`` runs nbgrader's feedback for one student at a time (a
student whose feedback fails is listed, the others still get theirs) with the course's
:class:`~rnn_grader.feedback.exporter.FeedbackExporter`, then copies each file under the
name the LMS needs (:func:`rnn_grader.lms.course.package_feedback`).
"""

from __future__ import annotations

import sys
from pathlib import Path


def generate_feedback(
    root: Path, assignment: str, *, progress: bool = True
) -> tuple[Path, list[Path], dict[str, str]]:
    """Feedback HTML for every autograded student of ``assignment``, packaged for the LMS.

    Returns the LMS bundle, the packaged files and, per student whose feedback failed,
    the reason.
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from tqdm import tqdm

    from rnn_grader.autograde.runner import load_config
    from rnn_grader.autograde.text import printable
    from rnn_grader.lms.course import package_feedback

    c = load_config(root)
    api = NbGraderAPI(CourseDirectory(config=c), config=c)
    graded = root / api.coursedir.autograded_directory
    students = sorted(
        d.name for d in graded.iterdir() if (d / assignment).is_dir()
    ) if graded.is_dir() else []  # fmt: skip
    if not students:
        raise FileNotFoundError(f"no autograded submissions of {assignment} in {graded}")
    failed: dict[str, str] = {}
    for student in tqdm(students, desc="feedback", file=sys.stderr, disable=not progress):
        result = api.generate_feedback(assignment, student, force=True)
        if not result.get("success"):
            last = str(result.get("error") or result.get("log") or "").strip().splitlines()
            failed[student] = printable(last[-1] if last else "failed", 300)
    bundle, files = package_feedback(root, assignment)
    return bundle, files, failed
