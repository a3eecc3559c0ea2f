"""What grading runs of a notebook: the steps built from the cells, in order."""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from rnn_grader.autograde.plan import Layout, as_python, binds, build_plan, normalized

PROVIDED = "rng = np.random.default_rng(0)\nx = rng.normal(size=3)\nprint(f(x))\n"
LAYOUT = Layout(
    answers=frozenset({"f", "g"}),
    tests=("test_f", "test_g"),
    setup={"setup": "import numpy as np\nfrom selfcheck import check\n"},
    test_sources={"test_f": 'check("f")\n', "test_g": 'check("g")\n'},
    provided=frozenset({normalized(PROVIDED)}),
)


def graded(gid: str, source: str, **flags: bool) -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": gid, **flags}
    return cell


def notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return new_notebook(cells=[new_markdown_cell("# title"), *cells])


def kinds(steps) -> list[tuple[str, str]]:
    return [(s.id, s.kind) for s in steps]


def test_steps_follow_the_notebook_and_checks_stand_where_the_tests_stand():
    nb = notebook(
        graded("setup", "import os  # the student's copy is not what runs"),
        new_code_cell("def helper(x):\n    return x\n"),
        graded("f", "def f(x):\n    return helper(x)\n"),
        graded("test_f", 'check("f")'),
        new_code_cell("   \n"),
        graded("g", "def g(x):\n    return x\n"),
        graded("test_g", 'check("g")'),
    )
    steps = build_plan(nb, LAYOUT)
    assert kinds(steps) == [
        ("setup", "setup"),
        ("cell_3", "cell"),
        ("f", "answer"),
        ("test_f", "check"),
        ("g", "answer"),
        ("test_g", "check"),
    ]
    assert steps[0].source == LAYOUT.setup["setup"]  # from the gradebook
    assert [s.number for s in steps] == [2, 3, 4, 5, 7, 8]


def test_a_copied_answer_runs_as_a_cell_and_a_deleted_test_is_checked_last():
    nb = notebook(
        graded("f", "def f(x):\n    return None\n"),
        graded("f", "def f(x):\n    return x\n"),
        graded("test_f", 'check("f")'),
    )
    steps = build_plan(nb, LAYOUT)
    assert kinds(steps) == [
        ("f", "answer"),
        ("cell_3", "cell"),
        ("test_f", "check"),
        ("test_g", "check"),
    ]


def test_a_provided_cell_is_left_out_unless_the_students_code_can_see_it():
    answer = graded("f", "def f(x):\n    return x\n")
    left_out = build_plan(notebook(answer, new_code_cell(PROVIDED)), LAYOUT)
    assert kinds(left_out) == [("f", "answer"), ("test_f", "check"), ("test_g", "check")]
    reads_x = graded("f", "def f(v):\n    return v + x\n")
    kept = build_plan(notebook(reads_x, new_code_cell(PROVIDED)), LAYOUT)
    assert ("cell_3", "cell") in kinds(kept)


def test_a_provided_cell_that_a_kept_one_relies_on_is_kept_too():
    first = "rng = 3\n"
    second = "y = rng + 1\n"
    layout = Layout(
        LAYOUT.answers,
        LAYOUT.tests,
        {},
        LAYOUT.test_sources,
        frozenset({normalized(first), normalized(second)}),
    )
    answer = graded("f", "def f(v):\n    return v + y\n")
    steps = build_plan(notebook(new_code_cell(first), new_code_cell(second), answer), layout)
    assert [s.id for s in steps if s.kind == "cell"] == ["cell_2", "cell_3"]


def test_bound_names_cover_assignments_imports_mutation_and_say_when_unknown():
    assert binds("import numpy as xp\nfrom a.b import c\nfor i, j in z: pass\n") == {
        "xp",
        "c",
        "i",
        "j",
    }
    assert binds("np.random.seed = 3\nd['k'] = 1\n") == {"np", "d"}
    assert binds("def h():\n    global G\n    G = 1\n") == {"h", "G"}
    assert binds("exec('x = 1')") is None
    assert binds("from numpy import *") is None
    assert binds("globals()['x'] = 1") is None


def test_ipython_syntax_becomes_the_calls_ipython_makes():
    assert as_python("%time y = f(1)\n") == "get_ipython().run_line_magic('time', 'y = f(1)')\n"
    assert "run_cell_magic('time'" in as_python("%%time\nx = 1\n")
    assert "getoutput('ls')" in as_python("files = !ls\n")
    assert as_python("print('100%')\n") == "print('100%')\n"
    assert as_python("def f(:\n") == "def f(:\n"  # left for the worker to report


def test_cells_no_graded_function_needs_are_optional():
    nb = notebook(
        new_code_cell("import numpy as xp\n"),
        new_code_cell("SCALE = 2\n"),
        graded("f", "def f(v):\n    return xp.tanh(v) * SCALE\n"),
        new_code_cell("y = f(3)\nprint(y)\n"),
        new_code_cell("def f(v):\n    return v\n"),
        graded("test_f", 'check("f")'),
    )
    optional = {s.id: s.optional for s in build_plan(nb, LAYOUT) if s.kind == "cell"}
    assert optional == {"cell_2": False, "cell_3": False, "cell_5": True, "cell_6": False}
