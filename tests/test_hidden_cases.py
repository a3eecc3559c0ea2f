"""Hidden cases stay hidden: every channel that once carried them now carries nothing.

Each attack is a submission that passes its public cases and tries to get the hidden
inputs into its own feedback: by walking up the worker's frames to its request, by
collecting every array the process holds (``gc.get_objects()``) into the name of an
exception class or of a returned object's class, by stashing one check's inputs and
raising them in the next check's public case, by printing them, and by returning the
wrong shape (whose message once named the expected one). They run through real
``nbgrader autograde`` and ``generate_feedback`` on the toy course (sandboxed and
without the sandbox) and through the real ``rnn_bptt`` assignment, and the test looks
for every hidden input value in the feedback, the autograded notebook and the
``rnn-course grade`` terminal output. Attacks that also leak their *public* inputs show
that the search finds what does leak.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "attacks"))
import toycourse as tc
from toygrading import cases as toy_cases

pytestmark = pytest.mark.slow

GOOD = (
    "    z = z - z.max(axis=-1, keepdims=True)\n"
    "    e = np.exp(z)\n"
    "    return e / e.sum(axis=-1, keepdims=True)\n"
)
#: Every float of every array the process holds, as text.
HARVEST = (
    "def _harvest():\n"
    "    import gc\n"
    "    vals = []\n"
    "    for o in gc.get_objects():\n"
    "        if isinstance(o, dict):\n"
    "            for v in list(o.values()):\n"
    "                if isinstance(v, np.ndarray) and v.dtype.kind == 'f':\n"
    "                    vals += [repr(float(t)) for t in v.ravel()[:40]]\n"
    "    return 'LEAK ' + ','.join(vals)[:20000]\n"
)
#: Toy hidden softmax inputs are scaled by 1000; public ones are not.
HIDDEN_TOY = "np.abs(z).max() > 50"

ATTACKS = {
    # the answer cell finds the worker's request in a caller's frame and raises with it
    "frame_walk": (
        "import sys\n"
        "_f = sys._getframe()\n"
        "while _f is not None and 'request' not in _f.f_locals:\n"
        "    _f = _f.f_back\n"
        "_vals = []\n"
        "for _c in _f.f_locals['request']['checks'].values():\n"
        "    for _case in _c['cases']:\n"
        "        for _v in _case.values():\n"
        "            _vals += [repr(float(t)) for t in np.ravel(_v)]\n"
        "raise RuntimeError('LEAK ' + ','.join(_vals))\n"
        f"def softmax(z):\n{GOOD}"
    ),
    "gc_exception_class": (
        HARVEST + "def softmax(z):\n"
        f"    if {HIDDEN_TOY}:\n"
        "        raise type(_harvest(), (Exception,), {})()\n" + GOOD
    ),
    "gc_returned_class": (
        HARVEST + "def softmax(z):\n"
        f"    if {HIDDEN_TOY}:\n"
        "        return type(_harvest(), (), {})()\n" + GOOD
    ),
    "gc_message": (
        HARVEST + "def softmax(z):\n"
        f"    if {HIDDEN_TOY}:\n"
        "        raise ValueError(_harvest())\n" + GOOD
    ),
    "printed": (HARVEST + "def softmax(z):\n    print(_harvest())\n" + GOOD),
    "wrong_shape": (f"def softmax(z):\n    if {HIDDEN_TOY}:\n        return z[:, :1]\n" + GOOD),
}
#: ``affine`` stashes its inputs, and ``softmax`` (the next check) raises them.
STASH_AFFINE = (
    "STASH = []\n"
    "def affine(x, W, b):\n"
    "    STASH.extend(repr(float(t)) for a in (x, W, b) for t in a.ravel())\n"
    "    return x @ W + b\n"
)
STASH_SOFTMAX = "def softmax(z):\n    raise RuntimeError('LEAK ' + ','.join(STASH))\n"


def needles(values: list[np.ndarray]) -> set[str]:
    """Text that shows a value: the first 9 characters of its repr (sign and digits).

    Whole numbers (token ids, lengths, step counts) are left out: "2.0" or "37.0" cannot be
    told apart from the points a page shows.
    """
    return {
        repr(float(v))[:9]
        for a in values
        for v in np.ravel(a)
        if abs(v) >= 1e-3 and not float(v).is_integer()
    }


def found(text: str, wanted: set[str]) -> set[str]:
    """Which ``wanted`` values appear in ``text`` (scripts and styles removed)."""
    text = re.sub(r"<(script|style)\b.*?</\1>", "", text, flags=re.S | re.I)
    tokens = re.findall(r"-?\d+\.\d+(?:e[-+]?\d+)?", text)
    return {t[:9] for t in tokens} & wanted


def toy_values(hidden: bool) -> set[str]:
    return needles(
        [v for n in toy_cases.NAMES for c in toy_cases.cases(n, hidden=hidden) for v in c.values()]
    )


def _texts(root: Path, student: str) -> dict[str, str]:
    out = {}
    feedback = root / "feedback" / student / tc.ASSIGNMENT / f"{tc.ASSIGNMENT}.html"
    out["feedback"] = feedback.read_text()
    out["autograded"] = (root / "autograded" / student / tc.ASSIGNMENT / "toy.ipynb").read_text()
    return out


@pytest.fixture(scope="module", params=["sandbox", "unsafe"])
def toy(request, tmp_path_factory):
    extra = "c.TrustedExecute.unsafe_no_sandbox = True\n" if request.param == "unsafe" else ""
    root = tc.make_course(tmp_path_factory.mktemp(request.param), extra=extra)
    for name, softmax in ATTACKS.items():
        tc.submit(root, name, tc.answered(root, {**tc.CORRECT, "softmax": softmax}))
    tc.submit(root, "stash", tc.answered(root, {"affine": STASH_AFFINE, "softmax": STASH_SOFTMAX}))
    tc.nbgrader(root, "autograde", tc.ASSIGNMENT)
    tc.nbgrader(root, "generate_feedback", tc.ASSIGNMENT, "--force")
    env = tc.env()  # with the tests' course secret (conftest)
    cmd = [sys.executable, "-m", "rnn_grader.cli", "grade", tc.ASSIGNMENT, "--jobs", "1"]
    if request.param == "unsafe":
        cmd.append("--unsafe-no-sandbox")
    terminal = subprocess.run(
        [*cmd, "--no-progress"], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    return {"root": root, "terminal": terminal.stdout + terminal.stderr}


@pytest.mark.parametrize("student", [*ATTACKS, "stash"])
def test_no_hidden_value_reaches_the_feedback_or_the_terminal(toy, student):
    hidden = toy_values(hidden=True)
    assert len(hidden) > 20
    for where, text in {**_texts(toy["root"], student), "terminal": toy["terminal"]}.items():
        assert not found(text, hidden), (student, where, sorted(found(text, hidden))[:5])


def test_the_search_finds_public_values_that_do_leak(toy):
    public = toy_values(hidden=False)
    for student in ("frame_walk", "stash"):
        assert found(_texts(toy["root"], student)["feedback"], public), student


@pytest.mark.parametrize("student", ["gc_exception_class", "gc_returned_class", "gc_message"])
def test_public_cases_pass_and_a_hidden_case_gets_a_fixed_verdict(toy, student):
    assert tc.scores(toy["root"], student) == {"test_affine": 2.0, "test_softmax": 0.0}
    html = _texts(toy["root"], student)["feedback"]
    assert "LEAK" not in _outputs(toy["root"] / "autograded" / student / "toy" / "toy.ipynb")
    verdict = {
        "gc_exception_class": "your code raised an exception",
        "gc_returned_class": "your code returned the wrong type or shape",
        "gc_message": "your code raised an exception",
    }[student]
    assert f"softmax (hidden case 1): {verdict}." in html


def test_a_wrong_shape_on_a_hidden_case_does_not_say_the_expected_shape(toy):
    nb = nbformat.read(toy["root"] / "autograded" / "wrong_shape" / "toy" / "toy.ipynb", 4)
    (cell,) = [
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_softmax"
    ]
    message = cell.outputs[0].evalue
    assert "returned the wrong type or shape" in message
    assert "shape (" not in message and not re.search(r"\(\d+, \d+\)", message)


def test_the_course_assignment_keeps_its_hidden_inputs(tmp_path, repo_root):
    """The original finding: rnn_bptt, an object named after every array the worker holds."""
    from rnn_grader import checks
    from rnn_grader.autograde import bench

    root = bench.make_course(repo_root, tmp_path / "course", "rnn_bptt", trusted=True)
    bench.submissions(root, "rnn_bptt", 1)  # s000_correct
    path = root / "submitted" / "s000_correct" / "rnn_bptt" / "rnn_bptt.ipynb"
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "rnn_step_forward":
            source = "".join(cell["source"])
            cell["source"] = HARVEST + source.replace(
                "    h_next = np.tanh(",
                "    if x.shape != (3, 5):\n        return type(_harvest(), (), {})()\n"
                "    h_next = np.tanh(",
            )
    folder = root / "submitted" / "attacker" / "rnn_bptt"
    folder.mkdir(parents=True)
    (folder / "rnn_bptt.ipynb").write_text(json.dumps(nb))
    (folder / "timestamp.txt").write_text("2026-01-15 12:00:00.000000 UTC")
    tc.nbgrader(root, "autograde", "rnn_bptt")
    tc.nbgrader(root, "generate_feedback", "rnn_bptt", "--force")
    html = (root / "feedback" / "attacker" / "rnn_bptt" / "rnn_bptt.html").read_text()
    secret = os.environ["RNN_COURSE_SECRET"].encode()
    values = [
        v
        for name in checks.ASSIGNMENTS["rnn_bptt"]
        for case in checks.cases(name, hidden=True, secret=secret)
        for v in _arrays(case)
    ]
    assert not found(html, needles(values))
    graded = root / "autograded" / "attacker" / "rnn_bptt" / "rnn_bptt.ipynb"
    assert "LEAK" not in _outputs(graded)
    assert "rnn_step_forward (hidden case 1): your code returned the wrong type or shape" in html


def _outputs(path: Path) -> str:
    """Every output of the autograded notebook at ``path``, as JSON text."""
    nb = nbformat.read(path, as_version=4)
    return json.dumps([c.get("outputs", []) for c in nb.cells])


def _arrays(value) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arrays(v)]
    if isinstance(value, list | tuple):
        return [a for v in value for a in _arrays(v)]
    return []
