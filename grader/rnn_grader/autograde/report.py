"""The class report: status table, grades CSV, score histogram, pass rates.

The report is read from the gradebook and the autograded notebooks, for every student
who submitted (:func:`class_results`), so a run that graded a few students updates their
rows and keeps everyone else's. Nothing here is HTML; student ids (submission folder
names) reach the CSV as text that a spreadsheet will not evaluate
(:func:`~rnn_grader.feedback.sanitize.spreadsheet_safe`).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rnn_grader.autograde.regrade import read_problem
from rnn_grader.autograde.text import printable
from rnn_grader.feedback.sanitize import spreadsheet_safe

STATUSES = ("ok", "partial", "failed", "timed out", "invalid notebook", "not graded")


@dataclass
class StudentResult:
    """The outcome of one student's submission."""

    student: str
    status: str  # one of STATUSES
    score: float
    max_score: float
    tests: dict[str, bool] = field(default_factory=dict)  # test grade id -> passed
    seconds: float = 0.0
    error: str = ""  # why the notebook was not graded, or what each failed test said


def class_results(root: Path, assignment: str, db_url: str) -> list[StudentResult]:
    """Every submission of ``assignment``: its autograded score and what each test said."""
    from nbgrader.api import Gradebook, MissingEntry
    from nbgrader.coursedir import CourseDirectory

    coursedir = CourseDirectory(root=str(root))
    submitted = root / coursedir.submitted_directory
    students = sorted(
        d.name for d in submitted.iterdir() if (d / assignment).is_dir()
    ) if submitted.is_dir() else []  # fmt: skip
    results = []
    with Gradebook(db_url) as gb:
        total = float(gb.find_assignment(assignment).max_code_score)
        for s in students:
            graded = Path(coursedir.format_path(coursedir.autograded_directory, s, assignment))
            outputs = _test_outputs(graded)
            problem = read_problem(root, assignment, s)
            try:
                sub = gb.find_submission(assignment, s)
                grades = [g for nb in sub.notebooks for g in nb.grades if g.cell_type == "code"]
            except MissingEntry:
                grades = []
            tests = {
                g.name: g.auto_score is not None and g.auto_score >= g.max_score
                for g in grades
                if g.name in outputs
            }
            score = sum(g.auto_score or 0.0 for g in grades if g.name in outputs)
            failures = [f"{gid}: {msg}" for gid, (_, msg) in outputs.items() if msg]
            if not outputs:
                status = "invalid notebook" if problem else "not graded"
            elif any(ename == "TimeoutError" for ename, _ in outputs.values()):
                status = "timed out"
            elif total and score >= total:
                status = "ok"
            else:
                status = "partial" if score > 0 else "failed"
            error = problem if not outputs else "; ".join(failures)
            results.append(StudentResult(s, status, score, total, tests, 0.0, error[:2000]))
    return results


def _test_outputs(folder: Path) -> dict[str, tuple[str, str]]:
    """Test grade id -> (exception name, message) from the autograded notebooks ("" passed)."""
    out: dict[str, tuple[str, str]] = {}
    for path in sorted(folder.glob("*.ipynb")):
        try:
            nb = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for cell in nb.get("cells", []):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.get("cell_type") != "code" or not meta.get("grade") or meta.get("solution"):
                continue
            errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
            first = errors[0] if errors else {}
            out[meta["grade_id"]] = (first.get("ename", ""), first.get("evalue", ""))
    return out


def status_table(results: list[StudentResult]) -> str:
    """A fixed-width table: student, status, score."""
    names = {r.student: printable(r.student, 80) for r in results}
    width = max([len("student")] + [len(n) for n in names.values()])
    lines = [f"{'student':<{width}}  {'status':<16}  score"]
    for r in results:
        lines.append(f"{names[r.student]:<{width}}  {r.status:<16}  {r.score:g} / {r.max_score:g}")
    counts = Counter(r.status for r in results)
    lines.append(", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]))
    return "\n".join(lines)


def pass_rates(results: list[StudentResult]) -> dict[str, float]:
    """Fraction of graded submissions passing each test cell."""
    tests = sorted({t for r in results for t in r.tests})
    graded = [r for r in results if r.tests]
    return {t: sum(r.tests.get(t, False) for r in graded) / max(1, len(graded)) for t in tests}


def write_report(results: list[StudentResult], folder: Path) -> dict[str, Path]:
    """Write ``grades.csv``, ``pass_rates.csv``, ``histogram.png`` and ``summary.txt``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        name: folder / name
        for name in ("grades.csv", "pass_rates.csv", "histogram.png", "summary.txt")
    }
    tests = sorted({t for r in results for t in r.tests})
    with paths["grades.csv"].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "status", "score", "max_score", *tests])
        for r in results:
            w.writerow(
                [
                    spreadsheet_safe(r.student),  # a folder name: whatever was submitted
                    r.status,
                    f"{r.score:g}",
                    f"{r.max_score:g}",
                    *(int(r.tests[t]) if t in r.tests else "" for t in tests),
                ]
            )
    rates = pass_rates(results)
    with paths["pass_rates.csv"].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["test", "pass_rate"])
        for t, rate in rates.items():
            w.writerow([t, f"{rate:.4f}"])
    fig, ax = plt.subplots(figsize=(5, 3))
    top = max([r.max_score for r in results] + [1.0])
    ax.hist([r.score for r in results], bins=min(20, max(1, int(top)) + 1), range=(0, top))
    ax.set_xlabel("autograded score")
    ax.set_ylabel("students")
    ax.set_title(f"{len(results)} submissions")
    fig.tight_layout()
    fig.savefig(paths["histogram.png"], dpi=100)
    plt.close(fig)
    text = (
        status_table(results)
        + "\n\npass rates\n"
        + "\n".join(f"  {t}: {rate:.0%}" for t, rate in rates.items())
    )
    paths["summary.txt"].write_text(text + "\n")
    return paths
