"""Assignment 2, ``gated_cells``: the GRU it grades, its costly cases and its memory task.

* the reference GRU is :class:`torch.nn.GRUCell` itself, and the known mistakes are built on
  a variant that equals it with no mistake switched on;
* the costly hidden case of every backward check is out of reach of per-column finite
  differences, and, under real nbgrader, a backward pass written with loops over the batch
  and over time earns every point while per-column finite differences earn none of the
  backward checks;
* the notebook's NumPy memory task is the book's ``rnn_course.tasks.memory_task``, and its
  written answers reach the students only as a stub.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnn_course.tasks import memory_task
from rnn_grader.checks import gated_cells as gc
from rnn_grader.checks import reference as ref
from rnn_grader.checks import registry
from rnn_grader.checks.base import t_

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "submissions"))
import mistakes as fx
from independent import GATED_CELLS_LOOPS

ROOT = Path(__file__).resolve().parents[1]
SECRET = b"unit-tests-secret-0123456789"


def _gru_case(seed: int = 0) -> dict:
    return gc.gru_step_inputs(np.random.default_rng(seed), True, True)


# --------------------------------------------------------------------------- the reference


def test_the_reference_gru_is_torch_nn_gru_cell() -> None:
    case = _gru_case(1)
    D, H = case["x"].shape[1], case["h_prev"].shape[1]
    cell = torch.nn.GRUCell(D, H, dtype=torch.float64)
    with torch.no_grad():
        cell.weight_ih.copy_(t_(case["Wx"]).T)
        cell.weight_hh.copy_(t_(case["Wh"]).T)
        cell.bias_ih.copy_(t_(case["bx"]))
        cell.bias_hh.copy_(t_(case["bh"]))
        want = cell(t_(case["x"]), t_(case["h_prev"]))
    args = [t_(case[k]) for k in gc.GRU_STEP]
    torch.testing.assert_close(ref.torch_gru_step_forward(*args), want, rtol=1e-14, atol=1e-14)
    # the lecture's form with the same stacked weights is another function
    lecture = ref.gru_step_forward(*args[:4], args[4] + args[5])
    assert (lecture - want).abs().max() > 1e-2


def test_the_mistakes_are_built_on_the_reference() -> None:
    """With no mistake switched on, the variant is the reference and the written-out backward
    pass is autograd's, so each mistake differs from the reference by that mistake alone."""
    case = _gru_case(2)
    args = [t_(case[k]) for k in gc.GRU_STEP]
    torch.testing.assert_close(gc._gru_variant(*args), ref.torch_gru_step_forward(*args))
    want = registry.get("gru_step_backward").expected(case)
    got = gc._gru_backward_np(case)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("name", ["gru_step_forward", "gru_step_backward"])
