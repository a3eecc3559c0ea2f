"""The registry of checks, the self-check's messages, and grading with solutions and mistakes."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnn_grader import checks
from rnn_grader.checks import deep_birnn, registry
from rnn_grader.student import selfcheck

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "submissions"))
import mistakes as fx

ROOT = Path(__file__).resolve().parents[1]
SECRET = b"unit-tests-secret-0123456789"
SOLUTIONS = {a: fx.namespace(fx.solution_sources(ROOT, a)) for a in fx.ASSIGNMENTS}
ASSIGNMENT_OF = {n: a for a, names in registry.ASSIGNMENTS.items() for n in names}


def solution_ns(name: str) -> dict:
    return SOLUTIONS[ASSIGNMENT_OF[name]]


@functools.cache
def graded_cases(name: str, hidden: bool) -> tuple[tuple[dict, dict, dict], ...]:
    """(inputs, expected, mistakes) of every case, computed once per test session."""
    check = registry.get(name)
    return tuple(
        (case, check.expected(case), {} if hidden else check.mistakes(case))
        for case in check.cases(hidden=hidden, secret=SECRET)
    )


def run_check(name: str, ns: dict, *, hidden: bool = False) -> str:
    """Grade ``ns`` on check ``name`` exactly as the grader does (driver, then comparison)."""
    kind = "hidden" if hidden else "public"
    cases = graded_cases(name, hidden)
    for i, (case, want, wrong) in enumerate(cases, start=1):
        outputs = selfcheck.run(checks.call(name), ns, case)
        checks.compare(
            name, outputs, want, case_label=f"{kind} case {i}", hidden=hidden, mistakes=wrong
        )
    return f"{name}: all {len(cases)} {kind} cases passed"


def failure(name: str, ns: dict, *, hidden: bool = False) -> str:
    """The failure message of check ``name``, its wrapped lines joined back into one."""
    with pytest.raises(AssertionError) as info:
        run_check(name, ns, hidden=hidden)
    message = str(info.value)
    assert all(len(line) <= selfcheck.WIDTH for line in message.splitlines()), message
    return " ".join(message.split())


def is_plain(value: object) -> bool:
    if isinstance(value, np.ndarray):  # float64 values, int64 ids and lengths, bool masks
        return value.dtype in (np.float64, np.int64, np.bool_)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    return isinstance(value, bool | int | float | str)


def same(a: dict, b: dict) -> bool:
    """Equal plain data, compared through its exact JSON encoding."""
    return json.dumps(selfcheck.encode(a)) == json.dumps(selfcheck.encode(b))


@pytest.mark.parametrize("name", registry.NAMES)
def test_cases_are_plain_and_reproducible_and_hidden_ones_follow_the_secret(name: str) -> None:
    check = registry.get(name)
    public = check.cases(hidden=False)
    hidden = check.cases(hidden=True, secret=SECRET)
    assert len(public) == check.n_public and len(hidden) >= check.n_hidden
    assert all(is_plain(c) for c in public + hidden)
    assert all(
        same(a, b) for a, b in zip(hidden, check.cases(hidden=True, secret=SECRET), strict=True)
    )
    other = check.cases(hidden=True, secret=b"another-course-secret-987654")
    assert not any(same(a, b) for a, b in zip(hidden, other, strict=True))
    assert not any(same(a, b) for a in public for b in hidden)


@pytest.mark.parametrize("name", registry.NAMES)
def test_every_reference_passes_its_own_comparison(name: str) -> None:
    """As the grader checks before it grades anyone: expected outputs compared with themselves
    (a check judged by a criterion has no outputs to compare)."""
    for hidden in (False, True):
        for i, (_, want, wrong) in enumerate(graded_cases(name, hidden), start=1):
            if selfcheck.CRITERION_KEY in want:
                continue
            label = f"{'hidden' if hidden else 'public'} case {i}"
            checks.compare(name, want, want, case_label=label, hidden=hidden, mistakes=wrong)


def test_hidden_cases_need_the_secret() -> None:
    with pytest.raises(ValueError, match="course secret"):
        registry.get("rnn_forward").cases(hidden=True)
    with pytest.raises(ValueError, match="course secret"):
        checks.cases("rnn_forward", hidden=True, secret=b"")


def test_unknown_check_name_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"name must be one of .*got 'rnn_backwards'"):
        checks.cases("rnn_backwards", hidden=False)


def test_registry_covers_the_contract() -> None:
    assert registry.ASSIGNMENTS == {
        "rnn_bptt": (
            "rnn_step_forward",
            "rnn_step_backward",
            "rnn_forward",
            "rnn_backward",
            "grad_norms_through_time",
            "clip_grad_norm",
            "embedding_forward",
            "embedding_backward",
            "softmax_cross_entropy",
            "char_lm_loss",
            "train_char_lm",
        ),
        "gated_cells": (
            "sigmoid",
            "lstm_step_forward",
            "lstm_step_backward",
            "lstm_forward",
            "lstm_backward",
            "gru_step_forward",
            "gru_step_backward",
        ),
        "deep_birnn": (
            "birnn_forward",
            "birnn_backward",
            "stacked_rnn_forward",
            "stacked_rnn_backward",
            "highway_forward",
            "highway_backward",
        ),
    }
    assert registry.DEPENDENCIES["rnn_backward"] == ["rnn_forward", "rnn_backward"]
    for name, deps in registry.DEPENDENCIES.items():
        assert name in deps


COSTLY = [n for n in registry.NAMES if registry.get(n).cost]
DEEP_COSTLY = [n for n in COSTLY if n in registry.ASSIGNMENTS["deep_birnn"]]
#: Floating-point operations that differentiating a forward pass numerically needs, at the
#: least, for deep_birnn's large cases: one forward pass per column of a weight (entry of a
#: bias). One core does a few 10^10 per second (31·10^9 in float64 matrix products on the
#: machine these cases were sized on), so 10^12 is far over the 10 s of a check.
NUMERICAL_FLOPS = 10**12


def _entries(value: object) -> int:
    """Float64 entries of a value: an array, or lists and dicts of arrays."""
    if isinstance(value, np.ndarray):
        return value.size if value.dtype == np.float64 else 0
    if isinstance(value, dict):
        return sum(_entries(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_entries(v) for v in value)
    return 0


def finite_difference_work(case: dict) -> tuple[int, int | None, float]:
    """``(entries, columns, forward)`` of a costly case.

    ``entries``: input entries whose gradient is graded (one forward run each by finite
    differences); ``columns``: the widest weight's columns, when perturbing a whole column
    at once gives that column's gradient for every row (a weight multiplying rows that
    stay apart until the loss), else ``None``; ``forward``: multiply-adds of one forward
    run (for the softmax, ten operations per score: exp, log, sums).
    """
    entries = _entries(case)
    if "Wx" in case:  # tanh RNN, LSTM or GRU: step or sequence
        x = case["x"]
        rows = x.size // x.shape[-1]
        return entries, case["Wx"].shape[1], rows * (case["Wx"].size + case["Wh"].size)
    if "params" in case:  # the character model
        p = case["params"]
        entries = sum(v.size for v in p.values())
        D, H, V = p["Wx"].shape[0], p["Wh"].shape[0], p["W_out"].shape[1]
        return entries, max(H, V), case["idx"].size * (D * H + H * H + H * V)
    if "scores" in case:
        return case["scores"].size, case["scores"].shape[-1], 10.0 * case["scores"].size
    if "params_fwd" in case:  # the bidirectional RNN: only the steps within each length
        Wx, Wh, _ = case["params_fwd"]
        steps = int(case["lengths"].sum())
        return entries, Wh.shape[0], 2 * steps * (Wx.size + Wh.size)
    if "layers" in case:  # the stacked RNN
        x = case["x"]
        rows = x.size // x.shape[-1]
        columns = max(Wh.shape[0] for _, Wh, _ in case["layers"])
        return entries, columns, rows * sum(Wx.size + Wh.size for Wx, Wh, _ in case["layers"])
    if "W_h" in case:  # the highway layer
        return entries, case["W_h"].shape[1], case["x"].shape[0] * 2 * case["W_h"].size
    # the embedding: a column of W perturbed at once changes only the column's sum
    return case["W"].size, None, case["idx"].size * case["W"].shape[1]


@pytest.mark.parametrize("name", COSTLY)
def test_every_backward_check_has_a_costly_hidden_case(name: str) -> None:
    """The last hidden case defeats numerical differentiation: one entry at a time needs over
    10^5 forward runs and 10^11 multiply-adds; one column at a time (where that works)
    still 5·10^10, some 25 s at two billion a second, against 10 s for the whole check."""
    case = registry.get(name).cases(hidden=True, secret=SECRET)[-1]
    entries, columns, forward = finite_difference_work(case)
    assert entries > 100_000
    assert entries * forward > 10**11
    if columns is not None:
        assert 2 * columns * forward >= 5 * 10**10, (columns, forward)


@pytest.mark.parametrize("assignment", sorted(registry.ASSIGNMENTS))
def test_a_correct_notebook_s_outputs_fit_the_grader_s_protocol(assignment: str) -> None:
    """One case's outputs travel in one frame and a phase's in a bounded total: the grader
    refuses to start when a correct notebook could not send them, and the course's own
    cases leave it room."""
    from rnn_grader.autograde.errors import GraderError
    from rnn_grader.autograde.protocol import MAX_FRAME_BYTES
    from rnn_grader.autograde.sandbox import SandboxLimits
    from rnn_grader.autograde.suite import GradingSuite

    names = list(registry.ASSIGNMENTS[assignment])
    suite = GradingSuite("rnn_grader.checks", SECRET)
    suite.validate(names, MAX_FRAME_BYTES, SandboxLimits().max_message_bytes)
    with pytest.raises(GraderError, match="bytes"):
        suite.validate(names, 2**10, SandboxLimits().max_message_bytes)


@pytest.mark.parametrize("name", DEEP_COSTLY)
def test_numerical_differentiation_cannot_finish_the_costly_case(name: str) -> None:
    """Even one column of a weight at a time, at least 10^12 flops, while a real backward
    pass is a few forward passes."""
    check = registry.get(name)
    case = check.cases(hidden=True, secret=SECRET)[-1]
    forward, numerical = deep_birnn.numerical_flops(name, case)
    assert numerical >= NUMERICAL_FLOPS
    assert 1e9 <= forward <= 3e9  # a backward pass costs about two forward passes
    assert numerical >= 300 * forward  # hundreds of forward passes, one per hidden unit
    assert max(_entries(c) for c in check.cases(hidden=True, secret=SECRET)[:-1]) < 10_000


def test_numerical_flops_count_one_forward_pass_per_column() -> None:
    case = registry.get("highway_backward").cases(hidden=False)[0]
    N, D = case["x"].shape
    assert deep_birnn.numerical_flops("highway_backward", case) == (4 * N * D * D, 4 * N * D**3)
    case = registry.get("stacked_rnn_backward").cases(hidden=False)[1]  # residual, widths H
    N, T, H = case["x"].shape
    layer = 2 * N * T * 2 * H * H
    assert deep_birnn.numerical_flops("stacked_rnn_backward", case) == (3 * layer, H * 6 * layer)
    case = registry.get("birnn_backward").cases(hidden=False)[0]
    D, H = case["params_fwd"][0].shape
    direction = 2 * int(case["lengths"].sum()) * (D * H + H * H)
    assert deep_birnn.numerical_flops("birnn_backward", case) == (2 * direction, 2 * H * direction)


#: Runs every hidden case of deep_birnn's backward checks on the answers written with loops
#: over the batch and over time, on one BLAS thread as in the grader's sandbox; prints the
#: seconds per check.
_LOOPS_TIMING = """
import json, sys, time
sys.path.insert(0, {fixtures!r})
import independent
import mistakes as fx
from rnn_grader import checks
from rnn_grader.checks import registry
from rnn_grader.student import selfcheck
ns = fx.namespace(independent.DEEP_BIRNN_LOOPS)
seconds = {{}}
for name in {names!r}:
    check = registry.get(name)
    cases = [(c, check.expected(c)) for c in check.cases(hidden=True, secret={secret!r})]
    started = time.perf_counter()
    for i, (case, want) in enumerate(cases, start=1):
        outputs = selfcheck.run(checks.call(name), ns, case)
        checks.compare(name, outputs, want, case_label=f"hidden case {{i}}", hidden=True)
    seconds[name] = time.perf_counter() - started
