"""Summaries of a grading run: status table, grades CSV, score histogram, pass rates.

Nothing here is HTML; student ids (submission folder names) reach the CSV as text that a
spreadsheet will not evaluate (:func:`~rnn_grader.feedback.sanitize.spreadsheet_safe`).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from rnn_grader.autograde.runner import StudentResult
from rnn_grader.autograde.text import printable
from rnn_grader.feedback.sanitize import spreadsheet_safe

STATUSES = ("ok", "partial", "failed", "timed out", "invalid notebook")


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
