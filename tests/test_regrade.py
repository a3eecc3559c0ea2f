"""A term's regrades on a real course directory: every row of the grades CSV right after each.

Three Canvas students submit ``rnn_bptt``; the instructor collects, autogrades, grades
the written answers (as formgrader stores them, through nbgrader's API) and exports.
Then, each followed by an export whose every row is checked:

1. the blank student resubmits, late, a correct notebook: collect, ``autograde``
   regrades only that student and says why it skipped the others;
2. ``grade`` (``make grade``) with nothing new: everyone skipped;
3. ``autograde --force`` (a grader fix): everyone regraded, manual grades kept graded;
4. ``grade --students <id> --force``: one student regraded, the class report keeps all;
5. a student changes one written answer and resubmits: that answer needs grading again,
   the other stays graded;
6. a per-day late policy with one student's extension, applied at export.
"""

from __future__ import annotations

import csv
import datetime
import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "lms"))
import canvas_course as cc
from canvas_course import A

pytestmark = pytest.mark.slow

GOOD, WRONG, BLANK = "51001", "51002", "51003"
WRITTEN = {"written_spectral_radius": "Orthogonal times rho.", "written_clipping": "Global norm."}
MANUAL = {"written_spectral_radius": 2.0, "written_clipping": 1.5}
T0 = (2027, 2, 1, 10, 0, 0)  # on time
T_LATE = (2027, 2, 3, 9, 30, 0)  # 1 day 9.5 h after the due date below
DUE = "2027-02-02 00:00 UTC"


def _zip(root: Path, name: str, files: dict[str, tuple[tuple[int, ...], bytes]]) -> None:
    archive = root / "downloaded" / A / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive / name, "w") as zf:
        for member, (when, data) in files.items():
            zf.writestr(zipfile.ZipInfo(member, date_time=when), data)


def _cli(course: cc.Course, step: str, *args: str) -> str:
    return cc.lms(course, step, *args)


