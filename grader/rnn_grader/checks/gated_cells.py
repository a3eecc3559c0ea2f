"""Assignment 2, ``gated_cells``: its checks (inputs, reference, known mistakes, calls).

The sigmoid, the LSTM's step and sequence, and one step of :class:`torch.nn.GRUCell`'s GRU
(blocks r, z, n; the reset gate applied after the recurrent product; two biases ``bx`` and
``bh``), graded against :class:`torch.nn.GRUCell` itself.
:mod:`rnn_grader.checks.registry` collects :data:`CHECKS` with the other assignments'.

Shapes: N batch, T steps, D inputs, H hidden units; stacked gate blocks of H columns each.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from rnn_grader.checks import reference as ref
from rnn_grader.checks import rnn_bptt
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
from rnn_grader.checks.inputs import rnn_like, sizes, weights
from rnn_grader.checks.rnn_bptt import GRADCHECK, RNN_SEQ, SEQ_GRADS

LSTM_STEP = ("x", "h_prev", "c_prev", "Wx", "Wh", "b")
GRU_STEP = ("x", "h_prev", "Wx", "Wh", "bx", "bh")
GRU_STEP_GRADS = ("dx", "dh_prev", "dWx", "dWh", "dbx", "dbh")
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


def gru_step_inputs(rng: np.random.Generator, hidden: bool, backward: bool) -> Case:
    """``x (N, D), h_prev (N, H), Wx (D, 3H), Wh (H, 3H), bx (3H,), bh (3H,)`` [, ``dh_next``]."""
    N, _, D, H = sizes(rng, hidden)
    case: Case = {"x": rng.normal(size=(N, D)), "h_prev": rng.normal(scale=0.5, size=(N, H))}
    w = weights(rng, D, H, 3)
    case.update(Wx=w["Wx"], Wh=w["Wh"], bx=w["b"], bh=rng.normal(scale=0.3, size=3 * H))
    if backward:
        case["dh_next"] = rng.normal(size=(N, H))
    return case


# --------------------------------------------------------------------------- costly hidden cases
# Differentiating a forward numerically one column of a weight or bias at a time needs a
# forward run per column of the stacked bias (G·H of them) to reach every gate's
# pre-activation gradient, at every step of a sequence; even H runs take longer than a check
# may, while a backward pass written with loops over the batch and over time takes under two
# seconds (measured in book/assignments/gated_cells.md). The derivative of an elementwise
# nonlinearity may still be computed in any way: that is the limit the rule leaves.
# The student's outputs of one case travel in one protocol frame of at most 16 MiB, and
# those of a whole phase in at most 64 MiB (rnn_grader.autograde): the weight gradients,
# (D + H)·G·H entries, cap H near 600, so D is kept small and N carries the cost.


def cost_lstm_step(rng: np.random.Generator) -> Case:
    """One LSTM step with N = 576, D = 64, H = 512 (outputs: 13.8 MiB)."""
    N, D, H = 576, 64, 512
    case = {"x": rng.normal(size=(N, D)), "h_prev": rng.normal(scale=0.5, size=(N, H))}
    case.update(weights(rng, D, H, 4))
    case.update(c_prev=rng.normal(size=(N, H)), dh_next=rng.normal(size=(N, H)))
    case["dc_next"] = rng.normal(size=(N, H))
    return case


def cost_lstm_seq(rng: np.random.Generator) -> Case:
    """An LSTM over N = 8 sequences of T = 64 steps, D = 128, H = 512, ``dh`` at every step
    (outputs: 10.5 MiB)."""
    N, T, D, H = 8, 64, 128, 512
    case = {"x": rng.normal(size=(N, T, D)), "h0": rng.normal(scale=0.5, size=(N, H))}
    case.update(weights(rng, D, H, 4))
    case["dh"] = rng.normal(size=(N, T, H))
    return case


def cost_gru_step(rng: np.random.Generator) -> Case:
    """One GRU step with N = 512, D = 64, H = 640 (outputs: 13.1 MiB)."""
    N, D, H = 512, 64, 640
    case = {"x": rng.normal(size=(N, D)), "h_prev": rng.normal(scale=0.5, size=(N, H))}
    w = weights(rng, D, H, 3)
    case.update(Wx=w["Wx"], Wh=w["Wh"], bx=w["b"], bh=rng.normal(scale=0.3, size=3 * H))
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
    # one step of torch.nn's GRU: the forward
    "the reset gate is applied before the recurrent product, as in the lecture's GRU": explain(
        "the candidate resets h_prev before the recurrent product (the lecture's form); "
        "torch.nn's reset gate scales the product's result",
        "n = tanh(x Wx_n + bx_n + r ⊙ (h_prev Wh_n + bh_n))",
    ),
    "bh_n is added outside the reset gate": explain(
        "in torch.nn's GRU the reset gate scales the candidate's whole recurrent term, its "
        "bias bh_n included",
        "n = tanh(x Wx_n + bx_n + r ⊙ (h_prev Wh_n + bh_n))",
    ),
    "z and 1 - z are exchanged": explain(
        "z and 1 - z are exchanged: in torch.nn's GRU z is the fraction of h_prev that is kept",
        "h_next = (1 − z) ⊙ n + z ⊙ h_prev",
    ),
    "the blocks are read in the order z, r, n": explain(
        "the gate blocks are read in another order than torch.nn's r, z, n",
        "the first H columns are r, the next H are z, the last H are n",
    ),
    "the lecture's GRU: update gate first, weighting the candidate": explain(
        "this is the lecture's update rule and block order (an update gate u that weights "
        "the candidate, first); torch.nn's z comes second and weights h_prev",
        "blocks r, z, n; h_next = (1 − z) ⊙ n + z ⊙ h_prev",
    ),
    # one step of torch.nn's GRU: the backward
    "the candidate's recurrent term gets the gradient of n's pre-activation unscaled": explain(
        "the reset gate multiplies the candidate's recurrent term, so the gradient that "
        "term receives is scaled by r",
        "with dan the gradient at n's pre-activation, the gradient of h_prev Wh_n + bh_n is "
        "dan ⊙ r: use it for dWh_n, dbh_n and dh_prev",
    ),
    "the reset gate's gradient leaves out bh_n": explain(
        "the reset gate's gradient is the gradient of what it scales times that term: the "
        "recurrent term with its bias",
        "the gradient at r's pre-activation is dan ⊙ (h_prev Wh_n + bh_n) ⊙ r ⊙ (1 − r)",
    ),
    "the update gate's gradient has the lecture's sign": explain(
        "the update gate's gradient has the wrong sign: z weights h_prev and 1 - z weights n",
        "the gradient at z's pre-activation is dh_next ⊙ (h_prev − n) ⊙ z ⊙ (1 − z)",
    ),
    "the direct path from h_prev to h_next is missing": explain(
        "h_prev also reaches h_next directly, scaled by z, besides the three recurrent products",
        "dh_prev = dh_next ⊙ z + (the gradient of h_prev Wh + bh) @ Wh.T",
    ),
    "dWh_n is taken with the reset state r * h_prev": explain(
        "the candidate's recurrent weights multiply h_prev, not r ⊙ h_prev (that is the "
        "lecture's form)",
        "dWh_n = h_prev.T @ (dan ⊙ r), with dan the gradient at n's pre-activation",
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


def _gru_variant(
    x: torch.Tensor,
    h: torch.Tensor,
    Wx: torch.Tensor,
    Wh: torch.Tensor,
    bx: torch.Tensor,
    bh: torch.Tensor,
    *,
    reset: str = "after",
    swap_z: bool = False,
    order: tuple[int, int, int] = (0, 1, 2),
) -> torch.Tensor:
    """One GRU step in torch.nn's form, or in a mistaken one, differentiable by autograd.

    ``reset`` is ``"after"`` (torch.nn: ``r ⊙ (h Wh_n + bh_n)``), ``"before"``
    (``(r ⊙ h) Wh_n + bh_n``) or ``"bias_outside"`` (``r ⊙ (h Wh_n) + bh_n``); ``swap_z``
    exchanges ``z`` and ``1 - z``; ``order[k]`` is the block read where block ``k`` belongs.
    With the defaults it is :func:`reference.torch_gru_step_forward`.
    """
    H = h.shape[1]
    Wx, Wh, bx, bh = (
        torch.cat([w[..., k * H : (k + 1) * H] for k in order], -1) for w in (Wx, Wh, bx, bh)
    )
    xw = x @ Wx + bx  # (N, 3H)
    r = torch.sigmoid(xw[:, :H] + h @ Wh[:, :H] + bh[:H])
    z = torch.sigmoid(xw[:, H : 2 * H] + h @ Wh[:, H : 2 * H] + bh[H : 2 * H])
    if reset == "before":
        n = torch.tanh(xw[:, 2 * H :] + (r * h) @ Wh[:, 2 * H :] + bh[2 * H :])
    elif reset == "bias_outside":
        n = torch.tanh(xw[:, 2 * H :] + r * (h @ Wh[:, 2 * H :]) + bh[2 * H :])
    else:
        n = torch.tanh(xw[:, 2 * H :] + r * (h @ Wh[:, 2 * H :] + bh[2 * H :]))
    return z * n + (1 - z) * h if swap_z else (1 - z) * n + z * h


_GRU_FORWARD_MISTAKES: dict[str, dict[str, Any]] = {
    "the reset gate is applied before the recurrent product, as in the lecture's GRU": {
        "reset": "before"
    },
    "bh_n is added outside the reset gate": {"reset": "bias_outside"},
    "z and 1 - z are exchanged": {"swap_z": True},
    "the blocks are read in the order z, r, n": {"order": (1, 0, 2)},
    "the lecture's GRU: update gate first, weighting the candidate": {
        "order": (1, 0, 2),
        "swap_z": True,
    },
}


def gru_step_forward(case: dict[str, Any]) -> Variants:
    args = [t_(case[k]) for k in GRU_STEP]
    return {
        hint: {"h_next": _gru_variant(*args, **kw).numpy()}
        for hint, kw in _GRU_FORWARD_MISTAKES.items()
    }


def _gru_backward_np(
    case: dict[str, Any],
    *,
    scale_by_r: bool = True,
    bias_in_dr: bool = True,
    z_sign: float = 1.0,
    direct: bool = True,
    dWh_n_from_reset_state: bool = False,
) -> dict[str, np.ndarray]:
    """Gradients of one torch.nn GRU step, written out, with one mistake switched on."""
    x, h, Wx, Wh, bx, bh, dh = (case[k] for k in (*GRU_STEP, "dh_next"))
    H = h.shape[1]
    xw, hw = x @ Wx + bx, h @ Wh + bh  # (N, 3H) each
    r, z = (1 / (1 + np.exp(-(xw[:, k] + hw[:, k]))) for k in (slice(0, H), slice(H, 2 * H)))
    hn = hw[:, 2 * H :]
    n = np.tanh(xw[:, 2 * H :] + r * hn)
    dan = dh * (1 - z) * (1 - n**2)
    daz = z_sign * dh * (h - n) * z * (1 - z)
    dar = dan * (hn if bias_in_dr else hn - bh[2 * H :]) * r * (1 - r)
    dxw = np.concatenate([dar, daz, dan], axis=1)  # (N, 3H)
    dhw = np.concatenate([dar, daz, dan * r if scale_by_r else dan], axis=1)
    dWh = h.T @ dhw
    if dWh_n_from_reset_state:
        dWh[:, 2 * H :] = (r * h).T @ dan
    return {
        "dx": dxw @ Wx.T,
        "dh_prev": (dh * z if direct else 0.0) + dhw @ Wh.T,
        "dWx": x.T @ dxw,
        "dWh": dWh,
        "dbx": dxw.sum(0),
        "dbh": dhw.sum(0),
    }


_GRU_BACKWARD_MISTAKES: dict[str, dict[str, Any]] = {
    "the candidate's recurrent term gets the gradient of n's pre-activation unscaled": {
        "scale_by_r": False
    },
    "the reset gate's gradient leaves out bh_n": {"bias_in_dr": False},
    "the update gate's gradient has the lecture's sign": {"z_sign": -1.0},
    "the direct path from h_prev to h_next is missing": {"direct": False},
    "dWh_n is taken with the reset state r * h_prev": {"dWh_n_from_reset_state": True},
}


def gru_step_backward(case: dict[str, Any]) -> Variants:
    out = {}
    for hint, kw in _GRU_FORWARD_MISTAKES.items():
        leaves = [t_(case[k]).requires_grad_(True) for k in GRU_STEP]
        grads = torch.autograd.grad(_gru_variant(*leaves, **kw), leaves, t_(case["dh_next"]))
        out[hint] = {"d" + k: g.numpy() for k, g in zip(GRU_STEP, grads, strict=True)}
    for hint, kw in _GRU_BACKWARD_MISTAKES.items():
        out[hint] = _gru_backward_np(case, **kw)
    return out


# --------------------------------------------------------------------------- calls

_LSTM_STEP_F = forward_call("lstm_step_forward", LSTM_STEP, ("h_next", "c_next"), True)
_LSTM_F = forward_call("lstm_forward", RNN_SEQ, ("h",), True)
_GRU_STEP_F = forward_call("gru_step_forward", GRU_STEP, ("h_next",), True)


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
        cost=cost_lstm_step,
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
        cost=cost_lstm_seq,
    ),
    Check(
        "gru_step_forward",
        "gated_cells",
        _GRU_STEP_F,
        lambda r, h, i: gru_step_inputs(r, h, False),
        forward_reference(ref.torch_gru_step_forward, GRU_STEP, ("h_next",)),
        "torch.nn's GRUCell: blocks r, z, n; the reset gate scales the recurrent term "
        "h_prev Wh_n + bh_n after the product, and z weights h_prev",
        _explained(gru_step_forward),
    ),
    Check(
        "gru_step_backward",
        "gated_cells",
        backward_call(_GRU_STEP_F, "gru_step_backward", ("dh_next",), GRU_STEP_GRADS),
        lambda r, h, i: gru_step_inputs(r, h, True),
        backward_reference(ref.torch_gru_step_forward, GRU_STEP, ("dh_next",)),
        "h_prev reaches h_next directly (scaled by z) and through the three recurrent "
        "products; bx and bh differ only in the candidate's block; " + GRADCHECK,
        _explained(gru_step_backward),
        cost=cost_gru_step,
    ),
]
