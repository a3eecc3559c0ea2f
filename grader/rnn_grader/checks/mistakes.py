"""Deliberately wrong versions of the graded functions, for hints in failure messages.

When a student's output does not match the reference, the comparison (the student-side
:mod:`selfcheck` and the grader) checks whether it matches one of these instead and, if
so, names the mistake. Each
function here returns ``{hint: outputs}`` for one case; the outputs use the same names
as the reference's. The mistakes are the classic ones: tanh's derivative taken at the
pre-activation, a forgotten recurrent gradient, parameter gradients not summed over time,
gates in another order, the reset gate after the product, per-array clipping, ...
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rnn_grader.checks import reference as ref
from rnn_grader.checks.base import explain, t_

Variants = dict[str, dict[str, Any]]

GATES_LSTM = "ifgo"
GATES_ORDERS = ["".join(p) for p in itertools.permutations(GATES_LSTM)]


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


def explained(fn: Callable[[dict[str, Any]], Variants]) -> Callable[[dict[str, Any]], Variants]:
    """``fn`` with its mistakes keyed by hint and fix (trailing spaces keep keys unique)."""

    def wrapper(case: dict[str, Any]) -> Variants:
        out = {}
        for key, outputs in fn(case).items():
            core = key.rstrip(" ")
            out[EXPLAINED.get(core, core) + key[len(core) :]] = outputs
        return out

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# --------------------------------------------------------------------------- tanh RNN


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


# --------------------------------------------------------------------------- gated cells


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
