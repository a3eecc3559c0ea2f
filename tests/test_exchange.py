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
import subprocess
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


# --- races by a real user: the folder changes between the check and the copy ---------------

RACING_COLLECT = """
import os, subprocess, sys
from nbgrader.apps.nbgraderapp import main
from rnn_grader.autograde import exchange

attacker, victim, action = sys.argv[1:4]
original = exchange.check_tree


def racing(path, uid):
    original(path, uid)  # the folder passes its check, then its owner changes it
    if os.path.basename(path).startswith(attacker + "+"):
        script = {{
            "link": 'mv "$1" "$1.real" && ln -s "$2" "$1"',
            "delete": 'rm -rf "$1"',
        }}[action]
        subprocess.run(
            ["setpriv", f"--reuid={{uid}}", f"--regid={{uid}}", "--clear-groups",
             "sh", "-c", script, "sh", str(path), victim],
            check=True,
        )


exchange.check_tree = racing
sys.argv = ["nbgrader", "collect", {assignment!r}]
main()
"""


@pytest.fixture
def race(tmp_path):
    """A course whose exchange two real users (daemon, nobody) can reach, as nbgrader makes it."""
    import shutil
    import tempfile

    if os.getuid() != 0:
        pytest.fail("this test acts as other users: it needs root")
    exchange = Path(tempfile.mkdtemp(prefix="rnng-exchange-"))
    exchange.chmod(0o755)
    root = tc.make_course(tmp_path / "course", extra=f"c.Exchange.root = {str(exchange)!r}\n")
    inbound = exchange / "toy-course" / "inbound"
    inbound.mkdir(parents=True)
    (exchange / "toy-course").chmod(0o755)
    inbound.chmod(0o733)  # nbgrader's inbound: everyone writes, nobody lists, not sticky
    victim = _folder(inbound, "nobody", EARLY, _uid("nobody"))
    _notebook(victim, tc.answered(root, tc.CORRECT), _uid("nobody"))
    attacker = _folder(inbound, "daemon", EARLY, _uid("daemon"))
    _notebook(attacker, tc.released(root), _uid("daemon"))
    yield {"root": root, "victim": victim, "inbound": inbound}
    shutil.rmtree(exchange, ignore_errors=True)


def _racing_collect(race: dict, action: str) -> subprocess.CompletedProcess:
    code = RACING_COLLECT.format(assignment=tc.ASSIGNMENT)
    return subprocess.run(
        [sys.executable, "-c", code, "daemon", str(race["victim"]), action],
        cwd=race["root"],
        env=tc.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_folder_swapped_for_a_link_after_its_check_is_refused(race):
    done = _racing_collect(race, "link")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "Refusing submission daemon+toy+" in log
    submitted = race["root"] / "submitted"
    assert not (submitted / "daemon").exists()  # never the victim's notebook under her name
    got = nbformat.read(submitted / "nobody" / tc.ASSIGNMENT / f"{tc.ASSIGNMENT}.ipynb", 4)
    assert [c.source for c in got.cells] == [
        c.source for c in tc.answered(race["root"], tc.CORRECT).cells
    ]
    assert os.stat(race["inbound"]).st_mode & 0o1000  # sticky from now on


def test_a_folder_deleted_while_it_is_collected_fails_alone(race):
    done = _racing_collect(race, "delete")
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "1 submission folder(s) were not collected: daemon+toy+" in log
    assert not (race["root"] / "submitted" / "daemon").exists()
    assert (race["root"] / "submitted" / "nobody" / tc.ASSIGNMENT / "toy.ipynb").is_file()


def test_the_copy_refuses_a_link_inside_the_folder(tmp_path):
    from rnn_grader.autograde.exchange import CopyRules, copy_tree

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.ipynb").write_text("{}")
    (src / "link.ipynb").symlink_to(src / "a.ipynb")
    with pytest.raises(SubmissionRefused, match="symbolic link"):
        copy_tree(src, tmp_path / "dest", os.getuid(), CopyRules(["*.ipynb"], [], 10**6, 10**7))