def test_every_gru_mistake_is_told_apart_on_the_public_cases(name: str) -> None:
    check = registry.get(name)
    for case in check.cases(hidden=False):
        want = check.expected(case)
        wrong = list(check.mistakes(case).values())
        assert len(wrong) >= 5
        flat = [np.concatenate([w[k].ravel() for k in want]) for w in wrong]
        right = np.concatenate([want[k].ravel() for k in want])
        for i, a in enumerate(flat):
            assert not np.allclose(a, right, rtol=1e-6, atol=1e-8), i
            for b in flat[i + 1 :]:
                assert not np.allclose(a, b, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- the cost rule

#: Multiply-adds per second of a fast single core: a generous speed for the finite differences
#: (the machine the measurements on the assignment page come from did about 1.5·10^10).
FAST_CORE = 5e10
CHECK_SECONDS = 10.0


COSTLY = ["lstm_step_backward", "lstm_backward", "gru_step_backward"]


@pytest.mark.parametrize("name", COSTLY)
def test_per_column_finite_differences_cannot_finish_in_time(name: str) -> None:
    """Differences one column at a time need a forward run per column of the stacked bias
    (G·H of them) to reach every gate's pre-activation gradient, at every step of a sequence:
    even on a fast core that is over twice the time a check may take."""
    case = registry.get(name).cases(hidden=True, secret=SECRET)[-1]
    x, Wx, Wh = case["x"], case["Wx"], case["Wh"]
    steps = x.shape[1] if x.ndim == 3 else 1
    forward = x.size * Wx.shape[1] + x.shape[0] * steps * Wh.size  # multiply-adds
    runs = Wx.shape[1] * steps
    assert runs * forward / FAST_CORE > 2 * CHECK_SECONDS
    # even one forward run per hidden unit takes over half the limit on a fast core (two to
    # five times the limit on the machine of the page's measurements)
    assert Wh.shape[0] * forward / FAST_CORE > 0.5 * CHECK_SECONDS
    # the case, a fresh copy of it and gradients of the same sizes fit well in 1 GiB
    nbytes = sum(v.nbytes for v in case.values() if isinstance(v, np.ndarray))
    assert 3 * nbytes < 2**29


def test_the_costly_outputs_fit_the_grader_s_protocol() -> None:
    """A case's outputs travel in one frame, a phase's in a bounded total: the three costly
    cases leave room for every other output of the notebook."""
    from rnn_grader.autograde.protocol import MAX_FRAME_BYTES
    from rnn_grader.autograde.sandbox import SandboxLimits

    total = 0
    for name in COSTLY:
        check = registry.get(name)
        case = check.cases(hidden=True, secret=SECRET)[-1]
        nbytes = sum(v.nbytes for v in check.expected(case).values())
        assert nbytes < 0.9 * MAX_FRAME_BYTES, (name, nbytes)
        total += nbytes
    assert total < 0.7 * SandboxLimits().max_message_bytes


NAIVE = GATED_CELLS_LOOPS

#: Forward functions that keep their inputs, and backward functions that differentiate them
#: numerically one column at a time: centered differences on each column of a bias (every
#: row of the batch at once) and of the state that needs its own gradient.
COLUMNS = {
    "lstm_step_forward": """
def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
    H = h_prev.shape[1]
    a = x @ Wx + h_prev @ Wh + b
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 3 * H :])
    c_next = f * c_prev + i * np.tanh(a[:, 2 * H : 3 * H])
    return o * np.tanh(c_next), c_next, (x, h_prev, c_prev, Wx, Wh, b)
""",
    "lstm_step_backward": '''
def _columns(rows, value, eps=1e-5):
    """d rows / d value[..., j] for every column j, by centered differences."""
    out = np.empty((len(rows(value)), value.shape[-1]))
    for j in range(value.shape[-1]):
        up, down = value.copy(), value.copy()
        up[..., j] += eps
        down[..., j] -= eps
        out[:, j] = (rows(up) - rows(down)) / (2 * eps)
    return out


def lstm_step_backward(dh_next, dc_next, cache):
    x, h_prev, c_prev, Wx, Wh, b = cache

    def rows(b_=b, c_=c_prev):  # each row's share of the loss, (N,)
        h, c, _ = lstm_step_forward(x, h_prev, c_, Wx, Wh, b_)
        return np.sum(dh_next * h + dc_next * c, axis=1)

    da = _columns(lambda v: rows(b_=v), b)
    dc_prev = _columns(lambda v: rows(c_=v), c_prev)
    return da @ Wx.T, da @ Wh.T, dc_prev, x.T @ da, h_prev.T @ da, da.sum(axis=0)
''',
    "gru_step_forward": """
def gru_step_forward(x, h_prev, Wx, Wh, bx, bh):
    H = h_prev.shape[1]
    xw, hw = x @ Wx + bx, h_prev @ Wh + bh
    r, z = sigmoid(xw[:, :H] + hw[:, :H]), sigmoid(xw[:, H : 2 * H] + hw[:, H : 2 * H])
    n = np.tanh(xw[:, 2 * H :] + r * hw[:, 2 * H :])
    return (1 - z) * n + z * h_prev, (x, h_prev, Wx, Wh, bx, bh)
""",
    "gru_step_backward": """
def gru_step_backward(dh_next, cache):
    x, h_prev, Wx, Wh, bx, bh = cache

    def rows(bx_=bx, bh_=bh, h_=h_prev):  # each row's share of the loss, (N,)
        return np.sum(dh_next * gru_step_forward(x, h_, Wx, Wh, bx_, bh_)[0], axis=1)

    dxw = _columns(lambda v: rows(bx_=v), bx)
    dhw = _columns(lambda v: rows(bh_=v), bh)
    dh_prev = _columns(lambda v: rows(h_=v), h_prev)
    return dxw @ Wx.T, dh_prev, x.T @ dxw, h_prev.T @ dhw, dxw.sum(axis=0), dhw.sum(axis=0)
""",
}


def _sources(replaced: dict[str, str]) -> dict[str, str]:
    sources = fx.solution_sources(ROOT, "gated_cells")
    sources.update({k: v.lstrip("\n") for k, v in replaced.items()})
    return sources


def test_the_loop_and_column_submissions_are_right_on_the_public_cases() -> None:
    """What the slow test below measures is time alone: both are correct."""
    from test_checks import run_check

    for replaced in (NAIVE, COLUMNS):
        ns = fx.namespace(_sources(replaced))
        for name in registry.ASSIGNMENTS["gated_cells"]:
            assert "passed" in run_check(name, ns)


@pytest.mark.slow
def test_loops_earn_every_point_and_column_differences_no_backward_point(
    tmp_path: Path,
) -> None:
    from test_nbgrader import max_points, nbgrader, ok, read_scores

    a = "gated_cells"
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "solutions" / a, course / "solutions" / a)
    ok(nbgrader(course, "generate_assignment", a, "--force"))
    for student, replaced in (("loops", NAIVE), ("columns", COLUMNS)):
        folder = course / "submitted" / student / a
        folder.mkdir(parents=True)
        nb = fx.notebook_with(ROOT, a, _sources(replaced))
        (folder / f"{a}.ipynb").write_text(json.dumps(nb))
        (folder / "timestamp.txt").write_text("2026-01-15 12:00:00.000000 UTC")
    ok(nbgrader(course, "autograde", a, "--force"))
    scores = read_scores(course, a)
    full = max_points(fx.load(ROOT / "assignments" / a / f"{a}.ipynb"))
    assert scores["loops"] == full
    backward = {"test_lstm_step_backward", "test_lstm_backward", "test_gru_step_backward"}
    assert {g for g, v in scores["columns"].items() if v == 0} == backward
    graded = fx.load(course / "autograded" / "columns" / a / f"{a}.ipynb")
    outputs = {fx.grade_id(c): json.dumps(c.get("outputs", [])) for c in graded["cells"]}
    assert all("time limit" in outputs[g] for g in backward), {g: outputs[g] for g in backward}


