"""Assignment 2, ``gated_cells``: its checks (inputs, reference, known mistakes, calls).

The sigmoid, the LSTM's step and sequence and the GRU's step.
:mod:`rnn_grader.checks.registry` collects :data:`CHECKS` with the other assignments'.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rnn_grader.checks import inputs, rnn_bptt
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
)
from rnn_grader.checks.inputs import rnn_like, weights
from rnn_grader.checks.rnn_bptt import (
    GRADCHECK,
    RNN_SEQ,
    RNN_STEP,
    SEQ_GRADS,
    STEP_GRADS,
)

LSTM_STEP = ("x", "h_prev", "c_prev", "Wx", "Wh", "b")
GATES_LSTM = "ifgo"
GATES_ORDERS = ["".join(p) for p in itertools.permutations(GATES_LSTM)]

# --------------------------------------------------------------------------- inputs


def sigmoid_inputs(rng: np.random.Generator, hidden: bool, index: int) -> Case:
    shape = (4, 5) if not hidden else tuple(int(s) for s in rng.integers(1, 7, size=index % 3 + 1))
    x = rng.normal(scale=10.0, size=shape)
    flat = x.reshape(-1)
    # the extremes of the contract: |x| up to 1000 must neither overflow nor give nan
    extremes = np.array([1000.0, -1000.0, 0.0, 750.0, -745.5, 40.0, -40.0])
    flat[: min(flat.size, extremes.size)] = extremes[: flat.size]
    return {"x": rng.permutation(flat).reshape(shape)}


def lstm_step_inputs(rng, hidden, backward):  # type: ignore[no-untyped-def]
    case = rnn_like(rng, hidden, gates=4, step=True)
    case["c_prev"] = rng.normal(size=case["h_prev"].shape)
    if backward:
        case["dh_next"] = rng.normal(size=case["h_prev"].shape)
        case["dc_next"] = rng.normal(size=case["h_prev"].shape)
    return case


def lstm_seq_inputs(rng, hidden, backward):  # type: ignore[no-untyped-def]
    case = rnn_like(rng, hidden, gates=4, step=False)
    if backward:
        N, T, _ = case["x"].shape
        case["dh"] = rng.normal(size=(N, T, case["h0"].shape[1]))
    return case


def gru_step_inputs(rng, hidden, backward):  # type: ignore[no-untyped-def]
    case = rnn_like(rng, hidden, gates=3, step=True)
    if backward:
        case["dh_next"] = rng.normal(size=case["h_prev"].shape)
    return case


def cost_gated_step(rng: np.random.Generator, *, gates: int) -> Case:
    """One LSTM (gates = 4) or GRU (gates = 3) step with N = 128, D = H = 160."""
    N, D, H = 128, 160, 160
    case = {"x": rng.normal(size=(N, D)), "h_prev": rng.normal(scale=0.5, size=(N, H))}
    case.update(weights(rng, D, H, gates))
    if gates == 4:
        case["c_prev"] = rng.normal(size=(N, H))
        case["dc_next"] = rng.normal(size=(N, H))
    case["dh_next"] = rng.normal(size=(N, H))
    return case


# --------------------------------------------------------------------------- known mistakes

_SHARED = (
    "h0 is included in the output: h[:, t] is the state AFTER reading x[:, t]",
    "dWx, dWh and db are overwritten at each step instead of summed over time (+=)",
)
#: The hint and the fix of every mistake, by the short name used below.
EXPLAINED: dict[str, str] = {
    **{k: rnn_bptt.EXPLAINED[k] for k in _SHARED},
    "the sign is flipped: σ(x) = 1 / (1 + exp(-x))": explain(
        "your sigmoid is decreasing: σ(x) must go to 1 as x grows",
        "σ(x) = 1 / (1 + exp(-x)); for x < 0 use the equivalent exp(x) / (1 + exp(x))",
    ),
    "tanh's derivative is taken at c_next; d tanh(c)/dc = 1 - tanh(c_next)²": explain(
        "the cell-path gradient uses tanh's derivative at the wrong point",
        "dc = dc_next + dh_next * o * (1 - tanh(c_next)**2)",
    ),
    "dc_next (the cell-state gradient from the next step) is not added to dc": explain(
        "the cell state receives gradient by two paths and one is missing",
        "add dc_next to the cell gradient that comes through h_next",
    ),
    "the gradients from the next step (dh_prev and dc_prev of step t+1) are not carried back into"
    " step t": explain(
        "only the last step's gradients are right: both states carry gradient from step t+1 back "
        "to step t",
        "pass dh_prev + dh[:, t] and dc_prev of step t+1 into step t's backward",
    ),
    "the reset gate is applied after the recurrent product; the lecture GRU uses (r ⊙ h_prev) "
    "Wh_c, not r ⊙ (h_prev Wh_c)": explain(
        "the candidate uses the reset gate in torch.nn's place, not the lecture's",
        "candidate: tanh(x Wx_c + (r * h_prev) @ Wh_c + b_c)",
    ),
    "u weights h_prev; in the lecture GRU h_next = (1 - u) ⊙ h_prev + u ⊙ h̃": explain(
        "the update gate weights the wrong term: in the lecture GRU u = 0 keeps the old state",
        "h_next = (1 - u) * h_prev + u * h̃",
    ),
    "the gate blocks are read in the order r, u, c; the contract's order is u, r, c": explain(
        "the gate blocks are read in another order than the contract's u, r, c",
        "the first H columns are u, the next H are r, the last H the candidate",
    ),
}

_explained = explained(EXPLAINED)


def sigmoid(case: dict[str, Any]) -> Variants:
    with np.errstate(over="ignore"):
        return {"the sign is flipped: σ(x) = 1 / (1 + exp(-x))": {"y": 1 / (1 + np.exp(case["x"]))}}


def _permute(w: np.ndarray, order: tuple[int, ...], H: int) -> np.ndarray:
    return np.concatenate([w[..., k * H : (k + 1) * H] for k in order], axis=-1)


def _lstm_orders(H: int) -> list[tuple[str, tuple[int, ...]]]:
    """Every other gate order, as (name, column permutation that emulates it)."""
    out = []
    for perm in itertools.permutations(range(4)):
        if perm != (0, 1, 2, 3):
            # the student reads block k as gate perm[k]; the reference wants block j as GATES[j]
            inv = tuple(perm.index(j) for j in range(4))
            out.append(("".join(GATES_LSTM[p] for p in perm), inv))
    return out


def _order_hint(order: str) -> str:
    return explain(
        "the four gate blocks are read in another order than the contract's",
        f"the blocks of a are i, f, g, o, H columns each (your code reads them as "
        f"{', '.join(order)})",
    ) + " " * GATES_ORDERS.index(order)


def lstm_step_forward(case: dict[str, Any]) -> Variants:
    H = case["h_prev"].shape[1]
    out = {}
    for order, inv in _lstm_orders(H):
        w = [t_(_permute(case[k], inv, H)) for k in ("Wx", "Wh", "b")]
        h, c = ref.lstm_step_forward(t_(case["x"]), t_(case["h_prev"]), t_(case["c_prev"]), *w)
        out[_order_hint(order)] = {"h_next": h.numpy(), "c_next": c.numpy()}
    return out


def _lstm_step_np(case: dict[str, Any], *, deriv_at_c: bool = False, use_dc: bool = True):
    x, h, c, Wx, Wh, b = (case[k] for k in ("x", "h_prev", "c_prev", "Wx", "Wh", "b"))
    dh, dc_next = case["dh_next"], case["dc_next"]
    H = h.shape[1]
    a = x @ Wx + h @ Wh + b
    i, f, o = (1 / (1 + np.exp(-a[:, k * H : (k + 1) * H])) for k in (0, 1, 3))
    g = np.tanh(a[:, 2 * H : 3 * H])
    cn = f * c + i * g
    tc = np.tanh(cn)
    dc = dh * o * (1 - (cn if deriv_at_c else tc) ** 2) + (dc_next if use_dc else 0.0)
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g**2), dh * tc * o * (1 - o)],
        axis=1,
    )
    return {
        "dx": da @ Wx.T,
        "dh_prev": da @ Wh.T,
        "dc_prev": dc * f,
        "dWx": x.T @ da,
        "dWh": h.T @ da,
        "db": da.sum(0),
    }


def lstm_step_backward(case: dict[str, Any]) -> Variants:
    return {
        "tanh's derivative is taken at c_next; d tanh(c)/dc = 1 - tanh(c_next)²": _lstm_step_np(
            case, deriv_at_c=True
        ),
        "dc_next (the cell-state gradient from the next step) is not added to dc": _lstm_step_np(
            case, use_dc=False
        ),
    }


def lstm_forward(case: dict[str, Any]) -> Variants:
    H = case["h0"].shape[1]
    out = {}
    for order, inv in _lstm_orders(H):
        w = [t_(_permute(case[k], inv, H)) for k in ("Wx", "Wh", "b")]
        out[_order_hint(order)] = {"h": ref.lstm_forward(t_(case["x"]), t_(case["h0"]), *w).numpy()}
    h = ref.lstm_forward(*(t_(case[k]) for k in ("x", "h0", "Wx", "Wh", "b"))).numpy()
    out["h0 is included in the output: h[:, t] is the state AFTER reading x[:, t]"] = {
        "h": np.concatenate([case["h0"][:, None], h], axis=1)
    }
    return out


def _lstm_bptt_np(case: dict[str, Any], *, recurrent: bool = True, keep_step: int | None = None):
    x, h0, Wx, Wh, b, dh = (case[k] for k in ("x", "h0", "Wx", "Wh", "b", "dh"))
    N, T, _ = x.shape
    H = h0.shape[1]
    hs, cs = [h0], [np.zeros_like(h0)]
    for t in range(T):
        hn, cn = ref.lstm_step_forward(t_(x[:, t]), t_(hs[-1]), t_(cs[-1]), t_(Wx), t_(Wh), t_(b))
        hs.append(hn.numpy())
        cs.append(cn.numpy())
    dx = np.zeros_like(x)
    dW = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
    dh_carry, dc_carry = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        step = _lstm_step_np(
            {
                "x": x[:, t],
                "h_prev": hs[t],
                "c_prev": cs[t],
                "Wx": Wx,
                "Wh": Wh,
                "b": b,
                "dh_next": dh[:, t] + (dh_carry if recurrent else 0.0),
                "dc_next": dc_carry if recurrent else np.zeros((N, H)),
            }
        )
        dx[:, t] = step["dx"]
        dh_carry, dc_carry = step["dh_prev"], step["dc_prev"]
        grads = (step["dWx"], step["dWh"], step["db"])
        if keep_step is None:
            dW = [a + g for a, g in zip(dW, grads, strict=True)]
        elif keep_step == t:
            dW = list(grads)
    return {"dx": dx, "dh0": dh_carry, "dWx": dW[0], "dWh": dW[1], "db": dW[2]}


def lstm_backward(case: dict[str, Any]) -> Variants:
    T = case["x"].shape[1]
    last_only = "dWx, dWh and db are overwritten at each step instead of summed over time (+=)"
    return {
        "the gradients from the next step (dh_prev and dc_prev of step t+1) are not carried "
        "back into step t": _lstm_bptt_np(case, recurrent=False),
        last_only: _lstm_bptt_np(case, keep_step=0),
        last_only + " ": _lstm_bptt_np(case, keep_step=T - 1),
    }


def _gru_wrong(x, h, Wx, Wh, b, *, reset_after=False, swap_u=False, order=(0, 1, 2)):
    """The reference GRU step on weights rearranged to emulate a mistake."""
    H = h.shape[1]
    Wx, Wh, b = (torch.cat([w[..., k * H : (k + 1) * H] for k in order], -1) for w in (Wx, Wh, b))
    if swap_u:  # σ(-a) = 1 - σ(a): negating the u block exchanges u and 1 - u
        Wx, Wh, b = (torch.cat([-w[..., :H], w[..., H:]], -1) for w in (Wx, Wh, b))
    return ref.gru_step_forward(x, h, Wx, Wh, b, reset_after=reset_after)


_GRU_MISTAKES = {
    "the reset gate is applied after the recurrent product; the lecture GRU uses "
    "(r ⊙ h_prev) Wh_c, not r ⊙ (h_prev Wh_c)": {"reset_after": True},
    "u weights h_prev; in the lecture GRU h_next = (1 - u) ⊙ h_prev + u ⊙ h̃": {"swap_u": True},
    "the gate blocks are read in the order r, u, c; the contract's order is u, r, c": {
        "order": (1, 0, 2)
    },
}


def gru_step_forward(case: dict[str, Any]) -> Variants:
    args = [t_(case[k]) for k in ("x", "h_prev", "Wx", "Wh", "b")]
    return {hint: {"h_next": _gru_wrong(*args, **kw).numpy()} for hint, kw in _GRU_MISTAKES.items()}


def gru_step_backward(case: dict[str, Any]) -> Variants:
    names = ("x", "h_prev", "Wx", "Wh", "b")
    out = {}
    for hint, kw in _GRU_MISTAKES.items():
        leaves = [t_(case[k]).requires_grad_(True) for k in names]
        grads = torch.autograd.grad(_gru_wrong(*leaves, **kw), leaves, t_(case["dh_next"]))
        out[hint] = {"d" + k: g.numpy() for k, g in zip(names, grads, strict=True)}
    return out


# --------------------------------------------------------------------------- calls

_LSTM_STEP_F = forward_call("lstm_step_forward", LSTM_STEP, ("h_next", "c_next"), True)
_LSTM_F = forward_call("lstm_forward", RNN_SEQ, ("h",), True)
_GRU_STEP_F = forward_call("gru_step_forward", RNN_STEP, ("h_next",), True)


def _cost_seq(gates: int, upstream: str) -> Callable[[np.random.Generator], Case]:
    return lambda rng: inputs.cost_rnn_seq(rng, gates=gates, upstream=upstream)


# --------------------------------------------------------------------------- the checks

CHECKS = [
    Check(
        "sigmoid",
        "gated_cells",
        {
            "steps": [step("sigmoid", ("x",), ("y",))],
            "outputs": ["y"],
            "errstate": True,
        },
        sigmoid_inputs,
        forward_reference(ref.sigmoid, ("x",), ("y",)),
        "σ(x) = 1 / (1 + exp(-x)), evaluated so that no exp overflows for |x| up to 1000",
        _explained(sigmoid),
    ),
    Check(
        "lstm_step_forward",
        "gated_cells",
        _LSTM_STEP_F,
        lambda r, h, i: lstm_step_inputs(r, h, False),
        forward_reference(ref.lstm_step_forward, LSTM_STEP, ("h_next", "c_next")),
        "one product a = x @ Wx + h_prev @ Wh + b holds the four gate blocks i, f, g, o, "
        "H columns each",
        _explained(lstm_step_forward),
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
        lambda r, h, i: lstm_step_inputs(r, h, True),
        backward_reference(ref.lstm_step_forward, LSTM_STEP, ("dh_next", "dc_next")),
        "the cell state receives gradient by two paths; the four gate gradients are stacked "
        "in the blocks' order; " + GRADCHECK,
        _explained(lstm_step_backward),
        cost=lambda rng: cost_gated_step(rng, gates=4),
    ),
    Check(
        "lstm_forward",
        "gated_cells",
        _LSTM_F,
        lambda r, h, i: lstm_seq_inputs(r, h, False),
        forward_reference(ref.lstm_forward, RNN_SEQ, ("h",)),
        "the initial cell state is zero; h[:, t] is the state after reading x[:, t]",
        _explained(lstm_forward),
    ),
    Check(
        "lstm_backward",
        "gated_cells",
        backward_call(_LSTM_F, "lstm_backward", ("dh",), SEQ_GRADS),
        lambda r, h, i: lstm_seq_inputs(r, h, True),
        backward_reference(ref.lstm_forward, RNN_SEQ, ("dh",)),
        "both the hidden and the cell state carry gradient from step t+1 back to step t; "
        + GRADCHECK,
        _explained(lstm_backward),
        cost=_cost_seq(4, "dh"),
    ),
    Check(
        "gru_step_forward",
        "gated_cells",
        _GRU_STEP_F,
        lambda r, h, i: gru_step_inputs(r, h, False),
        forward_reference(ref.gru_step_forward, RNN_STEP, ("h_next",)),
        "blocks u, r, c; the reset gate acts on h_prev before the recurrent product of the "
        "candidate, and u weights the candidate",
        _explained(gru_step_forward),
    ),
    Check(
        "gru_step_backward",
        "gated_cells",
        backward_call(_GRU_STEP_F, "gru_step_backward", ("dh_next",), STEP_GRADS),
        lambda r, h, i: gru_step_inputs(r, h, True),
        backward_reference(ref.gru_step_forward, RNN_STEP, ("dh_next",)),
        "h_prev reaches h_next by four paths: directly, through u, through r and through "
        "r ⊙ h_prev in the candidate; " + GRADCHECK,
        _explained(gru_step_backward),
        cost=lambda rng: cost_gated_step(rng, gates=3),
    ),
]