print(json.dumps(seconds))
"""


@pytest.fixture(scope="module")
def loop_seconds() -> dict[str, float]:
    code = _LOOPS_TIMING.format(
        fixtures=str(Path(__file__).parent / "fixtures" / "submissions"),
        names=DEEP_COSTLY,
        secret=SECRET,
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", DEEP_COSTLY)
def test_loops_over_batch_and_time_pass_every_hidden_case(
    name: str, loop_seconds: dict[str, float]
) -> None:
    """Honest answers written with loops over the batch and over time (``independent``)
    pass every hidden case, the large one included. How long they take against the 10 s of
    a check is measured side by side with the other answers by
    ``python scripts/bench_cost_cases.py deep_birnn``, not here."""
    assert name in loop_seconds  # the run compared every hidden case, or failed above


@pytest.mark.parametrize("name", registry.NAMES)
def test_instructor_solutions_pass_public_and_hidden_cases(name: str) -> None:
    ns = solution_ns(name)
    assert "passed" in run_check(name, ns)
    assert "hidden" in run_check(name, ns, hidden=True)


@pytest.mark.parametrize("m", fx.MISTAKES, ids=lambda m: m.name)
def test_each_mistake_fails_exactly_its_checks_with_a_hint(m: fx.Mistake) -> None:
    ns = fx.namespace(m.apply(fx.solution_sources(ROOT, m.assignment)))
    failed = {}
    for name in registry.ASSIGNMENTS[m.assignment]:
        try:
            run_check(name, ns)
            run_check(name, ns, hidden=True)
        except Exception as exc:  # a failed comparison, or the student's code raised
            failed[f"test_{name}"] = " ".join(str(exc).split())
    assert set(failed) == m.breaks
    assert "HINT:" in failed[m.hint_test]
    assert m.hint in failed[m.hint_test]


def test_driver_hands_fresh_copies_to_the_student() -> None:
    case, want, _ = graded_cases("rnn_step_forward", False)[0]
    before = {k: v.copy() for k, v in case.items()}

    def rnn_step_forward(x, h_prev, Wx, Wh, b):
        out = np.tanh(x @ Wx + h_prev @ Wh + b)
        x[:] = 0.0  # vandalizes its inputs
        Wx *= 2
        return out, None

    outputs = selfcheck.run(
        checks.call("rnn_step_forward"), {"rnn_step_forward": rnn_step_forward}, case
    )
    for k, v in before.items():
        np.testing.assert_array_equal(case[k], v)
    checks.compare("rnn_step_forward", outputs, want, case_label="public case 1")


HIGHWAY_CASE, HIGHWAY_WANT, _ = graded_cases("highway_forward", False)[0]
HIGHWAY_SHAPE = HIGHWAY_CASE["x"].shape


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
    with pytest.raises(AssertionError) as info:
        checks.compare("highway_forward", {"y": returned}, HIGHWAY_WANT, case_label="public case 1")
    assert phrase in " ".join(str(info.value).split())
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
    ns = {"highway_forward": lambda x, W_h, b_h, W_t, b_t: (np.tanh(x @ W_h + b_h), None)}
    message = failure("highway_forward", ns)
    for phrase in (
        "y differs",
        "largest absolute error",
        "at index",
        "rtol 1e-06, atol 1e-08",
        "HINT:",
    ):
        assert phrase in message


def test_hidden_case_messages_show_no_values() -> None:
    """A failure on a hidden case names the output that differs, never a number of the case."""
    wrong = solution_ns("rnn_backward")

    def rnn_backward(dh, cache):
        dx, dh0, dWx, dWh, db = wrong["rnn_backward"](dh, cache)
        return dx, dh0, dWx, dWh * 1.5, db

    ns = {**wrong, "rnn_backward": rnn_backward}
    run_check("rnn_backward", {**wrong}, hidden=True)  # the unchanged solution passes
    message = failure("rnn_backward", ns, hidden=True)
    assert "dWh differs" in message and "hidden case" in message
    assert "got " not in message and "expected " not in message.replace("expected value", "")
    assert "index" not in message
    clip = solution_ns("clip_grad_norm")["clip_grad_norm"]
    ns = {"clip_grad_norm": lambda g, m: (clip(g, m)[0], clip(g, m)[1] + 1.0)}
    message = failure("clip_grad_norm", ns, hidden=True)
    assert "total_norm differs" in message and "got" not in message


def test_sigmoid_overflow_is_reported_with_a_hint() -> None:
    message = failure("sigmoid", {"sigmoid": lambda x: 1 / (1 + np.exp(-x))})
    assert "FloatingPointError" in message and "HINT:" in message


@pytest.mark.parametrize(
    "hiding",
    [
        "with np.errstate(all='ignore'):\n        return 1 / (1 + np.exp(-x))",
        "np.seterr(all='ignore')\n    return 1 / (1 + np.exp(-x))",
        "np.seterr('ignore')\n    return 1 / (1 + np.exp(-x))",
        "return np.errstate(all='ignore')(lambda v: 1 / (1 + np.exp(-v)))(x)",
    ],
)
def test_sigmoid_cannot_switch_the_overflow_check_off(hiding: str) -> None:
    namespace = {"np": np}
    exec(f"def sigmoid(x):\n    {hiding}\n", namespace)
    message = failure("sigmoid", namespace)
    assert "FloatingPointError" in message and "HINT:" in message
    settings = np.geterr()
    with np.errstate(all="ignore"):  # NumPy's own state is left as it was
        assert np.geterr()["over"] == "ignore"
    assert np.geterr() == settings


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


def _stack_raising(message: str | None) -> dict:
    """The solution's stack whose size check raises ``message``, or does nothing (None)."""
    source = fx.solution_sources(ROOT, "deep_birnn")["stacked_rnn_forward"]
    own = source[source.index("raise ValueError(") : source.index("out, caches = x, []")]
    replacement = f"raise ValueError({message!r})\n    " if message else "pass\n    "
    return fx.namespace({"stacked_rnn_forward": source.replace(own, replacement)})


