"""``nbgrader collect`` that refuses forged and linked submissions (JupyterHub exchange).

In nbgrader's exchange every student writes ``<student>+<assignment>+<timestamp>``
folders into a shared ``inbound`` directory, and ``collect`` copies the newest folder
of each student into ``submitted/``. Stock nbgrader trusts the folder *name*: it only
warns when the folder belongs to someone else, it copies symlinks by following them,
one failing copy stops the whole collection, and an update deletes the old copy before
the new one is safely in place.

:class:`HardenedExchangeCollect` (installed by ``configure(c)`` as
``ExchangeFactory.collect``) accepts a folder only if the folder and everything in it
are owned by the Unix user whose name the folder claims, and are directories or regular
files with a single link: no symlinks, hard links, devices, sockets or pipes. A folder
that fails is refused (an error in the log, never copied), and that student's newest
*valid* folder is collected instead.

The copy itself never trusts a path twice (:func:`copy_tree`): every directory and file
is opened relative to its parent's descriptor with ``O_NOFOLLOW``, and checked (type,
owner, links, size) on the descriptor it is read through. A student who swaps her folder
for a link to someone else's after the check only gets her submission refused; one who
deletes her files while they are copied only fails her own collection. The copy goes to
a new folder that replaces the student's previous one only once it is complete. Every
per-student error is reported and skipped, and when the instructor owns ``inbound`` its
sticky bit is set, so that no student can rename or delete another's folder.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import pwd
import shutil
import stat
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.default.collect import ExchangeCollect, groupby

#: Flags of every open in the inbound tree: never through a link, never blocking on a FIFO.
OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


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
            _check_entry(st, rel, uid)


def _check_entry(st: os.stat_result, rel: str, uid: int) -> None:
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


class CopyRules:
    """What a copy takes: nbgrader's include and exclude globs and its size limits."""

    def __init__(
        self,
        include: list[str] | None,
        exclude: list[str] | None,
        max_file_bytes: int,
        max_dir_bytes: int,
    ) -> None:
        self.include = include or []
        self.exclude = exclude or []
        self.max_file_bytes = max_file_bytes
        self.max_dir_bytes = max_dir_bytes
        self.total = 0

    def excluded(self, name: str) -> bool:
        return any(fnmatch.fnmatch(name, glob) for glob in self.exclude)

    def included(self, name: str) -> bool:
        return not self.include or any(fnmatch.fnmatch(name, glob) for glob in self.include)


def copy_tree(src: str | os.PathLike, dest: Path, uid: int, rules: CopyRules) -> None:
    """Copy the folder ``src``, owned by ``uid``, to the new folder ``dest``, by descriptors.

    Raises ``SubmissionRefused`` (a link, a special file, a foreign owner, a hard link,
    too much data) or ``OSError`` (a file vanished): ``dest`` may then be incomplete.
    """
    try:
        fd = os.open(src, OPEN_DIR)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SubmissionRefused("is not a directory (a symlink or a file)") from None
        raise
    try:
        top = os.fstat(fd)
        if top.st_uid != uid:
            raise SubmissionRefused(f"is owned by uid {top.st_uid}, not by the student (uid {uid})")
        dest.mkdir(parents=True)
        _copy_dir(fd, dest, uid, rules, "")
    finally:
        os.close(fd)


def _copy_dir(dir_fd: int, dest: Path, uid: int, rules: CopyRules, rel: str) -> None:
    for name in sorted(os.listdir(dir_fd)):
        where = os.path.join(rel, name)
        if rules.excluded(name):
            continue
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        _check_entry(st, where, uid)
        if stat.S_ISDIR(st.st_mode):
            try:
                child = os.open(name, OPEN_DIR, dir_fd=dir_fd)
            except OSError as exc:
                raise SubmissionRefused(
                    f"{where} changed while it was copied ({exc.strerror})"
                ) from None
            try:
                _check_entry(os.fstat(child), where, uid)
                (dest / name).mkdir()
                _copy_dir(child, dest / name, uid, rules, where)
            finally:
                os.close(child)
        elif rules.included(name) or where == "timestamp.txt":  # nbgrader's own record
            _copy_file(dir_fd, name, dest / name, uid, rules, where)


