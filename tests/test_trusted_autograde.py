"""Real ``nbgrader autograde`` / ``generate_feedback`` with the trusted back end installed."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "attacks"))

import toycourse as tc

pytestmark = pytest.mark.slow

WRONG_AFFINE = "def affine(x, W, b):\n    return x @ W\n"
HONEST = {
    "correct": tc.CORRECT,
    "blank": None,
    "wrong_affine": {**tc.CORRECT, "affine": WRONG_AFFINE},
    "no_stabilization": {  # right on public cases, overflows on the hidden ones
        **tc.CORRECT,
        "softmax": (
            "def softmax(z):\n    e = np.exp(z)\n    return e / e.sum(axis=-1, keepdims=True)\n"
        ),
    },
}


def _submit_all(root: Path, *, hostile: bool) -> None:
    for student, answers in HONEST.items():
        nb = tc.released(root) if answers is None else tc.answered(root, answers)
        tc.submit(root, student, nb)
    if not hostile:  # stock nbgrader aborts the whole batch on a duplicated grade id
        return
    # tampered copy: correct answers, the softmax test deleted, the affine test edited
    # (code and points), an answer cell duplicated, and a forged extra test cell
    nb = tc.answered(root, tc.CORRECT)
    cells = []
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid == "test_softmax":
            continue
        if gid == "test_affine":
            cell.source = "print('all good')"
            cell.metadata.nbgrader["points"] = 100
        cells.append(cell)
        if gid == "affine":
            copy = nbformat.from_dict(dict(cell))
            copy["id"] = "duplicate-answer"
            cells.append(copy)
    forged = nbformat.v4.new_code_cell("pass")
    forged.metadata["nbgrader"] = {
        "grade_id": "test_bonus",
        "grade": True,
        "points": 50,
        "solution": False,
        "locked": True,
        "schema_version": 3,
    }
    nb.cells = [*cells, forged]
    tc.submit(root, "tampered", nb)
    tc.submit(root, "corrupt", "{ this is not a notebook")


@pytest.fixture(scope="module")
def courses(tmp_path_factory):
    trusted = tc.make_course(tmp_path_factory.mktemp("trusted"))
    stock = tc.make_course(tmp_path_factory.mktemp("stock"), trusted=False)
    _submit_all(trusted, hostile=True)
    _submit_all(stock, hostile=False)
    done = tc.nbgrader(trusted, "autograde", tc.ASSIGNMENT, check=False)
    tc.nbgrader(stock, "autograde", tc.ASSIGNMENT, check=False)
    tc.nbgrader(trusted, "generate_feedback", tc.ASSIGNMENT, "--force", check=False)
    return {"trusted": trusted, "stock": stock, "log": done.stdout + done.stderr}


def test_the_trusted_back_end_was_used(courses):
    assert "Trusted grading of correct/toy/toy" in courses["log"]
    assert "IPKernelApp" not in courses["log"]


def test_correct_submission_gets_full_marks(courses):
    assert tc.scores(courses["trusted"], "correct") == tc.POINTS


def test_blank_submission_gets_zero(courses):
    assert tc.scores(courses["trusted"], "blank") == {"test_affine": 0.0, "test_softmax": 0.0}


@pytest.mark.parametrize("student", sorted(HONEST))
def test_scores_match_in_kernel_grading_for_honest_submissions(courses, student):
    assert tc.scores(courses["trusted"], student) == tc.scores(courses["stock"], student)


def test_hidden_cases_catch_what_public_ones_miss(courses):
    assert tc.scores(courses["trusted"], "no_stabilization") == {
        "test_affine": 2.0,
        "test_softmax": 0.0,
    }


def test_tampering_does_not_change_what_is_tested_or_the_points(courses):
    from nbgrader.api import Gradebook

    assert tc.scores(courses["trusted"], "tampered") == tc.POINTS
    with Gradebook(f"sqlite:///{courses['trusted'] / 'gradebook.db'}") as gb:
        sub = gb.find_submission_notebook(tc.ASSIGNMENT, tc.ASSIGNMENT, "tampered")
        assert {g.name for g in sub.grades} == {"test_affine", "test_softmax", "written_max"}
        assert sub.max_score == 6.0


def test_invalid_notebook_is_flagged_and_others_graded(courses):
    root = courses["trusted"]
    assert not (root / "autograded" / "corrupt" / "toy").exists()
    assert (root / "autograded" / "correct" / "toy" / "toy.ipynb").exists()
    assert "corrupt" in courses["log"]


def test_gradebook_records_a_failure_message_in_the_notebook(courses):
    path = courses["trusted"] / "autograded" / "wrong_affine" / "toy" / "toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    (cell,) = [
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_affine"
    ]
    assert cell.outputs[0].output_type == "error"
    assert cell.outputs[0].ename == "AssertionError"
    assert "public case 1" in cell.outputs[0].evalue and "rtol" in cell.outputs[0].evalue


@pytest.mark.parametrize("student", ["correct", "wrong_affine"])
def test_feedback_shows_messages_but_no_hidden_test_code(courses, student):
    html = (courses["trusted"] / "feedback" / student / "toy" / "toy.html").read_text()
    assert "SECRET_REFERENCE" not in html
    assert "hidden=True" not in html and "BEGIN HIDDEN TESTS" not in html
    assert "Hidden tests: 3 more cases" in html
    if student == "wrong_affine":
        assert "rtol 1e-06" in html
    else:
        assert "affine: all 2 public and 3 hidden cases passed." in html


@pytest.mark.parametrize("assignment", ["rnn_bptt", "gated_cells", "deep_birnn"])
def test_course_assignment_correct_full_marks_blank_zero(tmp_path, repo_root, assignment):
    from nbgrader.api import Gradebook

    from rnn_grader.autograde import bench

    root = bench.make_course(repo_root, tmp_path / "course", assignment, trusted=True)
    bench.submissions(root, assignment, 2)  # s000_correct, s001_blank
    done = tc.nbgrader(root, "autograde", assignment, check=False)
    assert "IPKernelApp" not in done.stdout + done.stderr
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for student, full in (("s000_correct", True), ("s001_blank", False)):
            nb = gb.find_submission_notebook(assignment, assignment, student)
            tests = [g for g in nb.grades if g.cell_type == "code"]
            assert tests
            for g in tests:
                assert g.auto_score == (g.max_score if full else 0.0), (student, g.name)
