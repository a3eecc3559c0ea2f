"""Every graded function's :class:`~rnn_grader.checks.base.Check`, by assignment.

The checks of the first two assignments are written here; an assignment with a module of
its own (:mod:`rnn_grader.checks.deep_birnn`) keeps its checks there. :data:`CHECKS`,
:data:`ASSIGNMENTS` and :data:`DEPENDENCIES` are what the grader, the release and the
self-check read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rnn_grader.checks import deep_birnn, inputs, mistakes
from rnn_grader.checks import reference as ref
from rnn_grader.checks.base import (
    Case,
    Check,
    backward_call,
    backward_reference,
    forward_call,
    forward_reference,
    step,
    t_,
    to_np,
)
from rnn_grader.checks.mistakes import explained

RNN_STEP = ("x", "h_prev", "Wx", "Wh", "b")
RNN_SEQ = ("x", "h0", "Wx", "Wh", "b")
LSTM_STEP = ("x", "h_prev", "c_prev", "Wx", "Wh", "b")
STEP_GRADS = ("dx", "dh_prev", "dWx", "dWh", "db")
SEQ_GRADS = ("dx", "dh0", "dWx", "dWh", "db")
GRADCHECK = (
    "compare your gradients with numerical_gradient on a small case (relative_error should "
    "be below 1e-7) to find the first wrong one"
)


# --------------------------------------------------------------------------- references


def _grad_norms(case: Case) -> dict[str, Any]:
    norms = ref.grad_norms_through_time(*(t_(case[k]) for k in ("dh_last", *RNN_SEQ)))
    return {"norms": to_np(norms)}


def _clip(case: Case) -> dict[str, Any]:
    grads = {k: t_(v) for k, v in case["grads"].items()}
    clipped, total = ref.clip_grad_norm(grads, float(case["max_norm"]))
    return {"clipped": to_np(clipped), "total_norm": total}


# --------------------------------------------------------------------------- calls


_RNN_STEP_F = forward_call("rnn_step_forward", RNN_STEP, ("h_next",), True)
_RNN_F = forward_call("rnn_forward", RNN_SEQ, ("h",), True)
_LSTM_STEP_F = forward_call("lstm_step_forward", LSTM_STEP, ("h_next", "c_next"), True)
_LSTM_F = forward_call("lstm_forward", RNN_SEQ, ("h",), True)
_GRU_STEP_F = forward_call("gru_step_forward", RNN_STEP, ("h_next",), True)


def _cost_seq(gates: int, upstream: str) -> Callable[[np.random.Generator], Case]:
    return lambda rng: inputs.cost_rnn_seq(rng, gates=gates, upstream=upstream)


# --------------------------------------------------------------------------- the registry

_ENTRIES = [
    # Assignment 1: rnn_bptt
    Check(
        "rnn_step_forward",
        "rnn_bptt",
        _RNN_STEP_F,
        lambda r, h, i: inputs.rnn_like(r, h, gates=1, step=True),
        forward_reference(ref.rnn_step_forward, RNN_STEP, ("h_next",)),
        "h_next = tanh(x @ Wx + h_prev @ Wh + b): check each term's shape and the activation",
        explained(mistakes.rnn_step_forward),
    ),
    Check(
        "rnn_step_backward",
        "rnn_bptt",
        backward_call(_RNN_STEP_F, "rnn_step_backward", ("dh_next",), STEP_GRADS),
        lambda r, h, i: inputs.rnn_step_backward(r, h),
        backward_reference(ref.rnn_step_forward, RNN_STEP, ("dh_next",)),
        "every gradient goes through the pre-activation's gradient; " + GRADCHECK,
        explained(mistakes.rnn_step_backward),
        cost=inputs.cost_rnn_step,
    ),
    Check(
        "rnn_forward",
        "rnn_bptt",
        _RNN_F,
        lambda r, h, i: inputs.rnn_like(r, h, gates=1, step=False),
        forward_reference(ref.rnn_forward, RNN_SEQ, ("h",)),
        "h[:, t] is the state after reading x[:, t], starting from h0",
        explained(mistakes.rnn_forward),
    ),
    Check(
        "rnn_backward",
        "rnn_bptt",
        backward_call(_RNN_F, "rnn_backward", ("dh",), SEQ_GRADS),
        lambda r, h, i: inputs.rnn_backward(r, h),
        backward_reference(ref.rnn_forward, RNN_SEQ, ("dh",)),
        "each state's gradient has two sources, and shared weights collect gradients from "
        "every step; " + GRADCHECK,
        explained(mistakes.rnn_backward),
        cost=_cost_seq(1, "dh"),
    ),
    Check(
        "grad_norms_through_time",
        "rnn_bptt",
        backward_call(_RNN_F, "grad_norms_through_time", ("dh_last",), ("norms",)),
        lambda r, h, i: inputs.grad_norms(r, h),
        _grad_norms,
        "walk back from the last state, one step's Jacobian at a time, and record the norm "
        "of dJ/dh_t at every t",
        explained(mistakes.grad_norms_through_time),
        cost=_cost_seq(1, "dh_last"),
    ),
    Check(
        "clip_grad_norm",
        "rnn_bptt",
        {
            "steps": [step("clip_grad_norm", ("grads", "max_norm"), ("clipped", "total_norm"))],
            "outputs": ["clipped", "total_norm"],
            "convert": {"max_norm": "float"},
        },
        inputs.clip,
        _clip,
        "one global norm over all arrays decides whether, and by how much, every array is "
        "scaled; the returned norm is the one before clipping",
        explained(mistakes.clip_grad_norm),
    ),
    # Assignment 2: gated_cells
    Check(
        "sigmoid",
        "gated_cells",
        {
            "steps": [step("sigmoid", ("x",), ("y",))],
            "outputs": ["y"],
            "errstate": True,
        },
        inputs.sigmoid,
        forward_reference(ref.sigmoid, ("x",), ("y",)),
        "σ(x) = 1 / (1 + exp(-x)), evaluated so that no exp overflows for |x| up to 1000",
        explained(mistakes.sigmoid),
    ),
    Check(
        "lstm_step_forward",
        "gated_cells",
        _LSTM_STEP_F,
        lambda r, h, i: inputs.lstm_step(r, h, False),
        forward_reference(ref.lstm_step_forward, LSTM_STEP, ("h_next", "c_next")),
        "one product a = x @ Wx + h_prev @ Wh + b holds the four gate blocks i, f, g, o, "
        "H columns each",
        explained(mistakes.lstm_step_forward),
    ),
    Check(
        "lstm_step_backward",
        "gated_cells",
        backward_call(
            _LSTM_STEP_F,
            "lstm_step_backward",
            ("dh_next", "dc_next"),
            ("dx", "dh_prev", "dc_prev", "dWx", "dWh", "db"),
        ),
        lambda r, h, i: inputs.lstm_step(r, h, True),
        backward_reference(ref.lstm_step_forward, LSTM_STEP, ("dh_next", "dc_next")),
        "the cell state receives gradient by two paths; the four gate gradients are stacked "
        "in the blocks' order; " + GRADCHECK,
        explained(mistakes.lstm_step_backward),
        cost=lambda rng: inputs.cost_gated_step(rng, gates=4),
    ),
    Check(
        "lstm_forward",
        "gated_cells",
        _LSTM_F,
        lambda r, h, i: inputs.lstm_seq(r, h, False),
        forward_reference(ref.lstm_forward, RNN_SEQ, ("h",)),
        "the initial cell state is zero; h[:, t] is the state after reading x[:, t]",
        explained(mistakes.lstm_forward),
    ),
    Check(
        "lstm_backward",
        "gated_cells",
        backward_call(_LSTM_F, "lstm_backward", ("dh",), SEQ_GRADS),
        lambda r, h, i: inputs.lstm_seq(r, h, True),
        backward_reference(ref.lstm_forward, RNN_SEQ, ("dh",)),
        "both the hidden and the cell state carry gradient from step t+1 back to step t; "
        + GRADCHECK,
        explained(mistakes.lstm_backward),
        cost=_cost_seq(4, "dh"),
    ),
    Check(
        "gru_step_forward",
        "gated_cells",
        _GRU_STEP_F,
        lambda r, h, i: inputs.gru_step(r, h, False),
        forward_reference(ref.gru_step_forward, RNN_STEP, ("h_next",)),
        "blocks u, r, c; the reset gate acts on h_prev before the recurrent product of the "
        "candidate, and u weights the candidate",
        explained(mistakes.gru_step_forward),
    ),
    Check(
        "gru_step_backward",
        "gated_cells",
        backward_call(_GRU_STEP_F, "gru_step_backward", ("dh_next",), STEP_GRADS),
        lambda r, h, i: inputs.gru_step(r, h, True),
        backward_reference(ref.gru_step_forward, RNN_STEP, ("dh_next",)),
        "h_prev reaches h_next by four paths: directly, through u, through r and through "
        "r ⊙ h_prev in the candidate; " + GRADCHECK,
        explained(mistakes.gru_step_backward),
        cost=lambda rng: inputs.cost_gated_step(rng, gates=3),
    ),
]

_ENTRIES += deep_birnn.CHECKS
CHECKS: dict[str, Check] = {c.name: c for c in _ENTRIES}
ASSIGNMENTS: dict[str, tuple[str, ...]] = {}
for _c in _ENTRIES:
    ASSIGNMENTS.setdefault(_c.assignment, ())
    ASSIGNMENTS[_c.assignment] += (_c.name,)
NAMES: tuple[str, ...] = tuple(CHECKS)
#: The student functions each check calls (a wrong forward also fails its backward check).
DEPENDENCIES: dict[str, list[str]] = {c.name: c.functions() for c in _ENTRIES}


def get(name: str) -> Check:
    """The check named ``name``; ``ValueError`` naming the known checks otherwise."""
    if name not in CHECKS:
        raise ValueError(f"name must be one of {', '.join(NAMES)}; got {name!r}")
    return CHECKS[name]
