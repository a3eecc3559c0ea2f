"""The LMS round trip on a real course: Canvas download -> nbgrader -> Canvas import files.

One grading run (``tests/fixtures/lms/canvas_course.py``) collects two Canvas downloads
with a late resubmission, a name with a space and accents and two students with the same
display name, autogrades them with ``nbgrader autograde``, stores a manual grade, exports
grades and names the feedback files. Pure parsing tests of Canvas's names come first.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "lms"))
import canvas_course as cc

from rnn_grader.lms import Canvas
from rnn_grader.lms.base import display_name

NOTEBOOKS = ["rnn_bptt"]


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("núñezjosé_late_48121_5203390_rnn_bptt-1.ipynb", ("48121", "núñezjosé", True, "5203390")),
        ("smithjohn_48122_5203312_rnn_bptt.ipynb", ("48122", "smithjohn", False, "5203312")),
        ("smithjohn_48123_5203320_rnn_bptt (1).ipynb", ("48123", "smithjohn", False, "5203320")),
        ("late_48125_5203400_rnn_bptt.ipynb", ("48125", "", True, "5203400")),
        ("o_neil_48126_5203401_rnn_bptt.ipynb", ("48126", "o_neil", False, "5203401")),
    ],
)
def test_canvas_file_names_give_user_id_name_lateness_and_upload(
    file_name: str, expected: tuple[str, str, bool, str]
) -> None:
    upload = Canvas().parse(file_name, NOTEBOOKS)
    assert upload is not None
    assert (upload.user_id, upload.name, upload.late, upload.upload_id) == expected
    assert upload.notebook == "rnn_bptt"


@pytest.mark.parametrize(
    "file_name", ["smithjohn_48122_5203313_notes.txt", "smithjohn_48122_5203314_rnn_bptt_v2.ipynb"]
)
def test_other_files_of_a_student_match_no_notebook(file_name: str) -> None:
    upload = Canvas().parse(file_name, NOTEBOOKS)
    assert upload is not None and upload.user_id == "48122" and upload.notebook == ""


@pytest.mark.parametrize("file_name", ["readme.txt", "rnn_bptt.ipynb", "smithjohn_rnn_bptt.ipynb"])
def test_names_outside_canvas_convention_are_not_parsed(file_name: str) -> None:
    assert Canvas().parse(file_name, NOTEBOOKS) is None


def test_nfd_and_nfc_accents_give_the_same_name() -> None:
    nfd = "nu\u0301n\u0303ezjose\u0301_48121_1_rnn_bptt.ipynb"
    assert Canvas().parse(nfd, NOTEBOOKS).name == "núñezjosé"


def test_display_names_lose_markup_but_keep_accents_and_apostrophes() -> None:
    assert display_name("Núñez, José") == "Núñez, José"
    assert (
        display_name("<img src=x onerror=alert(1)>O'Brien")
        == "img src=x onerror=alert(1)O\u2019Brien"
    )


def test_grades_file_cells_are_never_spreadsheet_formulas(tmp_path: Path) -> None:
    from rnn_grader.lms import GradeRow, RosterEntry

    rows = [GradeRow(RosterEntry("48127", '=HYPERLINK("http://x", "y")', section="@A"), 3.0)]
    Canvas().write_grades(rows, "Assignment 1", 22, tmp_path / "grades.csv")
    last = list(csv.reader((tmp_path / "grades.csv").open(encoding="utf-8")))[-1]
    assert last == ['\'=HYPERLINK("http://x", "y")', "48127", "", "", "'@A", "3"]


# --- the round trip on a real course ----------------------------------------------------


@pytest.fixture(scope="module")
def course() -> cc.Course:
    return cc.graded_course()


def _submitted(course: cc.Course) -> set[str]:
    return {p.name for p in (course.root / "submitted").iterdir()}


def test_collect_keys_students_by_lms_user_id(course: cc.Course) -> None:
    # two "smithjohn" stay two students; José's two uploads are one student
    assert _submitted(course) == {cc.JOSE, cc.SMITH_WRONG, cc.SMITH_BLANK}


def test_collect_keeps_the_latest_upload_and_records_lateness(course: cc.Course) -> None:
    folder = course.root / "submitted" / cc.JOSE / cc.A
    record = json.loads((folder / "lms.json").read_text())
    assert record["late"] is True and record["upload_id"] == "5203390"
    assert record["file_name"] == "rnn_bptt-1.ipynb"
    assert (record["name"], record["display_name"]) == ("núñezjosé", "Núñez, José")
    nb = json.loads((folder / "rnn_bptt.ipynb").read_text())
    answers = [c for c in nb["cells"] if cc.fx.grade_id(c) == "written_spectral_radius"]
    assert "onerror" in "".join(answers[0]["source"])  # the resubmission, not the blank
    smith = json.loads((course.root / "submitted" / cc.SMITH_WRONG / cc.A / "lms.json").read_text())
    assert smith["late"] is False
    log = course.logs["collect"]
    assert "superseded by a newer upload: núñezjosé_48121_5203311_rnn_bptt.ipynb" in log
    assert "ignored: smithjohn_48122_5203313_notes.txt" in log


def test_collect_stores_display_names_and_lms_ids_in_the_gradebook(course: cc.Course) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        students = {s.id: (s.last_name, s.first_name, s.lms_user_id) for s in gb.students}
    assert students[cc.JOSE] == ("Núñez", "José", cc.JOSE)
    assert students[cc.SMITH_WRONG] == (*students[cc.SMITH_BLANK][:2], cc.SMITH_WRONG)
    assert cc.JANE not in students


def test_autograde_log_has_no_checksum_or_sqlalchemy_noise(course: cc.Course) -> None:
    log = course.logs["autograde"]
    assert "Trusted grading of" in log  # the run really graded
    assert "has changed!" not in log
    assert "SAWarning" not in log
    # the difference between stored and released checksums is explained, once
    assert log.count("checksums in the gradebook include the hidden tests") == 1


def test_stored_checksums_differ_from_released_only_by_hidden_tests(course: cc.Course) -> None:
    import nbformat
    from nbgrader import utils
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import ClearHiddenTests

    released = nbformat.reads(json.dumps(cc.released(course.root)), as_version=4)
    checked = 0
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        for cell in released.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            if not gid.startswith("test_"):
                continue
            stored = gb.find_source_cell(gid, cc.A, cc.A)
            rebuilt = nbformat.from_dict(json.loads(json.dumps(cell)))
            rebuilt.source = stored.source
            assert utils.compute_checksum(rebuilt) == stored.checksum
            ClearHiddenTests().preprocess_cell(rebuilt, {}, 0)
            assert (
                utils.compute_checksum(rebuilt) == utils.compute_checksum(cell) != stored.checksum
            )
            checked += 1
    from rnn_grader.checks.registry import ASSIGNMENTS

    assert checked == len(ASSIGNMENTS[cc.A])  # one test cell per graded function


def _grades_csv(course: cc.Course) -> list[list[str]]:
    text = (course.root / "exports" / cc.A / "canvas-grades.csv").read_text(encoding="utf-8")
    return list(csv.reader(io.StringIO(text)))


def _points_possible(course: cc.Course) -> str:
    """The released notebook's points, automatic and manual, as the CSV writes them."""
    total = 0.0
    for cell in cc.released(course.root)["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            total += float(meta.get("points", 0))
    return f"{total:g}"


def test_grades_csv_has_the_header_canvas_import_expects(course: cc.Course) -> None:
    rows = _grades_csv(course)
    assert rows[0] == [
        "Student",
        "ID",
        "SIS User ID",
        "SIS Login ID",
        "Section",
        "Assignment 1 (7001)",
    ]
    assert rows[1][0].strip() == "Points Possible" and rows[1][5] == _points_possible(course)
    assert all(len(r) == 6 for r in rows)


def test_grades_csv_lists_only_submitters_with_manual_points_included(course: cc.Course) -> None:
    from nbgrader.api import Gradebook

    rows = {r[1]: r for r in _grades_csv(course)[2:]}
    assert set(rows) == {cc.JOSE, cc.SMITH_WRONG, cc.SMITH_BLANK}  # no row for Jane
    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        sub = gb.find_submission(cc.A, cc.JOSE)
        auto, total = sub.code_score, sub.score
    assert total == auto + 4.5  # the manual 2.5 + 2.0
    assert rows[cc.JOSE][:5] == ["Núñez, José", cc.JOSE, "S-1", "jnunez", "Section A"]
    assert float(rows[cc.JOSE][5]) == pytest.approx(total)
    # written answers not graded yet: left blank, so Canvas keeps its grade
    assert rows[cc.SMITH_WRONG][5] == ""
    assert rows[cc.SMITH_BLANK][0] == rows[cc.SMITH_WRONG][0] == "Smith, John"
    assert rows[cc.SMITH_BLANK][4] == "Section B"


def test_grades_summary_records_lateness_and_pending_grading(course: cc.Course) -> None:
    path = course.root / "exports" / cc.A / "summary.csv"
    rows = {r["user_id"]: r for r in csv.DictReader(path.open(encoding="utf-8"))}
    assert rows[cc.JOSE]["late"] == "True" and rows[cc.SMITH_WRONG]["late"] == "False"
    assert rows[cc.JOSE]["manual"] == "4.5"
    assert rows[cc.SMITH_WRONG]["needs_manual_grade"] == "True"
    assert "1 submitted late: 48121" in course.logs["grades"]


def test_feedback_files_are_named_for_canvas_reupload(course: cc.Course) -> None:
    bundle = course.root / "exports" / cc.A / "canvas-feedback.zip"
    with zipfile.ZipFile(bundle) as zf:
        names = sorted(zf.namelist())
    assert names == [
        f"núñezjosé_{cc.JOSE}_5203390_rnn_bptt_feedback.html",
        f"smithjohn_{cc.SMITH_WRONG}_5203312_rnn_bptt_feedback.html",
        f"smithjohn_{cc.SMITH_BLANK}_5203320_rnn_bptt_feedback.html",
    ]
    for name in names:  # Canvas routes a file by its first "_<user id>_<upload id>_"
        upload = Canvas().parse(name, [])
        assert upload is not None and f"_{upload.user_id}_{upload.upload_id}_" in name
    copied = course.root / "exports" / cc.A / "feedback" / names[2]
    original = course.root / "feedback" / cc.SMITH_BLANK / cc.A / "rnn_bptt.html"
    assert copied.read_bytes() == original.read_bytes()
