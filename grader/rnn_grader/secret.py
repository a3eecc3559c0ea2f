"""The course secret: hidden inputs are drawn from it, so they differ from course to course.

It is created once per course by ``rnn-course secret`` (or ``make secret``) in the course
root, as ``.course-secret`` (git ignores it), or given in the environment variable
``RNN_COURSE_SECRET``. Without it grading refuses to run.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ENV_VAR = "RNN_COURSE_SECRET"
FILE_NAME = ".course-secret"
HOW = f"run `rnn-course secret` once in the course root (or `make secret`), or set {ENV_VAR}"


class MissingSecret(RuntimeError):
    """No course secret is configured, so hidden cases cannot be drawn."""


def load(root: Path | str = ".") -> bytes:
    """The course secret, from ``$RNN_COURSE_SECRET`` or ``<root>/.course-secret``."""
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        path = Path(root) / FILE_NAME
        value = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
    if len(value) < 16:
        raise MissingSecret(
            "no course secret (hidden inputs are drawn from it, and grading refuses to run "
            f"without one): {HOW}. It must be at least 16 characters."
        )
    return value.encode()


def create(root: Path | str = ".", *, force: bool = False) -> Path:
    """Write a new random secret to ``<root>/.course-secret`` (mode 600); return its path.

    Refuses to replace an existing secret unless ``force``: a new secret gives new hidden
    cases, so grades computed before and after it are not comparable.
    """
    path = Path(root) / FILE_NAME
    if path.exists() and not force:
        raise FileExistsError(
            f"{path} already exists; a new secret changes every hidden case (pass --force "
            "to replace it)"
        )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path
