"""``check()``, ``nbgrader validate`` and ``nbgrader autograde`` agree on every test cell.

A corpus of notebooks written the way students write them (helper cells, import and
constant cells, prints, scratch cells that call the functions or raise, magics, a helper
defined too late, duplicated answer cells; :mod:`styles`) is run three ways:

* in a Jupyter kernel, in the released folder, as the student runs it: a test cell
  passes when ``check()`` printed its success line (no error, nothing on stderr);
* by ``nbgrader validate`` in the released folder;
* by ``nbgrader autograde`` on a course copy, with the trusted back end (public and
  hidden cases): a test cell passes when it earns all its points.

The three verdicts must be equal for every test cell of every notebook, and a notebook
that ``validate`` accepts must earn every autograded point.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "submissions"))
import mistakes as fx
import styles
from test_nbgrader import nbgrader, ok, read_scores

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: Styles per assignment: every style on the first assignment, a few on the others, and
#: mistakes that only the grader's rules catch.
CORPUS = {
    "rnn_bptt": list(styles.STYLES),
    "gated_cells": ["solution", "helper_cells", "magics", "duplicated_answer"],
    "deep_birnn": ["solution", "import_cell", "scratch_cells"],
}
NAIVE_SIGMOID = (
    "def sigmoid(x):\n"
    "    with np.errstate(all='ignore'):  # hides the overflow of exp(-x) for x << 0\n"
    "        return 1.0 / (1.0 + np.exp(-x))\n"
)
#: Styles expected to lose points, with the tests they fail (in all three verdicts).
EXPECTED_FAILURES = {
    ("rnn_bptt", "late_helper"): {"train_char_lm"},  # the notebook's last function
    ("rnn_bptt", "duplicated_after_test"): {"rnn_step_backward"},
    ("gated_cells", "naive_sigmoid_in_errstate"): {"sigmoid"},
}


def corpus(assignment: str) -> dict[str, dict[str, Any]]:
    solution = fx.notebook_with(ROOT, assignment, fx.solution_sources(ROOT, assignment))
    out = {name: styles.STYLES[name](solution) for name in CORPUS[assignment]}
    if assignment == "gated_cells":
        nb = copy.deepcopy(solution)
        for cell in nb["cells"]:
            if fx.grade_id(cell) == "sigmoid" and fx.is_answer(cell):
                cell["source"] = NAIVE_SIGMOID
        out["naive_sigmoid_in_errstate"] = nb
    return out


def graded_names(nb: nbformat.NotebookNode) -> list[str]:
    return [
        c.metadata["nbgrader"]["grade_id"][5:]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"
    ]


def in_kernel(folder: Path, nb: dict[str, Any]) -> dict[str, bool]:
    """Run ``nb`` top to bottom in a kernel in ``folder``: did each test cell pass?"""
    node = nbformat.reads(json.dumps(nb), as_version=4)
    client = nbclient.NotebookClient(
        node,
        timeout=120,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute()
    verdicts = {}
    for cell in node.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            failed = any(
                o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")
                for o in cell.outputs
            )
            verdicts.setdefault(meta["grade_id"][5:], not failed)
    return verdicts


def by_validate(folder: Path, name: str, names: list[str]) -> dict[str, bool]:
    """``nbgrader validate`` in the released folder: the test cells it did not report."""
    out = nbgrader(folder, "validate", f"{name}.ipynb").stdout
    if "Success! Your notebook passes all the tests." in out:
        return dict.fromkeys(names, True)
    assert "VALIDATION FAILED" in out, out[-3000:]  # written answers left blank count too
    failed = set(re.findall(r'check\("(\w+)"\)', out))
    return {n: n not in failed for n in names}


def by_autograde(tmp: Path, assignment: str, notebooks: dict[str, Any]) -> dict[str, Any]:
    course = tmp / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / assignment, course / "solutions" / assignment)
    ok(nbgrader(course, "generate_assignment", assignment, "--force"))
    for student, nb in notebooks.items():
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        (folder / f"{assignment}.ipynb").write_text(json.dumps(nb))
        (folder / "timestamp.txt").write_text("2026-01-15 12:00:00.000000 UTC")
    ok(nbgrader(course, "autograde", assignment, "--force"))
    return read_scores(course, assignment)


@pytest.fixture(scope="module", params=list(CORPUS))
def verdicts(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The three verdicts on every notebook of one assignment's corpus, keyed by
    ``(assignment, style)``."""
    out: dict[str, Any] = {}
    for assignment in [request.param]:
        tmp = tmp_path_factory.mktemp(assignment)
        folder = tmp / "released"
        shutil.copytree(ROOT / "assignments" / assignment, folder)
        notebooks = corpus(assignment)
        names = graded_names(nbformat.read(folder / f"{assignment}.ipynb", as_version=4))
        for name, nb in notebooks.items():
            (folder / f"{name}.ipynb").write_text(json.dumps(nb))
        with ThreadPoolExecutor(max_workers=2) as pool:
            graded = pool.submit(by_autograde, tmp, assignment, notebooks)
            kernel = {n: pool.submit(in_kernel, folder, nb) for n, nb in notebooks.items()}
            valid = {n: pool.submit(by_validate, folder, n, names) for n in notebooks}
            scores = graded.result()
            full = fx.load(folder / f"{assignment}.ipynb")
            points = {
                fx.grade_id(c)[5:]: float(c["metadata"]["nbgrader"]["points"])
                for c in full["cells"]
                if c["metadata"].get("nbgrader", {}).get("grade") and c["cell_type"] == "code"
            }
            for name in notebooks:
                auto = {n: scores[name][f"test_{n}"] == points[n] for n in names}
                earned = sum(scores[name].values())
                out[(assignment, name)] = {
                    "kernel": kernel[name].result(),
                    "validate": valid[name].result(),
                    "autograde": auto,
                    "points": (earned, sum(points.values())),
                }
    rows = [
        f"{a:<12} {s:<26} {sum(v['kernel'].values()):>6} {sum(v['validate'].values()):>8} "
        f"{sum(v['autograde'].values()):>9} {v['points'][0]:>6g}/{v['points'][1]:g}"
        for (a, s), v in out.items()
    ]
    head = f"{'assignment':<12} {'style':<26} {'kernel':>6} {'validate':>8} {'autograde':>9} points"
    print("\n" + "\n".join([head, *rows]))
    return out


def test_the_three_verdicts_agree_on_every_test_cell(verdicts: dict[str, Any]) -> None:
    for key, v in verdicts.items():
        assert v["kernel"] == v["validate"] == v["autograde"], (key, v)


def test_a_notebook_that_validate_accepts_earns_every_point(verdicts: dict[str, Any]) -> None:
    accepted = [key for key, v in verdicts.items() if all(v["validate"].values())]
    # every style that is not meant to lose points is accepted
    assert set(accepted) >= set(verdicts) - set(EXPECTED_FAILURES)
    for key in accepted:
        earned, total = verdicts[key]["points"]
        assert earned == total, key


def test_each_style_passes_or_fails_what_it_should(verdicts: dict[str, Any]) -> None:
    for key, v in verdicts.items():
        failed = {n for n, passed in v["autograde"].items() if not passed}
        assert failed == EXPECTED_FAILURES.get(key, set()), (key, failed)
