"""``nbgrader collect`` through the hardened exchange: only folders that are really the student's.

The exchange's ``inbound`` folder is written by every student. Here, as root, folders are
created owned by system accounts standing for students (``nobody``, ``daemon``, ``bin``):
a genuine submission, a later one forged in another student's name, one whose notebook
is a symlink to the instructor's source, one with a hard link to it, and one for a user
that does not exist. Collection must take each student's newest genuine folder and
refuse the rest, saying why.
"""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "attacks"))

import toycourse as tc

from rnn_grader.autograde.exchange import SubmissionRefused, check_tree

pytestmark = pytest.mark.slow

EARLY = "2026-01-15 10:00:00.000000 UTC"
LATE = "2026-01-15 11:00:00.000000 UTC"


def _uid(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def _folder(inbound: Path, student: str, stamp: str, owner: int) -> Path:
    folder = inbound / f"{student}+{tc.ASSIGNMENT}+{stamp}"
    folder.mkdir()
    (folder / "timestamp.txt").write_text(stamp)
    os.chown(folder / "timestamp.txt", owner, owner)
    os.chown(folder, owner, owner)
    return folder


def _notebook(folder: Path, nb, owner: int) -> None:
    path = folder / f"{tc.ASSIGNMENT}.ipynb"
    nbformat.write(nb, path)
    os.chown(path, owner, owner)


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    if os.getuid() != 0:
        pytest.fail("this test creates files owned by other users: it needs root")
    exchange = tmp_path_factory.mktemp("exchange")
    root = tc.make_course(
        tmp_path_factory.mktemp("course"), extra=f"c.Exchange.root = {str(exchange)!r}\n"
    )
    inbound = exchange / "toy-course" / "inbound"
    inbound.mkdir(parents=True)
    source = root / "source" / tc.ASSIGNMENT / f"{tc.ASSIGNMENT}.ipynb"
    nobody, daemon, bin_ = _uid("nobody"), _uid("daemon"), _uid("bin")
    # nobody: a genuine submission, then a later one forged by daemon in nobody's name
    _notebook(_folder(inbound, "nobody", EARLY, nobody), tc.answered(root, tc.CORRECT), nobody)
    _notebook(_folder(inbound, "nobody", LATE, daemon), tc.released(root), daemon)
    # daemon: the notebook is a symlink to the instructor's source
    link = _folder(inbound, "daemon", EARLY, daemon) / f"{tc.ASSIGNMENT}.ipynb"
    link.symlink_to(source)
    os.lchown(link, daemon, daemon)
    # bin: the notebook is a hard link to a copy of the source owned by bin
    stolen = exchange / "stolen.ipynb"
    stolen.write_bytes(source.read_bytes())
    os.chown(stolen, bin_, bin_)
    os.link(stolen, _folder(inbound, "bin", EARLY, bin_) / f"{tc.ASSIGNMENT}.ipynb")
    # a user that does not exist
    ghost = _folder(inbound, "no-such-user-rnng", EARLY, nobody)
    _notebook(ghost, tc.answered(root, tc.CORRECT), nobody)
    done = tc.nbgrader(root, "collect", tc.ASSIGNMENT, check=False)
    return {"root": root, "done": done, "log": done.stdout + done.stderr}


def test_the_students_own_newest_genuine_submission_is_collected(collected):
    path = collected["root"] / "submitted" / "nobody" / tc.ASSIGNMENT
    assert (path / "timestamp.txt").read_text() == EARLY
    got = nbformat.read(path / f"{tc.ASSIGNMENT}.ipynb", as_version=4)
    want = tc.answered(collected["root"], tc.CORRECT)
    assert [c.source for c in got.cells] == [c.source for c in want.cells]


@pytest.mark.parametrize(
    ("folder", "reason"),
    [
        (f"nobody+toy+{LATE}", "not by the student"),
        (f"daemon+toy+{EARLY}", "symbolic link"),
        (f"bin+toy+{EARLY}", "hard link"),
        (f"no-such-user-rnng+toy+{EARLY}", "no Unix user"),
    ],
)
def test_forged_and_linked_submissions_are_refused_with_the_reason(collected, folder, reason):
    lines = [ln for ln in collected["log"].splitlines() if f"Refusing submission {folder}" in ln]
    assert lines and reason in lines[0], collected["log"][-3000:]


@pytest.mark.parametrize("student", ["daemon", "bin", "no-such-user-rnng"])
def test_refused_students_have_no_submission(collected, student):
    assert not (collected["root"] / "submitted" / student).exists()


def test_check_tree_refuses_a_symlinked_folder(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(SubmissionRefused, match="not a directory"):
        check_tree(tmp_path / "link", os.getuid())
    check_tree(real, os.getuid())  # a plain folder of the right owner passes
