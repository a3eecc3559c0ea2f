"""Unit tests of the grading package with the instructor's code and classic mistakes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnn_course.grading import cases, check, compare, drivers, expected
from rnn_course.grading.check import run_check
from rnn_course.grading.gradcheck import numerical_gradient, relative_error

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "submissions"))
import mistakes as fx

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = {a: fx.namespace(fx.solution_sources(ROOT, a)) for a in fx.ASSIGNMENTS}
ASSIGNMENT_OF = {n: a for a, names in cases.ASSIGNMENTS.items() for n in names}


def solution_ns(name: str) -> dict:
    return SOLUTIONS[ASSIGNMENT_OF[name]]


def failure(name: str, ns: dict, *, hidden: bool = False) -> str:
    with pytest.raises(AssertionError) as info:
        run_check(name, ns, hidden=hidden)
    return str(info.value)


def is_plain(value: object) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype == np.float64
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    return isinstance(value, bool | int | float)


@pytest.mark.parametrize("name", cases.NAMES)
def test_cases_are_plain_reproducible_and_hidden_ones_differ(name: str) -> None:
    public, hidden = cases.cases(name, hidden=False), cases.cases(name, hidden=True)
    assert len(public) >= 2 and len(hidden) > len(public)
    assert all(is_plain(c) for c in public + hidden)
    again = cases.cases(name, hidden=True)
    for a, b in zip(hidden, again, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_equal(a[k], b[k])
    first_key = next(iter(public[0]))
    assert not np.array_equal(
        np.asarray(public[0][first_key], dtype=object),
        np.asarray(hidden[0][first_key], dtype=object),
    )


def test_unknown_check_name_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"name must be one of .*got 'rnn_backwards'"):
        cases.cases("rnn_backwards", hidden=False)
    with pytest.raises(ValueError, match="name must be one of"):
        check("rnn_backwards")


def test_expected_values_are_float64() -> None:
    out = expected.expected("lstm_backward", cases.cases("lstm_backward", hidden=False)[0])
    assert {k for k in out if k != expected.VARIANTS_KEY} == {"dx", "dh0", "dWx", "dWh", "db"}
    assert all(v.dtype == np.float64 for k, v in out.items() if k != expected.VARIANTS_KEY)


def test_drivers_import_only_numpy_and_the_standard_library() -> None:
    path = Path(drivers.__file__)
    tree = ast.parse(path.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "relative import in drivers.py"
            modules.add((node.module or "").split(".")[0])
    assert modules <= {"numpy"} | set(sys.stdlib_module_names)
    # and it loads and runs where torch and rnn_course cannot be imported
    code = (
        "import sys, importlib.util\n"
        "sys.modules['torch'] = None\nsys.modules['rnn_course'] = None\n"
        f"spec = importlib.util.spec_from_file_location('d', {str(path)!r})\n"
        "d = importlib.util.module_from_spec(spec); spec.loader.exec_module(d)\n"
        "import numpy as np\n"
        "ns = {'highway_forward': lambda x, Wh, bh, Wt, bt: x * 2}\n"
        "case = {k: np.ones((2, 2)) for k in ('x', 'W_h', 'b_h', 'W_t', 'b_t')}\n"
        "print(d.run('highway_forward', ns, case)['y'].sum())\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "8.0"


def test_dependencies_cover_every_check() -> None:
    assert set(drivers.DEPENDENCIES) == set(cases.NAMES)
    assert drivers.DEPENDENCIES["rnn_backward"] == ["rnn_forward", "rnn_backward"]
    for name, deps in drivers.DEPENDENCIES.items():
        assert name in deps


@pytest.mark.parametrize("name", cases.NAMES)
def test_instructor_solutions_pass_public_and_hidden_cases(name: str) -> None:
    ns = solution_ns(name)
    assert "passed" in run_check(name, ns)
    assert "hidden" in run_check(name, ns, hidden=True)


@pytest.mark.parametrize("m", fx.MISTAKES, ids=lambda m: m.name)
def test_each_mistake_fails_exactly_its_checks_with_a_hint(m: fx.Mistake) -> None:
    ns = fx.namespace(m.apply(fx.solution_sources(ROOT, m.assignment)))
    failed = {}
    for name in cases.ASSIGNMENTS[m.assignment]:
        try:
            run_check(name, ns)
            run_check(name, ns, hidden=True)
        except AssertionError as exc:
            failed[f"test_{name}"] = str(exc)
    assert set(failed) == m.breaks
    assert "HINT:" in failed[m.hint_test]
    assert m.hint in failed[m.hint_test]


def test_drivers_hand_fresh_copies_to_the_student() -> None:
    case = cases.cases("rnn_step_forward", hidden=False)[0]
    before = {k: v.copy() for k, v in case.items()}

    def rnn_step_forward(x, h_prev, Wx, Wh, b):
        out = np.tanh(x @ Wx + h_prev @ Wh + b)
        x[:] = 0.0  # vandalizes its inputs
        Wx *= 2
        return out, None

    outputs = drivers.run("rnn_step_forward", {"rnn_step_forward": rnn_step_forward}, case)
    for k, v in before.items():
        np.testing.assert_array_equal(case[k], v)
    compare.compare(
        "rnn_step_forward",
        outputs,
        expected.expected("rnn_step_forward", case),
        case_label="public case 1",
    )


HIGHWAY_CASE = cases.cases("highway_forward", hidden=False)[0]
HIGHWAY_SHAPE = HIGHWAY_CASE["x"].shape  # (3, 5)


@pytest.mark.parametrize(
    ("returned", "phrase"),
    [
        (None, "got None"),
        ([[0.0]], "got a list (convert it with np.asarray)"),
        (np.zeros(HIGHWAY_SHAPE, dtype=np.int64), "dtype int64, expected float64"),
        (np.zeros(HIGHWAY_SHAPE, dtype=np.float32), "dtype float32, expected float64"),
        (np.zeros(HIGHWAY_SHAPE[::-1]), f"has shape {HIGHWAY_SHAPE[::-1]}, expected shape"),
        (np.full(HIGHWAY_SHAPE, np.nan), "contains nan or inf"),
        (object(), "got a object"),
    ],
)
def test_outputs_of_the_wrong_kind_give_a_message(returned: object, phrase: str) -> None:
    want = expected.expected("highway_forward", HIGHWAY_CASE)
    with pytest.raises(AssertionError) as info:
        compare.compare("highway_forward", {"y": returned}, want, case_label="public case 1")
    assert phrase in str(info.value)
    assert "HINT:" in str(info.value)


@pytest.mark.parametrize(
    ("result", "phrase"),
    [
        (None, "got None (is a return statement missing?)"),
        (np.zeros((3, 6)), "must return a tuple (h_next, cache), got a ndarray"),
        ((np.zeros((3, 6)),), "got a tuple of 1 values"),
    ],
)
def test_wrong_return_structure_is_reported(result: object, phrase: str) -> None:
    ns = {"rnn_step_forward": lambda *args: result}
    assert phrase in failure("rnn_step_forward", ns)
    assert "could not be checked" in failure("rnn_step_backward", {**ns, "rnn_step_backward": None})


def test_wrong_value_message_has_location_errors_tolerance_and_hint() -> None:
    ns = {"highway_forward": lambda x, W_h, b_h, W_t, b_t: np.tanh(x @ W_h + b_h)}
    message = failure("highway_forward", ns)
    for phrase in (
        "y differs",
        "largest absolute error",
        "at index",
        "largest relative error",
        "rtol 1e-06, atol 1e-08",
        "HINT:",
    ):
        assert phrase in message


def test_sigmoid_overflow_is_reported_with_a_hint() -> None:
    message = failure("sigmoid", {"sigmoid": lambda x: 1 / (1 + np.exp(-x))})
    assert "FloatingPointError" in message and "exp(-|x|)" in message


def test_clip_grad_norm_missing_key_and_wrong_norm() -> None:
    ns = {"clip_grad_norm": lambda grads, m: ({"Wx": grads["Wx"]}, 1.0)}
    assert "same keys as grads" in failure("clip_grad_norm", ns)
    clip = solution_ns("clip_grad_norm")["clip_grad_norm"]
    ns = {"clip_grad_norm": lambda grads, m: (clip(grads, m)[0], None)}
    assert "total_norm must be a float, got None" in failure("clip_grad_norm", ns)


def test_residual_size_mismatch_must_raise() -> None:
    ref_ns = solution_ns("stacked_rnn_forward")
    lenient = dict(ref_ns)

    def stacked_rnn_forward(x, h0s, layers, residual=False):
        try:
            return ref_ns["stacked_rnn_forward"](x, h0s, layers, residual)
        except ValueError:
            return ref_ns["stacked_rnn_forward"](x, h0s, layers, False)

    lenient["stacked_rnn_forward"] = stacked_rnn_forward
    run_check("stacked_rnn_forward", lenient)  # public cases have matching sizes
    assert "must raise ValueError" in failure("stacked_rnn_forward", lenient, hidden=True)


def test_check_prints_one_line_to_stdout_only(capsys: pytest.CaptureFixture[str]) -> None:
    highway_forward = solution_ns("highway_forward")["highway_forward"]
    globals()["highway_forward"] = highway_forward
    try:
        check("highway_forward")
        check("highway_forward", hidden=True)
    finally:
        del globals()["highway_forward"]
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "highway_forward: all 2 public cases passed",
        "highway_forward: all 5 hidden cases passed",
    ]
    assert out.err == ""


def test_student_exceptions_propagate() -> None:
    def sigmoid(x):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        run_check("sigmoid", {"sigmoid": sigmoid})
    with pytest.raises(NameError, match="sigmoid is not defined"):
        run_check("sigmoid", {})


def test_numerical_gradient_and_relative_error() -> None:
    rng = np.random.default_rng(0)
    x, W, df = rng.normal(size=(3, 4)), rng.normal(size=(4, 2)), rng.normal(size=(3, 2))
    num = numerical_gradient(lambda v: np.tanh(v @ W), x, df)
    exact = (df * (1 - np.tanh(x @ W) ** 2)) @ W.T
    assert relative_error(num, exact) < 1e-8
    assert relative_error(num, exact * 1.01) > 1e-3
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda v: v, np.zeros(3, dtype=np.float32), np.ones(3))
    with pytest.raises(ValueError, match="same shape"):
        relative_error(np.zeros(2), np.zeros(3))
