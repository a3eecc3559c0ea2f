"""Where a course's gradebook is, whatever the working directory.

The course's ``nbgrader_config.py`` writes ``sqlite:///gradebook.db``: nbgrader reads that
relative to the working directory, which is the course root when nbgrader runs there. The
grader's own commands take ``--course-dir`` and may run from anywhere, so they resolve such
a URL against the course root.
"""

from __future__ import annotations

from pathlib import Path

SQLITE = "sqlite:///"


def course_db_url(root: Path, url: str) -> str:
    """``url`` with a relative SQLite path made absolute under ``root``; others unchanged."""
    if url.startswith(SQLITE) and not url.startswith(SQLITE + "/"):
        return f"{SQLITE}{Path(root).resolve() / url[len(SQLITE) :]}"
    return url
