"""Assignment 1, ``rnn_bptt``: its checks (inputs, reference, known mistakes, calls).

The tanh RNN's step and sequence, forward and backward, the gradient norms through time
and clipping by the global norm. :mod:`rnn_grader.checks.registry` collects
:data:`CHECKS` with the other assignments'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rnn_grader.checks import inputs
from rnn_grader.checks import reference as ref
from rnn_grader.checks.base import (
    Case,
    Check,
    Variants,
    backward_call,
    backward_reference,
    explain,
    explained,
    forward_call,
    forward_reference,
    step,
    t_,
    to_np,
)
from rnn_grader.checks.inputs import rnn_like, weights

RNN_STEP = ("x", "h_prev", "Wx", "Wh", "b")
RNN_SEQ = ("x", "h0", "Wx", "Wh", "b")
STEP_GRADS = ("dx", "dh_prev", "dWx", "dWh", "db")
SEQ_GRADS = ("dx", "dh0", "dWx", "dWh", "db")
GRADCHECK = (
    "compare your gradients with numerical_gradient on a small case (relative_error should "
    "be below 1e-7) to find the first wrong one"
)


# --------------------------------------------------------------------------- inputs


def rnn_step_backward_inputs(rng, hidden):  # type: ignore[no-untyped-def]
    case = rnn_like(rng, hidden, gates=1, step=True)
    case["dh_next"] = rng.normal(size=case["h_prev"].shape)
    return case


def rnn_backward_inputs(rng, hidden):  # type: ignore[no-untyped-def]
    case = rnn_like(rng, hidden, gates=1, step=False)
    N, T, _ = case["x"].shape
    case["dh"] = rng.normal(size=(N, T, case["h0"].shape[1]))
    return case


def grad_norms_inputs(rng, hidden):  # type: ignore[no-untyped-def]
    case = rnn_like(rng, hidden, gates=1, step=False)
    case["dh_last"] = rng.normal(size=case["h0"].shape)
    return case


def clip_inputs(rng: np.random.Generator, hidden: bool, index: int) -> Case:
    shapes = {"Wx": (5, 6), "Wh": (6, 6), "b": (6,)}
    if hidden:
        shapes = {
            f"p{k}": tuple(int(s) for s in rng.integers(1, 6, size=rng.integers(1, 3)))
            for k in range(int(rng.integers(1, 5)))
        }
    grads = {k: rng.normal(scale=float(rng.uniform(0.2, 3.0)), size=s) for k, s in shapes.items()}
    total = float(np.sqrt(sum(float((g**2).sum()) for g in grads.values())))
    # alternate between a threshold below the norm (clipped) and above it (unchanged)
    factor = float(rng.uniform(0.1, 0.8)) if index % 2 == 0 else float(rng.uniform(1.2, 3.0))
    return {"grads": grads, "max_norm": total * factor}


def cost_rnn_step(rng: np.random.Generator) -> Case:
    """One RNN step with N = 1024, D = H = 512: 524 288 weight entries in 512 columns."""
    N, D, H = 1024, 512, 512
    case = {"x": rng.normal(size=(N, D)), "h_prev": rng.normal(scale=0.5, size=(N, H))}
    case.update(weights(rng, D, H, 1))
    case["dh_next"] = rng.normal(size=(N, H))
    return case


# --------------------------------------------------------------------------- references


def _grad_norms(case: Case) -> dict[str, Any]:
    norms = ref.grad_norms_through_time(*(t_(case[k]) for k in ("dh_last", *RNN_SEQ)))
    return {"norms": to_np(norms)}


def _clip(case: Case) -> dict[str, Any]:
    grads = {k: t_(v) for k, v in case["grads"].items()}
    clipped, total = ref.clip_grad_norm(grads, float(case["max_norm"]))
    return {"clipped": to_np(clipped), "total_norm": total}


# --------------------------------------------------------------------------- known mistakes

#: The hint and the fix of every mistake, by the short name used below.
EXPLAINED: dict[str, str] = {
    "the tanh is missing: h_next = tanh(x Wx + h_prev Wh + b)": explain(
        "your h_next can leave [-1, 1]: the step's nonlinearity is missing",
        "apply np.tanh to x @ Wx + h_prev @ Wh + b",
    ),
    "Wh is used transposed: the recurrent product is h_prev @ Wh": explain(
        "the recurrent product uses Wh's rows where the contract uses its columns (compare the "
        "shapes in the layout: h_prev is (N, H), Wh maps it from the right)",
        "use h_prev @ Wh, not h_prev @ Wh.T",
    ),
    "tanh's derivative is taken at the pre-activation a; it is 1 - tanh(a)² = 1 - h_next²": explain(
        "the outputs scale with tanh's derivative evaluated at the wrong point: write tanh' in "
        "terms of the step's output",
        "da = dh_next * (1 - h_next**2), not (1 - a**2)",
    ),
    "tanh's derivative is missing: da = dh_next * (1 - h_next**2)": explain(
        "your gradients do not shrink where the state saturates: the chain rule through tanh is "
        "missing",
        "da = dh_next * (1 - h_next**2) before the products",
    ),
    "h0 is included in the output: h[:, t] is the state AFTER reading x[:, t]": explain(
        "your output has one state too many: which states does h hold?",
        "h[:, t] is the state after reading x[:, t]; do not store h0",
    ),
    "the states are shifted by one step (h0 first): h[:, t] is the state after x[:, t]": explain(
        "every state sits one step late: h[:, 0] must already have read x[:, 0]",
        "store the new state after computing it: h[:, t] = tanh(x[:, t] Wx + h_{t-1} Wh + b)",
    ),
    "the gradient from the next step is forgotten: the upstream of step t is dh[:, t] PLUS the "
    "dh_prev that step t+1 sent back": explain(
        "only the last step's gradients are right: a state influences the loss directly and "
        "through the next step",
        "the upstream of step t is dh[:, t] + the dh_prev that step t+1 returned",
    ),
    "dWx, dWh and db are overwritten at each step instead of summed over time (+=)": explain(
        "the weight gradients hold one step's contribution: the weights are shared by every step",
        "accumulate dWx, dWh, db over t with +=, starting from zeros",
    ),
    "tanh's derivative is taken at the pre-activation; it is 1 - h_t²": explain(
        "the gradients scale with tanh's derivative evaluated at the wrong point: write tanh' in "
        "terms of the step's output",
        "multiply by (1 - h[:, t]**2), not (1 - a**2)",
    ),
    "the norms are in reverse order: norms[t] belongs to h[:, t], so norms[T-1] = ‖dh_last‖": explain(  # noqa: E501
        "your norms are right but in the wrong order: which entry belongs to the last state?",
        "norms[t] is the norm for h[:, t]: norms[T-1] = ‖dh_last‖, then fill t = T-2, ..., 0",
    ),
    "the tanh derivative (1 - h_t²) is missing from the backward recursion": explain(
        "your norms decay or grow too evenly: each backward step goes through tanh's derivative "
        "too",
        "g = (g * (1 - h[:, t]**2)) @ Wh.T when going from t to t-1",
    ),
    "each array is clipped by its own norm; clip by the GLOBAL norm over all arrays": explain(
        "the arrays are scaled by different factors, which changes the update's direction",
        "compute one norm over all arrays together and scale every array by the same max_norm / "
        "total_norm",
    ),
    "the arrays are rescaled even though total_norm <= max_norm": explain(
        "gradients below the threshold changed: clipping only ever shortens a gradient that is "
        "too long",
        "scale only when total_norm > max_norm; otherwise return the arrays unchanged",
    ),
    "total_norm must be the norm BEFORE clipping": explain(
        "the returned norm equals max_norm although the gradients were longer: which norm is "
        "reported?",
        "return the norm measured before scaling",
    ),
    "total_norm is the sum of squares; take its square root": explain(
        "the returned norm is the square of the right one",
        "total_norm = sqrt(sum of squares of all entries)",
    ),
}

_explained = explained(EXPLAINED)


def _rnn_bptt(
    case: dict[str, Any],
    *,
    deriv_at_pre: bool = False,
    recurrent: bool = True,
    keep_step: int | None = None,
) -> dict[str, np.ndarray]:
    """NumPy BPTT with switchable mistakes; ``keep_step`` keeps only that step's dW, db."""
    x, h0, Wx, Wh, b, dh = (case[k] for k in ("x", "h0", "Wx", "Wh", "b", "dh"))
    N, T, _ = x.shape
    a = np.empty((N, T, Wh.shape[0]))
    h = np.empty_like(a)
    prev = h0
    for t in range(T):
        a[:, t] = x[:, t] @ Wx + prev @ Wh + b
        h[:, t] = prev = np.tanh(a[:, t])
    h_prev = np.concatenate([h0[:, None], h[:, :-1]], axis=1)  # (N, T, H)
    dx, dWx, dWh, db = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    carry = np.zeros_like(h0)
    for t in reversed(range(T)):
        g = dh[:, t] + (carry if recurrent else 0.0)
        da = g * (1 - (a[:, t] if deriv_at_pre else h[:, t]) ** 2)
        dx[:, t] = da @ Wx.T
        carry = da @ Wh.T
        step = (x[:, t].T @ da, h_prev[:, t].T @ da, da.sum(0))
        if keep_step is None:
            dWx, dWh, db = dWx + step[0], dWh + step[1], db + step[2]
        elif keep_step == t:
            dWx, dWh, db = step
    return {"dx": dx, "dh0": carry, "dWx": dWx, "dWh": dWh, "db": db}


