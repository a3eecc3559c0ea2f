"""The assignments under real nbgrader, on temporary copies of the course.

Each assignment gets its own copy (so the three batches run side by side): the released
notebooks are regenerated and compared with the committed ones, then solution, blank and
wrong submissions are autograded in one batch and their scores read from the gradebook.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "submissions"))
import cheats
import mistakes as fx

from rnn_grader import release

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
Scores = dict[str, dict[str, float]]  # student -> grade id -> score


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        ["nbgrader", *args],
        cwd=course,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_scores(course: Path, assignment: str) -> Scores:
    from nbgrader.api import Gradebook

    out: Scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(assignment):
            grades = sub.notebooks[0].grades
            out[sub.student.id] = {g.name: g.score for g in grades if g.name.startswith("test_")}
    return out


def max_points(nb: dict[str, Any]) -> dict[str, float]:
    return {
        fx.grade_id(c): float(c["metadata"]["nbgrader"]["points"])
        for c in nb["cells"]
        if fx.grade_id(c) and fx.grade_id(c).startswith("test_")
    }


def submissions(assignment: str) -> dict[str, dict[str, Any]]:
    """Student id -> notebook: the solution, the blank release, combined mistakes, ..."""
    solution = fx.solution_sources(ROOT, assignment)
    subs = {
        "solution": fx.notebook_with(ROOT, assignment, solution),
        "blank": fx.notebook_with(ROOT, assignment, {}),
    }
    for i, names in enumerate(fx.SUBMISSIONS[assignment], start=1):
        sources = solution
        for m in fx.combined(names):
            sources = m.apply(sources)
        subs[f"mistakes{i}"] = fx.notebook_with(ROOT, assignment, sources)
    # built from everything the repository ships, without the course secret
    subs["cheat_lookup"] = fx.notebook_with(
        ROOT, assignment, cheats.lookup_table_sources(ROOT, assignment)
    )
    if assignment == "rnn_bptt":
        subs["cheat_numeric"] = fx.notebook_with(
            ROOT, assignment, cheats.numerical_backward_sources(solution, assignment)
        )
        # first in the batch: a duplicated answer cell and a deleted test cell
        nb = copy.deepcopy(subs["solution"])
        cells = nb["cells"]
        k = next(i for i, c in enumerate(cells) if fx.grade_id(c) == "rnn_forward")
        dup = copy.deepcopy(cells[k])
        dup["id"] = "duplicate-cell"
        cells.insert(k + 1, dup)
        nb["cells"] = [c for c in cells if fx.grade_id(c) != "test_clip_grad_norm"]
        subs["aaa_edited"] = nb
    return subs


def grade_course(tmp: Path, assignment: str) -> dict[str, Any]:
    course = tmp / assignment
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
    ok(nbgrader(course, "generate_assignment", assignment, "--force"))
    for student, nb in submissions(assignment).items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        (folder / f"{assignment}.ipynb").write_text(json.dumps(nb))
        (folder / "timestamp.txt").write_text("2025-01-15 12:00:00.000000 UTC")
    result: dict[str, Any] = {"course": course}
    result["log"] = ok(nbgrader(course, "autograde", assignment, "--force")).stderr
    result["scores"] = read_scores(course, assignment)
    if assignment == "deep_birnn":  # the smallest batch, graded a second time
        ok(nbgrader(course, "autograde", assignment, "--force"))
        result["scores_again"] = read_scores(course, assignment)
    return result


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("courses")
    with ThreadPoolExecutor(max_workers=len(fx.ASSIGNMENTS)) as pool:
        futures = {a: pool.submit(grade_course, tmp, a) for a in fx.ASSIGNMENTS}
        return {a: f.result() for a, f in futures.items()}


def released(assignment: str) -> dict[str, Any]:
    return fx.load(ROOT / "assignments" / assignment / f"{assignment}.ipynb")


def comparable(nb: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (
            c["cell_type"],
            fx.source(c),
            json.dumps(c["metadata"].get("nbgrader", {}), sort_keys=True),
        )
        for c in nb["cells"]
    ]


@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_committed_student_notebooks_are_up_to_date(graded: dict, assignment: str) -> None:
    course = graded[assignment]["course"]
    fresh = fx.load(course / "assignments" / assignment / f"{assignment}.ipynb")
    fresh = release.link_notebook(fresh, release.book_base_url(ROOT / "_config.yml"), ROOT / "book")
    assert comparable(fresh) == comparable(released(assignment)), (
        f"assignments/{assignment} is stale: run `make release` and commit the result"
    )


@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_solutions_score_full_marks_and_blank_notebooks_zero(graded: dict, assignment: str) -> None:
    scores = graded[assignment]["scores"]
    full = max_points(released(assignment))
    assert scores["solution"] == full
    assert set(scores["blank"]) == set(full)
    assert all(v == 0 for v in scores["blank"].values())


@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_mistakes_lose_exactly_the_broken_tests_with_hints(graded: dict, assignment: str) -> None:
    scores = graded[assignment]["scores"]
    full = max_points(released(assignment))
    course = graded[assignment]["course"]
    for i, names in enumerate(fx.SUBMISSIONS[assignment], start=1):
        student = f"mistakes{i}"
        broken = set().union(*(m.breaks for m in fx.combined(names)))
        assert {g for g, s in scores[student].items() if s == 0} == broken, names
        assert all(scores[student][g] == full[g] for g in set(full) - broken), names
        nb = fx.load(course / "autograded" / student / assignment / f"{assignment}.ipynb")
        outputs = {  # messages with their wrapped lines joined back
            fx.grade_id(c): " ".join(json.dumps(c.get("outputs", [])).replace("\\n", " ").split())
            for c in nb["cells"]
            if fx.grade_id(c)
        }
        for m in fx.combined(names):
            assert m.hint in outputs[m.hint_test], (m.name, outputs[m.hint_test][:2000])
            # a check that fails only because it relies on the broken function says so
            for other in m.breaks - {m.hint_test, f"test_{m.cell}"}:
                assert f"your {m.cell} (test_{m.cell})" in outputs[other], (
                    m.name,
                    other,
                    outputs[other][:2000],
                )


def test_duplicated_and_deleted_cells_do_not_break_the_batch(graded: dict) -> None:
    scores = graded["rnn_bptt"]["scores"]
    # "aaa_edited" comes first; every later student is still graded
    assert {"aaa_edited", "solution", "blank", "mistakes1"} <= set(scores)
    full = max_points(released("rnn_bptt"))
    assert scores["solution"] == full
    # the deleted test cell is restored from the gradebook and scored
    assert "test_clip_grad_norm" in scores["aaa_edited"]
    assert scores["aaa_edited"]["test_clip_grad_norm"] == full["test_clip_grad_norm"]


@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_a_lookup_table_of_everything_public_earns_nothing(graded: dict, assignment: str) -> None:
    scores = graded[assignment]["scores"]["cheat_lookup"]
    assert set(scores) == set(max_points(released(assignment)))
    assert all(v == 0 for v in scores.values()), scores


def test_numerically_differentiated_backward_functions_earn_nothing(graded: dict) -> None:
    scores = graded["rnn_bptt"]["scores"]["cheat_numeric"]
    full = max_points(released("rnn_bptt"))
    backward = {"test_rnn_step_backward", "test_rnn_backward", "test_grad_norms_through_time"}
    # the character model's loss calls rnn_backward, and its training calls the loss
    calls_it = {"test_char_lm_loss", "test_train_char_lm"}
    assert {g for g, v in scores.items() if v == 0} == backward | calls_it
    assert all(scores[g] == full[g] for g in set(full) - backward - calls_it)
    course = graded["rnn_bptt"]["course"]
    nb = fx.load(course / "autograded" / "cheat_numeric" / "rnn_bptt" / "rnn_bptt.ipynb")
    outputs = {fx.grade_id(c): json.dumps(c.get("outputs", [])) for c in nb["cells"]}
    assert all("time limit" in outputs[g] for g in backward), {g: outputs[g] for g in backward}


def test_grading_twice_gives_identical_scores(graded: dict) -> None:
    assert graded["deep_birnn"]["scores"] == graded["deep_birnn"]["scores_again"]


def test_validate_passes_on_solution_and_fails_on_blank(tmp_path: Path) -> None:
    a = "deep_birnn"
    shutil.copytree(ROOT / "assignments" / a, tmp_path / a)
    shutil.copy(ROOT / "solutions" / a / f"{a}.ipynb", tmp_path / a / "solution.ipynb")
    solution = nbgrader(ROOT, "validate", str(tmp_path / a / "solution.ipynb"))
    blank = nbgrader(ROOT, "validate", str(tmp_path / a / f"{a}.ipynb"))
    assert "Success! Your notebook passes all the tests." in solution.stdout
    assert "NotImplementedError" in blank.stdout
    assert "Success!" not in blank.stdout
