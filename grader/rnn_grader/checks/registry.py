"""One entry per graded function: its inputs, its reference, its mistakes and how to call it.

A :class:`Check` holds everything the grader and the public self-check need to know about
one graded function of the assignment contract:

* ``make``: the input generator (:mod:`rnn_grader.checks.inputs`), public or hidden;
* ``cost``: for a backward function, a large hidden case that only a real backward pass
  finishes within the per-check time limit;
* ``reference``: the expected outputs, from the companion package's layers and autograd
  (:mod:`rnn_grader.checks.reference`);
* ``mistakes``: outputs of known wrong versions, so a message can name the mistake
  (:mod:`rnn_grader.checks.mistakes`);
* ``call``: plain data saying which of the student's functions to call, with which inputs,
  and which returned values are graded (interpreted by ``selfcheck.run``);
* ``hint``: what to check when the outputs match no known mistake.

Public cases are seeded by the check's name; hidden ones by the course secret
(:mod:`rnn_grader.secret`), so they differ from course to course.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rnn_grader.checks import inputs, mistakes
from rnn_grader.checks import reference as ref
from rnn_grader.checks.mistakes import explained

Case = dict[str, Any]
N_PUBLIC, N_HIDDEN = 2, 5

RNN_STEP = ("x", "h_prev", "Wx", "Wh", "b")
RNN_SEQ = ("x", "h0", "Wx", "Wh", "b")
LSTM_STEP = ("x", "h_prev", "c_prev", "Wx", "Wh", "b")
STEP_GRADS = ("dx", "dh_prev", "dWx", "dWh", "db")
SEQ_GRADS = ("dx", "dh0", "dWx", "dWh", "db")
GRADCHECK = (
    "compare your gradients with numerical_gradient on a small case (relative_error should "
    "be below 1e-7) to find the first wrong one"
)


@dataclass(frozen=True)
class Check:
    """Everything about one graded function."""

    name: str
    assignment: str
    call: dict[str, Any]  # plain data for selfcheck.run
    make: Callable[[np.random.Generator, bool, int], Case]
    reference: Callable[[Case], dict[str, Any]]
    hint: str
    mistakes: Callable[[Case], dict[str, dict[str, Any]]] = lambda case: {}
    cost: Callable[[np.random.Generator], Case] | None = None
    extra_hidden: Callable[[np.random.Generator], Case] | None = None

    def functions(self) -> list[str]:
        """The student functions this check calls, in order."""
        return [step["function"] for step in self.call["steps"]]

    def cases(self, *, hidden: bool, secret: bytes | None = None) -> list[Case]:
        """The public cases, or the hidden ones drawn from ``secret``."""
        if hidden:
            if not secret:
                raise ValueError("hidden cases need the course secret")
            digest = hmac.new(secret, f"{self.name}/hidden".encode(), hashlib.sha256).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:16], "big"))
        else:
            rng = np.random.default_rng(zlib.crc32(f"{self.name}/public".encode()))
        out = [self.make(rng, hidden, i) for i in range(N_HIDDEN if hidden else N_PUBLIC)]
        if hidden and self.extra_hidden is not None:
            out.append(self.extra_hidden(rng))
        if hidden and self.cost is not None:
            out.append(self.cost(rng))
        return out

    def expected(self, case: Case) -> dict[str, Any]:
        """The reference outputs on ``case`` (NumPy float64, or ``{"raised": ...}``)."""
        return self.reference(case)


# --------------------------------------------------------------------------- references


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _np(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    if isinstance(value, dict):
        return {k: _np(v) for k, v in value.items()}
    return value


def _forward(fn: Callable[..., Any], keys: tuple[str, ...], names: tuple[str, ...]):
    def reference(case: Case) -> dict[str, Any]:
        out = fn(*(_t(case[k]) for k in keys))
        outs = out if isinstance(out, tuple) else (out,)
        return {n: _np(o) for n, o in zip(names, outs, strict=True)}

    return reference


def _backward(fn: Callable[..., Any], keys: tuple[str, ...], upstream: tuple[str, ...]):
    def reference(case: Case) -> dict[str, Any]:
        grads = ref.vjp(fn, {k: _t(case[k]) for k in keys}, [_t(case[u]) for u in upstream])
        return _np(grads)

    return reference


def _grad_norms(case: Case) -> dict[str, Any]:
    norms = ref.grad_norms_through_time(*(_t(case[k]) for k in ("dh_last", *RNN_SEQ)))
    return {"norms": _np(norms)}


def _clip(case: Case) -> dict[str, Any]:
    grads = {k: _t(v) for k, v in case["grads"].items()}
    clipped, total = ref.clip_grad_norm(grads, float(case["max_norm"]))
    return {"clipped": _np(clipped), "total_norm": total}


def _birnn(case: Case) -> dict[str, Any]:
    pf, pb = ([_t(p) for p in case[k]] for k in ("params_fwd", "params_bwd"))
    h = ref.birnn_forward(*(_t(case[k]) for k in ("x", "h0_fwd", "h0_bwd")), pf, pb)
    return {"h": _np(h)}


def _stacked(case: Case) -> dict[str, Any]:
    layers = [[_t(p) for p in ps] for ps in case["layers"]]
    try:
        h = ref.stacked_rnn_forward(
            _t(case["x"]), [_t(h) for h in case["h0s"]], layers, residual=bool(case["residual"])
        )
    except ValueError:
        return {"raised": "ValueError"}
    return {"h": _np(h)}


# --------------------------------------------------------------------------- calls


def _step(function: str, args: tuple[str, ...], returns: tuple[str, ...], **kw: Any) -> dict:
    return {"function": function, "args": list(args), "returns": list(returns), **kw}


def _forward_call(function: str, args: tuple[str, ...], outputs: tuple[str, ...], cache: bool):
    returns = (*outputs, "cache") if cache else outputs
    return {"steps": [_step(function, args, returns)], "outputs": list(outputs)}


def _backward_call(forward: dict, function: str, upstream: tuple[str, ...], outputs: tuple):
    first = forward["steps"][0]
    return {
        "steps": [first, _step(function, (*upstream, "cache"), outputs)],
        "outputs": list(outputs),
    }


_RNN_STEP_F = _forward_call("rnn_step_forward", RNN_STEP, ("h_next",), True)
_RNN_F = _forward_call("rnn_forward", RNN_SEQ, ("h",), True)
_LSTM_STEP_F = _forward_call("lstm_step_forward", LSTM_STEP, ("h_next", "c_next"), True)
_LSTM_F = _forward_call("lstm_forward", RNN_SEQ, ("h",), True)
_GRU_STEP_F = _forward_call("gru_step_forward", RNN_STEP, ("h_next",), True)


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
        _forward(ref.rnn_step_forward, RNN_STEP, ("h_next",)),
        "h_next = tanh(x @ Wx + h_prev @ Wh + b): check each term's shape and the activation",
        explained(mistakes.rnn_step_forward),
    ),
    Check(
        "rnn_step_backward",
        "rnn_bptt",
        _backward_call(_RNN_STEP_F, "rnn_step_backward", ("dh_next",), STEP_GRADS),
        lambda r, h, i: inputs.rnn_step_backward(r, h),
        _backward(ref.rnn_step_forward, RNN_STEP, ("dh_next",)),
        "every gradient goes through the pre-activation's gradient; " + GRADCHECK,
        explained(mistakes.rnn_step_backward),
        cost=inputs.cost_rnn_step,
    ),
    Check(
        "rnn_forward",
        "rnn_bptt",
        _RNN_F,
        lambda r, h, i: inputs.rnn_like(r, h, gates=1, step=False),
        _forward(ref.rnn_forward, RNN_SEQ, ("h",)),
        "h[:, t] is the state after reading x[:, t], starting from h0",
        explained(mistakes.rnn_forward),
    ),
    Check(
        "rnn_backward",
        "rnn_bptt",
        _backward_call(_RNN_F, "rnn_backward", ("dh",), SEQ_GRADS),
        lambda r, h, i: inputs.rnn_backward(r, h),
        _backward(ref.rnn_forward, RNN_SEQ, ("dh",)),
        "each state's gradient has two sources, and shared weights collect gradients from "
        "every step; " + GRADCHECK,
        explained(mistakes.rnn_backward),
        cost=_cost_seq(1, "dh"),
    ),
    Check(
        "grad_norms_through_time",
        "rnn_bptt",
        _backward_call(_RNN_F, "grad_norms_through_time", ("dh_last",), ("norms",)),
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
            "steps": [_step("clip_grad_norm", ("grads", "max_norm"), ("clipped", "total_norm"))],
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
            "steps": [_step("sigmoid", ("x",), ("y",))],
            "outputs": ["y"],
            "errstate": True,
        },
        inputs.sigmoid,
        _forward(ref.sigmoid, ("x",), ("y",)),
        "σ(x) = 1 / (1 + exp(-x)), evaluated so that no exp overflows for |x| up to 1000",
        explained(mistakes.sigmoid),
    ),
    Check(
        "lstm_step_forward",
        "gated_cells",
        _LSTM_STEP_F,
        lambda r, h, i: inputs.lstm_step(r, h, False),
        _forward(ref.lstm_step_forward, LSTM_STEP, ("h_next", "c_next")),
        "one product a = x @ Wx + h_prev @ Wh + b holds the four gate blocks i, f, g, o, "
        "H columns each",
        explained(mistakes.lstm_step_forward),
    ),
    Check(
        "lstm_step_backward",
        "gated_cells",
        _backward_call(
            _LSTM_STEP_F,
            "lstm_step_backward",
            ("dh_next", "dc_next"),
            ("dx", "dh_prev", "dc_prev", "dWx", "dWh", "db"),
        ),
        lambda r, h, i: inputs.lstm_step(r, h, True),
        _backward(ref.lstm_step_forward, LSTM_STEP, ("dh_next", "dc_next")),
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
        _forward(ref.lstm_forward, RNN_SEQ, ("h",)),
        "the initial cell state is zero; h[:, t] is the state after reading x[:, t]",
        explained(mistakes.lstm_forward),
    ),
    Check(
        "lstm_backward",
        "gated_cells",
        _backward_call(_LSTM_F, "lstm_backward", ("dh",), SEQ_GRADS),
        lambda r, h, i: inputs.lstm_seq(r, h, True),
        _backward(ref.lstm_forward, RNN_SEQ, ("dh",)),
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
        _forward(ref.gru_step_forward, RNN_STEP, ("h_next",)),
        "blocks u, r, c; the reset gate acts on h_prev before the recurrent product of the "
        "candidate, and u weights the candidate",
        explained(mistakes.gru_step_forward),
    ),
    Check(
        "gru_step_backward",
        "gated_cells",
        _backward_call(_GRU_STEP_F, "gru_step_backward", ("dh_next",), STEP_GRADS),
        lambda r, h, i: inputs.gru_step(r, h, True),
        _backward(ref.gru_step_forward, RNN_STEP, ("dh_next",)),
        "h_prev reaches h_next by four paths: directly, through u, through r and through "
        "r ⊙ h_prev in the candidate; " + GRADCHECK,
        explained(mistakes.gru_step_backward),
        cost=lambda rng: inputs.cost_gated_step(rng, gates=3),
    ),
    # Assignment 3: deep_birnn
    Check(
        "birnn_forward",
        "deep_birnn",
        {
            "steps": [
                _step(
                    "birnn_forward",
                    ("x", "h0_fwd", "h0_bwd", "params_fwd", "params_bwd"),
                    ("h",),
                )
            ],
            "outputs": ["h"],
            "convert": {"params_fwd": "tuple", "params_bwd": "tuple"},
        },
        lambda r, h, i: inputs.birnn(r, h),
        _birnn,
        "h[:, t, H:] must line up with x[:, t]: the backward RNN's state after reading "
        "x[:, T-1], ..., x[:, t]",
        explained(mistakes.birnn_forward),
    ),
    Check(
        "stacked_rnn_forward",
        "deep_birnn",
        {
            "steps": [
                _step(
                    "stacked_rnn_forward",
                    ("x", "h0s", "layers"),
                    ("h",),
                    kwargs={"residual": "residual"},
                )
            ],
            "outputs": ["h"],
            "convert": {"layers": "tuples", "residual": "bool"},
            "raises": "ValueError",
        },
        inputs.stacked,
        _stacked,
        "layer l reads layer l-1's states; with residual=True layers l > 0 add their input",
        explained(mistakes.stacked_rnn_forward),
        extra_hidden=inputs.stacked_mismatch,
    ),
    Check(
        "highway_forward",
        "deep_birnn",
        _forward_call("highway_forward", ("x", "W_h", "b_h", "W_t", "b_t"), ("y",), False),
        lambda r, h, i: inputs.highway(r, h),
        _forward(ref.highway_forward, ("x", "W_h", "b_h", "W_t", "b_t"), ("y",)),
        "the gate t decides, per feature, how much of the transform and how much of x pass",
        explained(mistakes.highway_forward),
    ),
]

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