@pytest.mark.parametrize(
    ("message", "verdict"),
    [
        (None, "must raise ValueError, but no error was raised"),  # NumPy broadcasts size 1
        ("operands could not be broadcast together", "NumPy's broadcasting error"),
        ("residual sizes differ", "must name the layer"),
        ("residual sizes differ at layer 1", "must name the layer"),
    ],
)
def test_the_size_check_must_be_the_students_own_and_name_the_layer(
    message: str | None, verdict: str
) -> None:
    ns = _stack_raising(message)
    run_check("stacked_rnn_forward", ns)  # the public cases raise nothing
    assert verdict in failure("stacked_rnn_forward", ns, hidden=True)


def test_the_size_check_names_the_layer_as_the_book_or_as_code_does() -> None:
    case = registry.get("stacked_rnn_forward").cases(hidden=True, secret=SECRET)[-1]
    expected = registry.get("stacked_rnn_forward").expected(case)
    layers = enumerate(case["layers"][1:], start=2)  # layer 1 may change the size
    l = next(k for k, (Wx, Wh, _) in layers if Wx.shape[0] != Wh.shape[0])
    assert expected["names"] == [f"layer {l}", f"layers[{l - 1}]"]
    for message in (f"Layer {l} maps 1 feature to 4", f"layers[{l - 1}] changes the size"):
        checks.compare(
            "stacked_rnn_forward",
            {"raised": f"ValueError: {message}"},
            expected,
            case_label="hidden case 6",
            hidden=True,
        )
    for message in (f"layer {l}0 differs", f"layer {l}: cannot broadcast (4,) and (1,)"):
        with pytest.raises(AssertionError):
            checks.compare(
                "stacked_rnn_forward",
                {"raised": f"ValueError: {message}"},
                expected,
                case_label="hidden case 6",
                hidden=True,
            )


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
    num = selfcheck.numerical_gradient(lambda v: np.tanh(v @ W), x, df)
    exact = (df * (1 - np.tanh(x @ W) ** 2)) @ W.T
    assert selfcheck.relative_error(num, exact) < 1e-8
    assert selfcheck.relative_error(num, exact * 1.01) > 1e-3
    with pytest.raises(TypeError, match="float64"):
        selfcheck.numerical_gradient(lambda v: v, np.zeros(3, dtype=np.float32), np.ones(3))
    with pytest.raises(ValueError, match="same shape"):
        selfcheck.relative_error(np.zeros(2), np.zeros(3))