def rnn_step_forward(case: dict[str, Any]) -> Variants:
    x, h, Wx, Wh, b = (case[k] for k in ("x", "h_prev", "Wx", "Wh", "b"))
    return {
        "the tanh is missing: h_next = tanh(x Wx + h_prev Wh + b)": {"h_next": x @ Wx + h @ Wh + b},
        "Wh is used transposed: the recurrent product is h_prev @ Wh": {
            "h_next": np.tanh(x @ Wx + h @ Wh.T + b)
        },
    }


def rnn_step_backward(case: dict[str, Any]) -> Variants:
    x, h, Wx, Wh, b, dn = (case[k] for k in ("x", "h_prev", "Wx", "Wh", "b", "dh_next"))
    a = x @ Wx + h @ Wh + b
    out = {}
    for hint, da in (
        (
            "tanh's derivative is taken at the pre-activation a; it is 1 - tanh(a)² = 1 - h_next²",
            dn * (1 - a**2),
        ),
        ("tanh's derivative is missing: da = dh_next * (1 - h_next**2)", dn),
    ):
        out[hint] = {
            "dx": da @ Wx.T,
            "dh_prev": da @ Wh.T,
            "dWx": x.T @ da,
            "dWh": h.T @ da,
            "db": da.sum(0),
        }
    return out


