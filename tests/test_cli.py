"""``rnn-course grade``: parallel and Dask trusted grading, report files and the gradebook."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "attacks"))

import toycourse as tc

pytestmark = pytest.mark.slow

SUBMISSIONS = {
    "ada": tc.CORRECT,
    "bob": {**tc.CORRECT, "affine": "def affine(x, W, b):\n    return x @ W\n"},
    "cy": None,
    "dee": {**tc.CORRECT, "softmax": "def softmax(z):\n    while True:\n        pass\n"},
}
EXPECTED_STATUS = {
    "ada": "ok",
    "bob": "partial",
    "cy": "failed",
    "dee": "timed out",
    "eve": "invalid notebook",
}


def _course(root: Path) -> Path:
    tc.make_course(root)
    for student, answers in SUBMISSIONS.items():
        tc.submit(
            root, student, tc.released(root) if answers is None else tc.answered(root, answers)
        )
    tc.submit(root, "eve", "not a notebook")
    return root


def _grade(root: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rnn_grader.cli", "grade", tc.ASSIGNMENT, "--no-progress", *args]
    return subprocess.run(
        cmd, cwd=root, env=tc.env(), capture_output=True, text=True, timeout=600, check=False
    )


def _assert_report_matches_gradebook(root: Path) -> None:
    folder = root / "grading-report" / tc.ASSIGNMENT
    for name in ("grades.csv", "pass_rates.csv", "histogram.png", "summary.txt"):
        assert (folder / name).stat().st_size > 0
    rows = {r["student"]: r for r in csv.DictReader((folder / "grades.csv").open())}
    assert {s: r["status"] for s, r in rows.items()} == EXPECTED_STATUS
    for student in SUBMISSIONS:
        assert float(rows[student]["score"]) == sum(
            v or 0.0 for v in tc.scores(root, student).values()
        )
    rates = {
        r["test"]: float(r["pass_rate"]) for r in csv.DictReader((folder / "pass_rates.csv").open())
    }
    assert rates == {"test_affine": 0.5, "test_softmax": 0.5}


def test_grade_with_two_jobs(tmp_path):
    root = _course(tmp_path / "course")
    done = _grade(root, "--jobs", "2")
    assert done.returncode == 1, done.stderr[-3000:]  # eve's notebook cannot be graded
    assert re.search(r"^dee\s+timed out\s+2 / 5$", done.stdout, re.M)
    assert re.search(r"^eve: .*not a readable notebook", done.stdout, re.M)
    _assert_report_matches_gradebook(root)
    again = _grade(root, "--jobs", "2")  # nothing changed: every graded student is skipped
    assert again.returncode == 1, again.stdout + again.stderr  # eve is tried again
    skipped = set(re.findall(r"^skipped (\w+): unchanged since it was graded", again.stdout, re.M))
    assert skipped == set(SUBMISSIONS)
    assert "eve" not in skipped  # never graded: tried again
    _assert_report_matches_gradebook(root)


def test_grade_fans_out_over_a_local_dask_cluster(tmp_path):
    from distributed import LocalCluster

    root = _course(tmp_path / "course")
    with LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        done = _grade(root, "--scheduler", cluster.scheduler_address)
    assert done.returncode == 1, done.stderr[-3000:]  # eve's notebook cannot be graded
    _assert_report_matches_gradebook(root)


def test_refuses_without_a_course(tmp_path):
    done = _grade(tmp_path)
    assert done.returncode == 2 and "nbgrader_config.py" in done.stderr