def test_plain_data_round_trips_exactly() -> None:
    rng = np.random.default_rng(1)
    value = {
        "a": rng.normal(size=(2, 3)),
        "grads": {"Wx": rng.normal(size=4), "b": np.array([np.inf, -0.0, 1e-300])},
        "layers": [[rng.normal(size=(2, 2)), rng.normal(size=2)]],
        "residual": True,
        "max_norm": 0.1 + 0.2,
    }
    back = selfcheck.decode(json.loads(json.dumps(selfcheck.encode(value))))
    np.testing.assert_array_equal(back["a"], value["a"])
    np.testing.assert_array_equal(back["grads"]["b"], value["grads"]["b"])
    np.testing.assert_array_equal(back["layers"][0][0], value["layers"][0][0])
    assert back["residual"] is True and back["max_norm"] == value["max_norm"]


def public_failure(name: str, ns: dict, *, explain: bool = False) -> str:
    """The message the student's own ``check(name)`` gives, from the shipped public data."""
    data = selfcheck.load(ROOT / "assignments" / ASSIGNMENT_OF[name] / "public_checks.json")
    with pytest.raises(AssertionError) as info:
        selfcheck.run_check(name, ns, data, explain=explain)
    return str(info.value)


def mistaken(name: str) -> dict:
    m = fx.mistake(name)
    return fx.namespace(m.apply(fx.solution_sources(ROOT, m.assignment)))