def _copy_file(dir_fd: int, name: str, dest: Path, uid: int, rules: CopyRules, rel: str) -> None:
    try:
        fd = os.open(name, OPEN_FILE, dir_fd=dir_fd)
    except OSError as exc:
        raise SubmissionRefused(f"{rel} changed while it was copied ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        _check_entry(st, rel, uid)
        if st.st_size > rules.max_file_bytes:
            return  # nbgrader's rule: a file over CourseDirectory.max_file_size is left out
        data = f.read(rules.max_file_bytes + 1)
    rules.total += len(data)
    if len(data) > rules.max_file_bytes or rules.total > rules.max_dir_bytes:
        raise SubmissionRefused("is larger than CourseDirectory.max_dir_size allows")
    dest.write_bytes(data)


class HardenedExchangeCollect(ExchangeCollect):
    """``ExchangeCollect`` that checks ownership, copies by descriptors and isolates failures."""

    def _valid(self, rec: dict) -> bool:
        path = os.path.join(self.inbound_path, rec["filename"])
        try:
            check_tree(path, student_uid(rec["username"]))
        except (SubmissionRefused, OSError) as exc:
            self._refuse(rec["filename"], str(exc))
            return False
        return True

    def _refuse(self, filename: str, reason: str) -> None:
        self.log.error("Refusing submission %s: %s", filename, reason)
        self.refused.append((filename, reason))

    def init_src(self) -> None:
        super().init_src()  # paths, permissions and the due date
        self.refused: list[tuple[str, str]] = []
        self._protect_inbound()
        student = self.coursedir.student_id or "*"
        pattern = f"{student}+{self.coursedir.assignment_id}+*"
        records = [self._path_to_record(str(p)) for p in Path(self.inbound_path).glob(pattern)]
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                duedate = gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                duedate = None
        self.src_records = []
        groups = groupby(records, lambda item: item["username"])
        for username in sorted(groups):
            ordered = self._sort_by_timestamp(groups[username])
            if duedate is not None and self.before_duedate:
                ordered = [r for r in ordered if r["timestamp"] <= duedate] + [
                    r for r in ordered if r["timestamp"] > duedate
                ]
            for rec in ordered:  # newest first: the newest folder that is really theirs
                if self._valid(rec):
                    self.src_records.append(rec)
                    break

    def _protect_inbound(self) -> None:
        """Set the sticky bit of ``inbound`` when this user owns it; warn when it is missing."""
        try:
            st = os.stat(self.inbound_path)
        except OSError:
            return
        if st.st_mode & stat.S_ISVTX:
            return
        if st.st_uid == os.geteuid():
            os.chmod(self.inbound_path, stat.S_IMODE(st.st_mode) | stat.S_ISVTX)
            self.log.info(
                "Set the sticky bit of %s: students cannot rename each other's folders",
                self.inbound_path,
            )
        else:
            self.log.warning(
                "%s is not sticky (chmod +t): a student can rename or delete another's folder",
                self.inbound_path,
            )

    def copy_files(self) -> None:
        """Collect each accepted folder; a failure is that student's alone, and is reported."""
        if not self.src_records:
            self.log.warning("No submissions of '%s' to collect", self.coursedir.assignment_id)
        for rec in self.src_records:
            try:
                self._collect_one(rec)
            except (SubmissionRefused, OSError) as exc:
                self._refuse(rec["filename"], str(exc))
        if self.refused:
            self.log.error(
                "%d submission folder(s) were not collected: %s",
                len(self.refused),
                "; ".join(f"{name} ({why})" for name, why in self.refused),
            )

    def _collect_one(self, rec: dict) -> None:
        student = rec["username"]
        src = os.path.join(self.inbound_path, rec["filename"])
        dest = Path(
            self.coursedir.format_path(
                self.coursedir.submitted_directory, student, self.coursedir.assignment_id
            )
        )
        if dest.is_dir():
            existing = self.coursedir.get_existing_timestamp(str(dest))
            newer = existing is None or rec["timestamp"] > existing
            other = self.before_duedate and existing != rec["timestamp"]
            if not ((self.update and newer) or other):
                self.log.info("No newer submission to collect: %s", student)
                return
        rules = CopyRules(
            list(self.coursedir.include),
            list(self.coursedir.ignore),
            1000 * self.coursedir.max_file_size,
            1000 * self.coursedir.max_dir_size,
        )
        incoming = dest.with_name(dest.name + ".incoming")
        shutil.rmtree(incoming, ignore_errors=True)
        try:
            copy_tree(src, incoming, student_uid(student), rules)
            check_tree(incoming, os.geteuid())  # what was written: plain files, ours
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        previous = dest.with_name(dest.name + ".previous")
        if dest.exists():
            shutil.rmtree(previous, ignore_errors=True)
            dest.rename(previous)
        incoming.rename(dest)
        shutil.rmtree(previous, ignore_errors=True)
        self.log.info("Collected submission: %s %s", student, self.coursedir.assignment_id)
