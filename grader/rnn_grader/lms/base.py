"""What the course needs from a learning management system, independent of which one.

An :class:`Lms` knows three naming conventions of its platform:

- how its bulk download names each submitted file (:meth:`Lms.parse`), which gives the
  student's LMS user id, display name, lateness and upload id;
- what its gradebook import accepts (:meth:`Lms.write_grades`);
- how a feedback file must be named to reach one student (:meth:`Lms.feedback_name`).

:mod:`rnn_grader.lms.canvas` implements them for Canvas. Another platform (Moodle: files
under ``<Full name>_<participant id>_assignsubmission_file_/``, grades through a
worksheet CSV keyed by "Identifier") is one more subclass registered in
:data:`rnn_grader.lms.PLATFORMS`.
"""

from __future__ import annotations

import abc
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GradeRow", "Lms", "RosterEntry", "Upload", "display_name"]


@dataclass(frozen=True)
class Upload:
    """One file of a bulk download, as the LMS named it."""

    user_id: str  # the LMS's unique id of the student: the nbgrader student id
    name: str  # the name part of the file name (display name or a slug of it)
    late: bool
    upload_id: str  # the LMS's id of this uploaded file (newer uploads have larger ids)
    file_name: str  # the name the student gave the file (after the LMS's own suffixes)
    notebook: str  # the released notebook it matches, without ".ipynb" ("" if none)


@dataclass(frozen=True)
class RosterEntry:
    """A student as the LMS's gradebook export lists them."""

    user_id: str
    name: str  # as the LMS shows it, e.g. Canvas's sortable "Núñez, José"
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""


@dataclass(frozen=True)
class GradeRow:
    """One student's grade for one assignment, ready for the LMS's import."""

    student: RosterEntry
    points: float | None  # None: leave the LMS's grade unchanged (e.g. not fully graded)


_UNSAFE = re.compile(r"[<>&\"`\x00-\x1f\x7f]")


def display_name(name: str) -> str:
    """A display name made safe to store and show: NFC, no markup characters, one line.

    Names reach formgrader's pages and the feedback files; ``<``, ``>``, ``&``, quotes
    and control characters are removed, an apostrophe becomes ``’`` (O'Brien -> O’Brien).
    """
    name = unicodedata.normalize("NFC", str(name)).replace("'", "\u2019")
    return " ".join(_UNSAFE.sub("", name).split())[:200]


class Lms(abc.ABC):
    """The naming conventions of one learning management system."""

    #: Short name used in ``nbgrader_config.py`` (``c.LmsCourse.lms``).
    key: str = ""

    @abc.abstractmethod
    def parse(self, file_name: str, notebooks: list[str]) -> Upload | None:
        """The upload that ``file_name`` (a member of the bulk download) describes.

        ``notebooks`` are the released notebook names (without ``.ipynb``); ``None`` when
        the name does not follow the platform's convention.
        """

    @abc.abstractmethod
    def read_roster(self, path: Path) -> dict[str, RosterEntry]:
        """Students of the platform's gradebook export, by LMS user id."""

    @abc.abstractmethod
    def write_grades(
        self, rows: list[GradeRow], column: str, points_possible: float, path: Path
    ) -> None:
        """Write a file the platform's gradebook import accepts (one assignment)."""

    @abc.abstractmethod
    def feedback_name(self, upload: Upload, assignment: str, notebook: str) -> str:
        """File name under which feedback for ``upload`` reaches that student."""