def _grades(root: Path) -> dict[str, str]:
    """User id -> the points the Canvas import gives ("" = left blank)."""
    with (root / "exports" / A / "canvas-grades.csv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return {r[1]: r[5] for r in rows[2:]}


def _summary(root: Path) -> dict[str, dict[str, str]]:
    with (root / "exports" / A / "summary.csv").open(encoding="utf-8") as f:
        return {r["user_id"]: r for r in csv.DictReader(f)}


def _export(course: cc.Course, step: str) -> dict[str, str]:
    _cli(course, step, "grades", A)
    return _grades(course.root)


@pytest.fixture(scope="module")
def term(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("term")
    shutil.copy(cc.ROOT / "nbgrader_config.py", root)
    shutil.copytree(cc.ROOT / "solutions" / A, root / "solutions" / A)
    course = cc.Course(root)
    cc.run(course, "release", "nbgrader", "generate_assignment", A, "--force")
    solution = cc.fx.solution_sources(root, A)
    wrong = cc.fx.mistake("forgot_next_step_gradient").apply(solution)
    _zip(
        root,
        "submissions-1.zip",
        {
            f"good_{GOOD}_9001_{A}.ipynb": (T0, cc._notebook(root, solution, WRITTEN)),
            f"wrong_{WRONG}_9002_{A}.ipynb": (T0, cc._notebook(root, wrong, WRITTEN)),
            f"blank_{BLANK}_9003_{A}.ipynb": (T0, cc._notebook(root, {})),
        },
    )
    steps: dict[str, dict] = {}
    _cli(course, "collect", "collect", A)
    steps["collect"] = {"log": course.logs["collect"]}
    _cli(course, "autograde", "autograde", A, "--jobs", "1", "--no-progress")
    steps["autograde"] = {"log": course.logs["autograde"]}
    for student in (GOOD, WRONG):
        cc.grade_manually(root, student, MANUAL)
    steps["graded"] = {"grades": _export(course, "export-1"), "summary": _summary(root)}

    # 1. the blank student resubmits, late, a correct notebook
    _zip(
        root,
        "submissions-2.zip",
        {f"blank_LATE_{BLANK}_9010_{A}-1.ipynb": (T_LATE, cc._notebook(root, solution, WRITTEN))},
    )
    _cli(course, "collect-2", "collect", A)
    _cli(course, "autograde-2", "autograde", A, "--jobs", "1", "--no-progress")
    steps["resubmitted"] = {"log": course.logs["autograde-2"], "grades": _export(course, "x2")}
    # 2. nothing new
    _cli(course, "grade-3", "grade", A, "--jobs", "1", "--no-progress")
    steps["unchanged"] = {"log": course.logs["grade-3"], "grades": _export(course, "x3")}
    # 3. a grader fix: regrade everyone
    _cli(course, "force-4", "autograde", A, "--force", "--jobs", "1", "--no-progress")
    steps["forced"] = {"log": course.logs["force-4"], "grades": _export(course, "x4")}
    # 4. one student
    args = ("grade", A, "--students", WRONG, "--force", "--jobs", "1", "--no-progress")
    _cli(course, "subset-5", *args)
    report = root / "grading-report" / A / "grades.csv"
    steps["subset"] = {
        "log": course.logs["subset-5"],
        "grades": _export(course, "x5"),
        "report": {r["student"] for r in csv.DictReader(report.open())},
    }
    # 5. a changed written answer
    changed = {**WRITTEN, "written_clipping": "Global norm, so the direction is kept."}
    _zip(
        root,
        "submissions-3.zip",
        {f"good_{GOOD}_9020_{A}.ipynb": (T0, cc._notebook(root, solution, changed))},
    )
    _cli(course, "collect-6", "collect", A)
    _cli(course, "autograde-6", "autograde", A, "--jobs", "1", "--no-progress")
    _cli(course, "written-6", "written", A)
    steps["rewritten"] = {
        "log": course.logs["autograde-6"],
        "written": course.logs["written-6"],
        "grades": _export(course, "x6"),
    }
    # 6. a late policy, with an extension for the wrong student (who was on time anyway)
    with (root / "nbgrader_config.py").open("a") as f:
        f.write(
            f'\nc.LatePolicy.due = {{"{A}": "{DUE}"}}\n'
            'c.LatePolicy.kind = "per_day"\n'
            "c.LatePolicy.percent_per_day = 10.0\n"
            "c.LatePolicy.max_percent = 30.0\n"
            "c.LatePolicy.grace_minutes = 0.0\n"
            f'c.LatePolicy.extensions = {{"{A}": {{"{WRONG}": "2027-02-05 00:00 UTC"}}}}\n'
        )
    for student in (GOOD, BLANK):
        cc.grade_manually(root, student, MANUAL)
    steps["policy"] = {"grades": _export(course, "x7"), "summary": _summary(root)}
    for name, step in steps.items():  # the exported points after each step (pytest -s)
        if "grades" in step:
            print(f"\n{name}: {json.dumps(step['grades'], sort_keys=True)}")
    return {"root": root, "course": course, "steps": steps, "scores": _scores(root)}


def _scores(root: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {s.student.id: s.code_score for s in gb.assignment_submissions(A)}


def _points(term) -> dict[str, str]:
    """What each student should have in the export, from the released notebook's points.

    The solution earns every automatic point plus the manual ones it was given; the wrong
    rnn_backward loses the points of exactly the tests its mistake breaks (the functions
    that do not call it keep theirs).
    """
    tests = {}
    for cell in cc.released(term["root"])["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            tests[meta["grade_id"]] = float(meta["points"])
    lost = sum(tests[grade_id] for grade_id in WRONG_BREAKS)
    full = sum(tests.values()) + sum(MANUAL.values())
    return {"good": f"{full:g}", "wrong": f"{full - lost:g}", "auto": sum(tests.values())}


WRONG_BREAKS = cc.fx.mistake("forgot_next_step_gradient").breaks


def test_first_export_has_every_student_right(term):
    p = _points(term)
    assert {"test_rnn_backward", "test_char_lm_loss"} == WRONG_BREAKS
    # the blank notebook: nbgrader scores unanswered written questions 0 by itself
    assert term["steps"]["graded"]["grades"] == {GOOD: p["good"], WRONG: p["wrong"], BLANK: "0"}


def test_collect_records_the_lms_time_and_upload_for_nbgrader(term):
    root = term["root"]
    stamp = (root / "submitted" / BLANK / A / "timestamp.txt").read_text()
    assert stamp == "2027-02-03 09:30:00.000000 UTC"
    record = json.loads((root / "submitted" / BLANK / A / "lms.json").read_text())
    assert record["upload_id"] == "9010" and record["late"] is True


def test_a_late_resubmission_is_regraded_and_the_others_skipped(term):
    step = term["steps"]["resubmitted"]
    assert f"skipped {GOOD}: unchanged since it was graded" in step["log"]
    assert f"skipped {WRONG}: unchanged since it was graded" in step["log"]
    assert f"skipped {BLANK}" not in step["log"]
    p = _points(term)
    assert step["grades"] == {GOOD: p["good"], WRONG: p["wrong"], BLANK: ""}  # written: to grade
    assert term["scores"][BLANK] == p["auto"]


def test_a_regrade_without_changes_skips_everyone(term):
    step = term["steps"]["unchanged"]
    assert all(f"skipped {s}: unchanged" in step["log"] for s in (GOOD, WRONG, BLANK))
    p = _points(term)
    assert step["grades"] == {GOOD: p["good"], WRONG: p["wrong"], BLANK: ""}


def test_a_forced_regrade_keeps_the_manual_grades_graded(term):
    step = term["steps"]["forced"]
    assert "skipped" not in step["log"]
    p = _points(term)
    assert step["grades"] == {GOOD: p["good"], WRONG: p["wrong"], BLANK: ""}


def test_a_subset_regrade_keeps_the_class_report_whole(term):
    step = term["steps"]["subset"]
    p = _points(term)
    assert step["grades"] == {GOOD: p["good"], WRONG: p["wrong"], BLANK: ""}
    assert step["report"] == {GOOD, WRONG, BLANK}


def test_a_changed_written_answer_needs_grading_again_and_only_it(term):
    step = term["steps"]["rewritten"]
    assert f"skipped {GOOD}" not in step["log"]
    assert step["grades"] == {GOOD: "", WRONG: _points(term)["wrong"], BLANK: ""}
    line = next(ln for ln in step["written"].splitlines() if ln.startswith(GOOD))
    written = [
        c["metadata"]["nbgrader"]["grade_id"]
        for c in cc.released(term["root"])["cells"]
        if c["metadata"].get("nbgrader", {}).get("grade") and c["cell_type"] == "markdown"
    ]
    # every other written cell stays graded (or blank, scored 0); only the changed one waits
    assert line.split() == [GOOD, str(len(written) - 1), "written_clipping"]


def test_the_late_policy_applies_at_export_and_says_what_it_did(term):
    step = term["steps"]["policy"]
    # blank: 2 started days late -> 20 % off; wrong: extension, on time; good: on time
    p = _points(term)
    late = f"{round(0.8 * float(p['good']), 2):g}"
    assert step["grades"] == {GOOD: p["good"], WRONG: p["wrong"], BLANK: late}
    row = step["summary"][BLANK]
    assert row["late"] == "True" and row["late_percent"] == "20"
    assert row["days_late"] == "1.40" and "2 started day(s) after the due date" in row["late_rule"]
    assert step["summary"][WRONG]["late_rule"] == "on time"
    assert step["summary"][WRONG]["deadline"].startswith("2027-02-05T00:00")
    assert "10% per started day late, at most 30%" in row["late_policy"]


def test_the_policy_is_checked_when_it_is_read():
    from rnn_grader.lms.lateness import LatePolicy

    with pytest.raises(ValueError, match="kind must be one of"):
        LatePolicy(kind="weekly")
    with pytest.raises(ValueError, match="cannot read the time"):
        LatePolicy(due={A: "next friday"})
    rule = LatePolicy(kind="flat", flat_percent=25.0).deduction(A, "x", None, lms_late=True)
    assert rule.percent == 25.0  # without a due date, the LMS's flag decides
    utc = datetime.UTC
    at = datetime.datetime(2027, 2, 2, 0, 3, tzinfo=utc)
    policy = LatePolicy(kind="per_day", due={A: DUE}, percent_per_day=5, grace_minutes=5)
    assert policy.deduction(A, "x", at, lms_late=True).percent == 0.0  # within the grace