def rnn_forward(case: dict[str, Any]) -> Variants:
    h = ref.rnn_forward(*(t_(case[k]) for k in ("x", "h0", "Wx", "Wh", "b"))).numpy()
    h0 = case["h0"][:, None]
    return {
        "h0 is included in the output: h[:, t] is the state AFTER reading x[:, t]": {
            "h": np.concatenate([h0, h], axis=1)
        },
        "the states are shifted by one step (h0 first): h[:, t] is the state after x[:, t]": {
            "h": np.concatenate([h0, h[:, :-1]], axis=1)
        },
    }


def rnn_backward(case: dict[str, Any]) -> Variants:
    T = case["x"].shape[1]
    last_only = "dWx, dWh and db are overwritten at each step instead of summed over time (+=)"
    return {
        "the gradient from the next step is forgotten: the upstream of step t is dh[:, t] "
        "PLUS the dh_prev that step t+1 sent back": _rnn_bptt(case, recurrent=False),
        last_only: _rnn_bptt(case, keep_step=0),
        last_only + " ": _rnn_bptt(case, keep_step=T - 1),
        "tanh's derivative is taken at the pre-activation; it is 1 - h_t²": _rnn_bptt(
            case, deriv_at_pre=True
        ),
    }


def grad_norms_through_time(case: dict[str, Any]) -> Variants:
    args = [t_(case[k]) for k in ("dh_last", "x", "h0", "Wx", "Wh", "b")]
    norms = ref.grad_norms_through_time(*args).numpy()
    h = ref.rnn_forward(*args[1:]).numpy()
    g, plain = case["dh_last"], [np.linalg.norm(case["dh_last"])]
    for _ in range(h.shape[1] - 1):
        g = g @ case["Wh"].T  # the tanh derivative forgotten
        plain.append(np.linalg.norm(g))
    return {
        "the norms are in reverse order: norms[t] belongs to h[:, t], so norms[T-1] = ‖dh_last‖": {
            "norms": norms[::-1].copy()
        },
        "the tanh derivative (1 - h_t²) is missing from the backward recursion": {
            "norms": np.array(plain[::-1])
        },
    }