# --------------------------------------------------------------------------- the memory task


def _helpers() -> dict:
    """The notebook's provided memory-task cell, run in a fresh namespace."""
    nb = fx.load(fx.solution_path(ROOT, "gated_cells"))
    (cell,) = [c for c in nb["cells"] if "def memory_batch(" in fx.source(c)]
    assert not cell["metadata"].get("nbgrader"), "the memory task is provided, not an answer"
    namespace: dict = {"np": np}
    exec(fx.source(cell), namespace)
    return namespace


def test_the_notebook_s_memory_task_is_the_book_s() -> None:
    ns = _helpers()
    T, C = ns["MEMORY_T"], ns["MEMORY_CLASSES"]
    x, labels = ns["memory_batch"](np.random.default_rng(0), 400, noise=0.0)
    book = memory_task(400, T, num_classes=C, noise=0.0, seed=0)
    book_x, book_labels = book.inputs.double().numpy(), book.targets.numpy()
    for c in range(C):  # without noise a sequence is determined by its class
        ours, theirs = x[labels == c], book_x[book_labels == c]
        assert len(ours) and len(theirs)
        np.testing.assert_array_equal(ours, np.broadcast_to(theirs[0], ours.shape))
    x, labels = ns["memory_batch"](np.random.default_rng(1), 4000)
    assert x.shape == (4000, T, C + 1) and set(labels) == set(range(C))
    assert np.all(x[:, 1:, C] == 0) and abs(x[:, 1:, :C].std() - ns["MEMORY_NOISE"]) < 0.02


def test_the_provided_loss_gradient_and_optimizer() -> None:
    ns = _helpers()
    rng = np.random.default_rng(3)
    logits, labels = rng.normal(size=(5, 4)), rng.integers(0, 4, size=5)
    loss, dlogits = ns["softmax_cross_entropy"](logits.copy(), labels)
    leaf = t_(logits).requires_grad_(True)
    want = torch.nn.functional.cross_entropy(leaf, torch.as_tensor(labels))
    (grad,) = torch.autograd.grad(want, [leaf])
    assert np.isclose(loss, want.item())
    np.testing.assert_allclose(dlogits, grad.numpy(), rtol=1e-12, atol=1e-14)
    # adam_update is torch.optim.Adam's step
    p, g = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    params, state = {"w": p.copy()}, {}
    tp = torch.nn.Parameter(t_(p))
    opt = torch.optim.Adam([tp], lr=ns["MEMORY_LR"])
    for _ in range(3):
        ns["adam_update"](params, {"w": g}, state)
        tp.grad = t_(g)
        opt.step()
    np.testing.assert_allclose(params["w"], tp.detach().numpy(), rtol=1e-12)


def test_written_answers_reach_students_only_as_a_stub() -> None:
    source = fx.load(fx.solution_path(ROOT, "gated_cells"))
    released = fx.load(ROOT / "assignments" / "gated_cells" / "gated_cells.ipynb")
    text = "\n".join(fx.source(c) for c in released["cells"])
    written = [c for c in source["cells"] if re.fullmatch(r"written_\w+", fx.grade_id(c) or "")]
    answers = [c for c in written if not fx.grade_id(c).endswith("_question")]
    assert len(answers) == 2
    for cell in answers:
        body = fx.source(cell)
        assert body.startswith("### BEGIN SOLUTION") and body.rstrip().endswith("### END SOLUTION")
        # the rubric, one line per point, comes before the model answer
        assert body.index("*Rubric (instructor's copy).*") < body.index("*Model answer.*")
        (stub,) = [c for c in released["cells"] if fx.grade_id(c) == fx.grade_id(cell)]
        assert fx.source(stub).strip() == "YOUR ANSWER HERE"
        lines = [ln.strip() for ln in body.splitlines() if len(ln.strip()) > 20]
        assert not [ln for ln in lines if ln in text], fx.grade_id(cell)
