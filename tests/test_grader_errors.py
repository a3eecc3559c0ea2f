"""The grader's own failures stop grading loudly; they never become a student's zero.

An instructor bug is injected into the toy course's grading package
(:mod:`toygrading.broken`): a check whose hidden cases cannot be built, a reference that
raises, a comparison that always crashes, and one that crashes only on a wrong answer,
so only in the middle of a batch. ``nbgrader autograde`` and ``rnn-course grade`` must
stop with a non-zero exit and a message naming the check and the cause, and no student
may have a score recorded for a test cell by the failed run. A Dask cluster that cannot
grade stops ``rnn-course grade`` the same way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "attacks"))
import toycourse as tc

pytestmark = pytest.mark.slow

BROKEN = "c.TrustedExecute.grading_package = 'toygrading.broken'\n"
WRONG_AFFINE = {**tc.CORRECT, "affine": "def affine(x, W, b):\n    return x @ W\n"}
BUGS = {
    "cases": ("check softmax", "hidden cases cannot be built", "TypeError"),
    "reference": ("check softmax", "reference fails", "ZeroDivisionError"),
    "compare": ("check affine", "comparison crashed", "KeyError"),
    "compare_wrong": ("check affine", "comparison crashed", "IndexError"),
}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tc.make_course(tmp_path_factory.mktemp("broken"), extra=BROKEN)
    tc.submit(root, "ada", tc.answered(root, tc.CORRECT))
    tc.submit(root, "bob", tc.answered(root, WRONG_AFFINE))
    tc.submit(root, "cy", tc.answered(root, tc.CORRECT))
    return root


def _run(root: Path, bug: str, *cmd: str) -> subprocess.CompletedProcess:
    env = {**tc.env(), "TOY_BUG": bug}
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)


def _recorded(root: Path) -> dict[str, list[float | None]]:
    """Auto scores recorded for each student's test cells."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {
            s.student.id: [g.auto_score for g in s.notebooks[0].grades if g.name in tc.POINTS]
            for s in gb.assignment_submissions(tc.ASSIGNMENT)
        }


def _reset(root: Path) -> None:
    import shutil

    for folder in ("autograded", "feedback", "grading-report"):
        shutil.rmtree(root / folder, ignore_errors=True)
    (root / "gradebook.db").unlink(missing_ok=True)
    tc.nbgrader(root, "generate_assignment", tc.ASSIGNMENT, "--force")


@pytest.mark.parametrize("bug", list(BUGS))
def test_nbgrader_autograde_stops_and_records_no_score(course, bug):
    _reset(course)
    done = _run(course, bug, "nbgrader", "autograde", tc.ASSIGNMENT)
    assert done.returncode != 0
    check, cause, kind = BUGS[bug]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("rnn_grader.autograde.errors.GraderError: " + check), last
    assert cause in last and kind in last
    # the batch stopped at the first student it could not grade: nobody got a zero
    scores = _recorded(course)
    if bug == "compare_wrong":  # ada, before bob, is graded; cy, after bob, is not reached
        assert scores == {"ada": [2.0, 3.0], "bob": [None, None]}, scores
    else:
        assert all(v is None for vs in scores.values() for v in vs), scores


@pytest.mark.parametrize("bug", list(BUGS))
def test_rnn_course_grade_exits_2_naming_the_check(course, bug):
    _reset(course)
    cmd = [sys.executable, "-m", "rnn_grader.cli", "grade", tc.ASSIGNMENT, "--no-progress"]
    done = _run(course, bug, *cmd, "--jobs", "1")
    check, cause, _ = BUGS[bug]
    assert done.returncode == 2, done.stdout + done.stderr
    assert "grading stopped" in done.stderr and check in done.stderr and cause in done.stderr
    assert not (course / "grading-report" / tc.ASSIGNMENT / "grades.csv").exists()


def test_without_the_bug_the_same_course_grades(course):
    _reset(course)
    done = _run(course, "", "nbgrader", "autograde", tc.ASSIGNMENT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert tc.scores(course, "bob") == {"test_affine": 0.0, "test_softmax": 3.0}


def test_a_dask_cluster_that_cannot_grade_stops_grading(course, monkeypatch):
    from distributed import LocalCluster

    from rnn_grader.autograde import runner
    from rnn_grader.autograde.errors import GraderError

    _reset(course)

    def lost(*args, **kwargs):
        raise OSError("the worker lost its sandbox")

    monkeypatch.setattr(runner, "remote_phases", lost)
    monkeypatch.chdir(course)
    stopped = pytest.raises(GraderError, match=r"Dask cluster could not grade.*lost its sandbox")
    with LocalCluster(processes=False, n_workers=1, dashboard_address=None) as cluster, stopped:
        runner.grade(course, tc.ASSIGNMENT, scheduler=cluster.scheduler_address, progress=False)
    assert all(v is None for vs in _recorded(course).values() for v in vs)