def clip_grad_norm(case: dict[str, Any]) -> Variants:
    grads, max_norm = case["grads"], float(case["max_norm"])
    total = float(np.sqrt(sum(float((g**2).sum()) for g in grads.values())))
    per_array = {}
    for k, g in grads.items():
        n = float(np.linalg.norm(g))
        per_array[k] = g * (max_norm / n) if n > max_norm else g
    scaled = {k: g * (max_norm / total) for k, g in grads.items()}
    clipped = scaled if total > max_norm else grads
    return {
        "each array is clipped by its own norm; clip by the GLOBAL norm over all arrays": {
            "clipped": per_array,
            "total_norm": total,
        },
        "the arrays are rescaled even though total_norm <= max_norm": {
            "clipped": scaled,
            "total_norm": total,
        },
        "total_norm must be the norm BEFORE clipping": {
            "clipped": clipped,
            "total_norm": min(total, max_norm),
        },
        "total_norm is the sum of squares; take its square root": {
            "clipped": clipped,
            "total_norm": total**2,
        },
    }


# --------------------------------------------------------------------------- calls


_RNN_STEP_F = forward_call("rnn_step_forward", RNN_STEP, ("h_next",), True)
_RNN_F = forward_call("rnn_forward", RNN_SEQ, ("h",), True)


def _cost_seq(gates: int, upstream: str) -> Callable[[np.random.Generator], Case]:
    return lambda rng: inputs.cost_rnn_seq(rng, gates=gates, upstream=upstream)


# --------------------------------------------------------------------------- the checks

CHECKS = [
    Check(
        "rnn_step_forward",
        "rnn_bptt",
        _RNN_STEP_F,
        lambda r, h, i: rnn_like(r, h, gates=1, step=True),
        forward_reference(ref.rnn_step_forward, RNN_STEP, ("h_next",)),
        "h_next = tanh(x @ Wx + h_prev @ Wh + b): check each term's shape and the activation",
        _explained(rnn_step_forward),
    ),
    Check(
        "rnn_step_backward",
        "rnn_bptt",
        backward_call(_RNN_STEP_F, "rnn_step_backward", ("dh_next",), STEP_GRADS),
        lambda r, h, i: rnn_step_backward_inputs(r, h),
        backward_reference(ref.rnn_step_forward, RNN_STEP, ("dh_next",)),
        "every gradient goes through the pre-activation's gradient; " + GRADCHECK,
        _explained(rnn_step_backward),
        cost=cost_rnn_step,
    ),
    Check(
        "rnn_forward",
        "rnn_bptt",
        _RNN_F,
        lambda r, h, i: rnn_like(r, h, gates=1, step=False),
        forward_reference(ref.rnn_forward, RNN_SEQ, ("h",)),
        "h[:, t] is the state after reading x[:, t], starting from h0",
        _explained(rnn_forward),
    ),
    Check(
        "rnn_backward",
        "rnn_bptt",
        backward_call(_RNN_F, "rnn_backward", ("dh",), SEQ_GRADS),
        lambda r, h, i: rnn_backward_inputs(r, h),
        backward_reference(ref.rnn_forward, RNN_SEQ, ("dh",)),
        "each state's gradient has two sources, and shared weights collect gradients from "
        "every step; " + GRADCHECK,
        _explained(rnn_backward),
        cost=_cost_seq(1, "dh"),
    ),
    Check(
        "grad_norms_through_time",
        "rnn_bptt",
        backward_call(_RNN_F, "grad_norms_through_time", ("dh_last",), ("norms",)),
        lambda r, h, i: grad_norms_inputs(r, h),
        _grad_norms,
        "walk back from the last state, one step's Jacobian at a time, and record the norm "
        "of dJ/dh_t at every t",
        _explained(grad_norms_through_time),
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
        clip_inputs,
        _clip,
        "one global norm over all arrays decides whether, and by how much, every array is "
        "scaled; the returned norm is the one before clipping",
        _explained(clip_grad_norm),
    ),
]
