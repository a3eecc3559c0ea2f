"""Canvas: bulk download names, gradebook import CSV, per-student feedback names.

**Download** (Assignment > Download Submissions): each file is named

    <name>[_late]_<user id>_<attachment id>_<file name>

where ``<name>`` is the student's sortable name ("Núñez, José") with everything but
letters, digits and underscores removed and lower-cased ("núñezjosé"; accents stay),
``_late`` marks a submission after the due date, ``<user id>`` is Canvas's unique id of
the student, ``<attachment id>`` the id of the uploaded file (a later upload has a larger
id) and ``<file name>`` the student's file name, to which Canvas adds ``-1``, ``-2``, ...
when the student uploaded a file of the same name again. Two students with the same name
get the same ``<name>``: only the user id tells them apart.

**Gradebook import** (Grades > Import) reads a CSV whose header starts with ``Student``,
``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section`` followed by one column per
assignment, titled ``<title> (<assignment id>)`` for an existing assignment (the export's
own titles); an optional second row starts with ``Points Possible``. Students are matched
by ``ID``; an empty cell leaves the grade unchanged.

**Feedback**: "Re-upload submissions" takes a zip whose files are named like the
download, ``..._<user id>_<attachment id>_...``, and attaches each file as a comment to
that student's submission.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from pathlib import Path

from rnn_grader.feedback.sanitize import spreadsheet_safe
from rnn_grader.lms.base import GradeRow, Lms, RosterEntry, Upload, display_name

__all__ = ["Canvas"]

_NAME = re.compile(
    r"^(?:(?P<name>\w*?)_)??(?:(?P<late>late)_)?(?P<user>\d+)_(?P<upload>\d+)_(?P<file>.+)$",
    re.I,
)
# Canvas's "-1" for a re-uploaded file of the same name, a browser's " (1)" for a
# downloaded copy
_COPY_SUFFIX = re.compile(r"(?:-\d+|\s*\(\d+\))+$")


class Canvas(Lms):
    """Canvas's naming conventions."""

    key = "canvas"

    def parse(self, file_name: str, notebooks: list[str]) -> Upload | None:
        base = unicodedata.normalize("NFC", Path(file_name).name)
        match = _NAME.match(base)
        if match is None:
            return None
        stem, suffix = _split_suffix(match["file"])
        notebook = ""
        if suffix.lower() == ".ipynb":
            candidates = [stem, _COPY_SUFFIX.sub("", stem)]
            notebook = next((n for n in candidates if n in notebooks), "")
        return Upload(
            user_id=match["user"],
            name=match["name"] or "",
            late=bool(match["late"]),
            upload_id=match["upload"],
            file_name=match["file"],
            notebook=notebook,
        )

    def read_roster(self, path: Path) -> dict[str, RosterEntry]:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
        if not rows or len(rows[0]) < 2 or "Student" not in rows[0][0] or rows[0][1] != "ID":
            raise ValueError(
                f"{path}: not a Canvas gradebook export (the header must start with Student, ID)"
            )
        header = rows[0]
        col = {name: header.index(name) for name in header}

        def cell(row: list[str], name: str) -> str:
            i = col.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        roster = {}
        for row in rows[1:]:
            user_id = cell(row, "ID")
            if not user_id.isdigit():  # "Points Possible" and other non-student rows
                continue
            roster[user_id] = RosterEntry(
                user_id=user_id,
                name=display_name(cell(row, header[0])),
                sis_user_id=cell(row, "SIS User ID"),
                sis_login_id=cell(row, "SIS Login ID"),
                section=cell(row, "Section"),
            )
        return roster

    def write_grades(
        self, rows: list[GradeRow], column: str, points_possible: float, path: Path
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column])
            w.writerow(["    Points Possible", "", "", "", "", f"{points_possible:g}"])
            for row in rows:
                s = row.student
                points = "" if row.points is None else f"{round(row.points, 2):g}"
                text = [s.name, s.user_id, s.sis_user_id, s.sis_login_id, s.section]
                w.writerow([*map(spreadsheet_safe, text), points])

    def feedback_name(self, upload: Upload, assignment: str, notebook: str) -> str:
        name = re.sub(r"\W", "", upload.name) or "student"
        return f"{name}_{upload.user_id}_{upload.upload_id}_{notebook}_feedback.html"


def _split_suffix(file_name: str) -> tuple[str, str]:
    path = Path(file_name)
    return path.stem, path.suffix