def test_every_differing_output_is_listed_with_where_it_differs() -> None:
    message = public_failure("rnn_backward", mistaken("forgot_next_step_gradient"))
    assert "outputs differ" in message
    for key in ("dx", "dh0", "dWx", "dWh", "db"):
        assert f"- {key} differs" in message, key
    # the last step receives no gradient from a later one, so only it is right
    assert "dx differs: wrong at time steps 0..2, right at 3" in message


def test_a_common_factor_is_named() -> None:
    ns = dict(solution_ns("rnn_backward"))
    right = ns["rnn_backward"]

    def rnn_backward(dh, cache):
        dx, dh0, dWx, dWh, db = right(dh, cache)
        return dx, dh0, dWx * cache[0].shape[1], dWh, db  # dWx scaled by T

    message = public_failure("rnn_backward", {**ns, "rnn_backward": rnn_backward})
    assert "dWx differs: off by a factor ≈ 4 = T" in message
    assert "dWh differs" not in message


def test_hints_name_the_concept_and_the_fix_only_on_request() -> None:
    ns = mistaken("forgot_next_step_gradient")
    message = public_failure("rnn_backward", ns)
    assert "HINT: only the last step's gradients are right" in message
    assert "FIX:" not in message and "dh_prev that step t+1" not in message
    assert "check('rnn_backward', explain=True) shows how to fix it" in message
    explained = public_failure("rnn_backward", ns, explain=True)
    assert (
        "FIX: the upstream of step t is dh[:, t] + the dh_prev that step t+1 returned" in explained
    )


