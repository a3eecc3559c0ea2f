"""Regrades that keep every grade right: what was graded, and manual grades kept graded.

nbgrader's ``SaveAutoGrades`` marks every grade that has a manual score as needing
grading again whenever a notebook is autograded, so a forced regrade after the written
answers were graded sends the instructor back to formgrader for every student, and the
exported grades go blank. :class:`KeepManualGrades` (installed by ``configure(c)`` in its
place) keeps such a grade graded when what it grades is unchanged: the student's own
cell for a written answer, and every answer cell for an autograded test whose score the
instructor overrode. To know what changed, it records, per notebook, a digest of each
graded and answer cell and of the submitted file in
``grading-state/<assignment>/<student>.json`` beside the gradebook.

The same record tells ``rnn-course autograde`` which submissions changed since they were
graded (:func:`needs_grading`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import SaveAutoGrades

STATE_DIR = "grading-state"


def state_path(root: str | os.PathLike, assignment: str, student: str) -> Path:
    """The record of what was graded for one student's submission of ``assignment``."""
    return Path(root) / STATE_DIR / assignment / f"{student}.json"


def read_state(root: str | os.PathLike, assignment: str, student: str) -> dict[str, Any]:
    """Notebook name -> what was graded (an empty dict when nothing is recorded)."""
    try:
        return json.loads(state_path(root, assignment, student).read_text())
    except (FileNotFoundError, ValueError):
        return {}


def digest(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def file_digest(path: str | os.PathLike) -> str | None:
    try:
        return digest(Path(path).read_bytes())
    except OSError:
        return None


def cell_digests(nb: NotebookNode) -> dict[str, Any]:
    """A digest of each graded or answer cell's source, and one of all answer cells."""
    cells: dict[str, str] = {}
    answers = hashlib.sha256()
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if not gid or gid in cells:
            continue
        if utils.is_solution(cell) or utils.is_grade(cell):
            cells[gid] = digest(str(cell.source))
        if utils.is_solution(cell):
            answers.update(f"{gid}\0{cell.source}\0".encode())
    return {"cells": cells, "answers": answers.hexdigest()}


class KeepManualGrades(SaveAutoGrades):
    """``SaveAutoGrades`` that keeps a manual grade graded while what it grades is unchanged."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        info = resources["nbgrader"]
        coursedir = CourseDirectory(config=self.config)
        root = coursedir.root
        student, assignment, notebook = info["student"], info["assignment"], info["notebook"]
        state = read_state(root, assignment, student)
        self._previous = state.get(notebook, {})
        self._current = cell_digests(nb)
        nb, resources = super().preprocess(nb, resources)
        folder = coursedir.format_path(coursedir.submitted_directory, student, assignment)
        state[notebook] = {
            **self._current,
            "submitted": file_digest(Path(folder) / f"{notebook}.ipynb"),
            "graded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        path = state_path(root, assignment, student)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        tmp.replace(path)
        return nb, resources

    def _unchanged(self, cell: NotebookNode) -> bool:
        """Whether what this grade judges is what was graded before."""
        previous = self._previous
        if not previous:
            return False
        if utils.is_solution(cell):  # a written answer: the student's own cell
            gid = cell.metadata["nbgrader"]["grade_id"]
            old = previous.get("cells", {}).get(gid)
            return old is not None and old == self._current["cells"].get(gid)
        return previous.get("answers") == self._current["answers"]  # an overridden test

    def _add_score(self, cell: NotebookNode, resources: dict) -> None:
        grade = self.gradebook.find_grade(
            cell.metadata["nbgrader"]["grade_id"], self.notebook_id, self.assignment_id,
            self.student_id,
        )  # fmt: skip
        was_graded = grade.manual_score is not None and not grade.needs_manual_grade
        super()._add_score(cell, resources)
        if was_graded and self._unchanged(cell):
            grade.needs_manual_grade = False
            self.gradebook.db.commit()


def needs_grading(
    root: str | os.PathLike, coursedir: CourseDirectory, assignment: str, student: str
) -> tuple[bool, str]:
    """Whether ``student``'s submission of ``assignment`` must be (re)graded, and why."""
    submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
    graded = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment))
    notebooks = sorted(p.stem for p in submitted.glob("*.ipynb"))
    if not notebooks:
        return True, "no notebook submitted (nbgrader reports it)"
    state = read_state(root, assignment, student)
    for name in notebooks:
        if not (graded / f"{name}.ipynb").is_file():
            return True, "not graded yet"
        if name not in state:
            return True, "no record of what was graded"
        if state[name].get("submitted") != file_digest(submitted / f"{name}.ipynb"):
            return True, "the submitted notebook changed since it was graded"
    when = min(state[name].get("graded_at", "?") for name in notebooks)
    return False, f"unchanged since it was graded ({when})"


def problem_path(root: str | os.PathLike, assignment: str, student: str) -> Path:
    return Path(root) / STATE_DIR / assignment / f"{student}.problem.txt"


def record_problem(root: str | os.PathLike, assignment: str, student: str, text: str) -> None:
    """Keep why ``student``'s submission could not be graded ("" clears it)."""
    path = problem_path(root, assignment, student)
    if text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    else:
        path.unlink(missing_ok=True)


def read_problem(root: str | os.PathLike, assignment: str, student: str) -> str:
    path = problem_path(root, assignment, student)
    return path.read_text().strip() if path.is_file() else ""
