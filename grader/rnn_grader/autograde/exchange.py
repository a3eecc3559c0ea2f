"""``nbgrader collect`` that refuses forged and linked submissions (JupyterHub exchange).

In nbgrader's exchange every student writes ``<student>+<assignment>+<timestamp>``
folders into a shared ``inbound`` directory, and ``collect`` copies the newest folder
of each student into ``submitted/``. Stock nbgrader trusts the folder *name*: it only
warns when the folder belongs to someone else, and it copies symlinks by following them.
So one student could replace another's submission with a folder named after them and a
later timestamp, and a symlink in a submission made ``collect`` copy whatever the
instructor can read (the solutions) into it.

:class:`HardenedExchangeCollect` (installed by ``configure(c)`` as
``ExchangeFactory.collect``) accepts a folder only if the folder and everything in it
are owned by the Unix user whose name the folder claims, and are directories or regular
files with a single link: no symlinks, hard links, devices, sockets or pipes. A folder
that fails is refused (an error in the log, never copied), and that student's newest
*valid* folder is collected instead. The copy never follows links and is checked again
afterwards, so a link swapped in between is refused too.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.default.collect import ExchangeCollect, groupby
from nbgrader.utils import ignore_patterns


class SubmissionRefused(Exception):
    """A submission folder that must not be collected, with the reason."""


def check_tree(path: str | os.PathLike, uid: int) -> None:
    """Raise ``SubmissionRefused`` unless ``path`` is a plain tree owned by ``uid``."""
    top = os.lstat(path)
    if not stat.S_ISDIR(top.st_mode):
        raise SubmissionRefused("is not a directory (a symlink or a file)")
    if top.st_uid != uid:
        raise SubmissionRefused(f"is owned by uid {top.st_uid}, not by the student (uid {uid})")
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, path)
            if stat.S_ISLNK(st.st_mode):
                raise SubmissionRefused(f"contains a symbolic link: {rel}")
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                raise SubmissionRefused(f"contains something that is not a file: {rel}")
            if stat.S_ISREG(st.st_mode) and st.st_nlink != 1:
                raise SubmissionRefused(f"contains a hard link: {rel}")
            if st.st_uid != uid:
                raise SubmissionRefused(f"contains {rel}, owned by uid {st.st_uid}, not {uid}")


def student_uid(student: str) -> int:
    """The uid of the Unix account named ``student`` (``SubmissionRefused`` if none)."""
    try:
        return pwd.getpwnam(student).pw_uid
    except KeyError:
        raise SubmissionRefused(f"there is no Unix user named {student!r}") from None


class HardenedExchangeCollect(ExchangeCollect):
    """``ExchangeCollect`` that checks ownership and refuses links instead of warning."""

    def _valid(self, rec: dict) -> bool:
        path = os.path.join(self.inbound_path, rec["filename"])
        try:
            check_tree(path, student_uid(rec["username"]))
        except (SubmissionRefused, OSError) as exc:
            self.log.error("Refusing submission %s: %s", rec["filename"], exc)
            self.refused.append((rec["filename"], str(exc)))
            return False
        return True

    def init_src(self) -> None:
        super().init_src()  # paths, permissions and the due date
        self.refused: list[tuple[str, str]] = []
        student = self.coursedir.student_id or "*"
        pattern = f"{student}+{self.coursedir.assignment_id}+*"
        records = [self._path_to_record(str(p)) for p in Path(self.inbound_path).glob(pattern)]
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                duedate = gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                duedate = None
        self.src_records = []
        for recs in groupby(records, lambda item: item["username"]).values():
            ordered = self._sort_by_timestamp(recs)
            if duedate is not None and self.before_duedate:
                ordered = [r for r in ordered if r["timestamp"] <= duedate] + [
                    r for r in ordered if r["timestamp"] > duedate
                ]
            for rec in ordered:  # newest first: the newest folder that is really theirs
                if self._valid(rec):
                    self.src_records.append(rec)
                    break

    def do_copy(self, src: str, dest: str, log=None) -> None:
        """nbgrader's copy (size limits, ignore patterns) without following links, rechecked."""
        size = self.get_size(src)
        if size > 1000 * self.coursedir.max_dir_size:
            raise RuntimeError(f"Directory size is too big: {size} bytes")
        ignore = ignore_patterns(
            exclude=self.coursedir.ignore,
            include=self.coursedir.include,
            max_file_size=self.coursedir.max_file_size,
            log=self.log,
        )
        shutil.copytree(src, dest, symlinks=True, ignore=ignore)
        for dirpath, dirnames, filenames in os.walk(dest, followlinks=False):
            for name in dirnames + filenames:
                if os.path.islink(os.path.join(dirpath, name)):
                    shutil.rmtree(dest)
                    self.log.error("Refusing submission %s: a link appeared while copying", src)
                    self.refused.append((os.path.basename(src), "a link appeared while copying"))
                    return