def test_a_hint_follows_the_mistake_actually_made() -> None:
    at_c = public_failure("lstm_step_backward", mistaken("lstm_tanh_derivative_at_c"))
    ns = dict(solution_ns("lstm_step_backward"))
    source = fx.solution_sources(ROOT, "gated_cells")["lstm_step_backward"]
    assert "dc = dc_next + " in source
    broken = fx.namespace(
        {
            **fx.solution_sources(ROOT, "gated_cells"),
            "lstm_step_backward": source.replace("dc = dc_next + ", "dc = "),
        }
    )
    no_dc = public_failure("lstm_step_backward", broken)
    assert "tanh's derivative at the wrong point" in at_c
    assert "two paths and one is missing" in no_dc
    assert at_c.split("HINT:")[1] != no_dc.split("HINT:")[1]
    del ns


def test_a_backward_check_points_at_the_failing_function_it_calls() -> None:
    ns = mistaken("lstm_tanh_derivative_at_c")  # the step's backward is wrong
    message = public_failure("lstm_backward", ns)
    assert (
        "NOTE: your lstm_step_backward (is called by your lstm_backward) fails its own" in message
    )
    sources = fx.solution_sources(ROOT, "rnn_bptt")
    line = "prev = np.tanh(xw[:, t] + prev @ Wh)"
    assert line in sources["rnn_forward"]
    sources["rnn_forward"] = sources["rnn_forward"].replace(line, "prev = xw[:, t] + prev @ Wh")
    message = public_failure("rnn_backward", fx.namespace(sources))  # the forward is wrong
    assert "your rnn_forward (is called by this check) fails its own check" in message


def test_the_grader_says_where_a_public_case_differs() -> None:
    ns = mistaken("forgot_next_step_gradient")
    case, want, wrong = graded_cases("rnn_backward", False)[0]
    outputs = selfcheck.run(checks.call("rnn_backward"), ns, case)
    with pytest.raises(AssertionError) as info:
        checks.compare(
            "rnn_backward", outputs, want, case_label="public case 1", mistakes=wrong, inputs=case
        )
    assert "dx differs: wrong at time steps 0..2, right at 3" in str(info.value)
