"""Copying detected: planted copies are ranked first, honest notebooks are not flagged.

A course directory gets five ``rnn_bptt`` submissions: a copy of the public solutions,
a pair of students sharing one independently written implementation (one of them with
every variable renamed, and a script tag in a comment), an honest student with another
independent implementation, and an untouched release. ``rnn-course similarity`` must
rank the copy of the solutions and the pair first, flag nothing else, and write one
self-contained HTML page that shows each pair's code side by side, escaped.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "submissions"))
import independent
import mistakes as fx

from rnn_grader.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
A = "rnn_bptt"
RENAMES = {
    "pre": "acc",
    "out": "result_h",
    "grads": "parts",
    "steps": "outs",
    "caches": "memo",
    "state": "h_now",
    "carry": "back",
    "dx_all": "gx_list",
    "grad_pre": "gp",
    "squares": "ss",
    "factor": "f",
    "norm": "size",
}


def renamed(sources: dict[str, str]) -> dict[str, str]:
    """The same code with every local variable renamed and a comment added."""
    out = {}
    for name, text in sources.items():
        for old, new in RENAMES.items():
            text = re.sub(rf"\b{old}\b", new, text)
        out[name] = "# my own work <script>alert('x')</script>\n" + text
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("similarity")
    (root / "nbgrader_config.py").write_text("c = get_config()\n")
    shutil.copytree(ROOT / "solutions" / A, root / "solutions" / A)
    shutil.copytree(ROOT / "assignments" / A, root / "assignments" / A)
    submissions = {
        "copier": fx.solution_sources(ROOT, A),
        "pair_a": independent.LOOPS,
        "pair_b": renamed(independent.LOOPS),
        "honest": independent.MATRIX,
        "untouched": {},
    }
    for student, sources in submissions.items():
        folder = root / "submitted" / student / A
        folder.mkdir(parents=True)
        (folder / f"{A}.ipynb").write_text(json.dumps(fx.notebook_with(ROOT, A, sources)))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["similarity", A, "--course-dir", str(root)])
    html = (root / "exports" / A / "similarity.html").read_text()
    print(out.getvalue())  # the ranking (pytest -s)
    return {"status": status, "out": out.getvalue(), "html": html}


def test_the_planted_copies_are_ranked_first_and_nothing_else_is_flagged(report):
    assert report["status"] == 0
    pairs = re.findall(r"^\s*(\d+\.\d)%\s+(\S+)\s+(\S+)$", report["out"], re.M)
    found = [frozenset(p[1:]) for p in pairs]
    assert set(found) == {frozenset({"copier", "SOLUTIONS"}), frozenset({"pair_a", "pair_b"})}
    assert all(float(p[0]) > 90 for p in pairs), pairs
    assert "2 pairs above 50%" in report["out"]


def test_the_report_shows_the_code_side_by_side_offline_and_escaped(report):
    html = report["html"]
    assert "http://" not in html and "https://" not in html
    assert html.count('<section id="pair') == 2
    assert "highlight-red" in html and "highlight-green" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
