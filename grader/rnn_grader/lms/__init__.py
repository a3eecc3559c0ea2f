"""The round trip to a learning management system (Canvas first).

``rnn-course collect <a>`` (``make collect``) imports the LMS's bulk
download, keyed by the LMS user id, keeping each student's display name and lateness;
``grades <a>`` (``make grades``) writes the file the LMS's gradebook import accepts;
``feedback <a>`` (part of ``make feedback``) names each feedback file for its student.
A platform is a subclass of :class:`~rnn_grader.lms.base.Lms` registered in
:data:`PLATFORMS`.
"""

from __future__ import annotations

from rnn_grader.lms.base import GradeRow, Lms, RosterEntry, Upload
from rnn_grader.lms.canvas import Canvas

__all__ = ["PLATFORMS", "Canvas", "GradeRow", "Lms", "RosterEntry", "Upload"]

#: ``c.LmsCourse.lms`` -> the platform's naming conventions.
PLATFORMS: dict[str, type[Lms]] = {Canvas.key: Canvas}
