"""Inputs of every check: small public cases, randomized hidden ones and costly ones.

Plain data only (NumPy float64 arrays, floats, ints, bools, lists and dicts of those), so
that a case can cross into a process where neither torch nor ``rnn_course`` exists. The
generators take a seeded ``numpy.random.Generator``; :mod:`rnn_grader.checks.registry`
seeds public cases by the check's name and hidden cases by the course secret.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Case = dict[str, Any]


def sizes(rng: np.random.Generator, hidden: bool) -> tuple[int, int, int, int]:
    """``(N, T, D, H)``: small fixed sizes in public cases, random (and odd) in hidden ones."""
    if not hidden:
        return 3, 4, 5, 6
    N, T, D, H = (int(v) for v in rng.integers([1, 2, 1, 1], [6, 9, 8, 8]))
    return N, T, D, H


def weights(rng: np.random.Generator, D: int, H: int, gates: int) -> Case:
    """``Wx (D, G*H), Wh (H, G*H), b (G*H,)``, scaled so gates are neither flat nor saturated."""
    return {
        "Wx": rng.normal(scale=0.6, size=(D, gates * H)),
        "Wh": rng.normal(scale=0.6 / np.sqrt(H), size=(H, gates * H)) * 1.5,
        "b": rng.normal(scale=0.3, size=gates * H),
    }


def rnn_like(rng: np.random.Generator, hidden: bool, *, gates: int, step: bool) -> Case:
    N, T, D, H = sizes(rng, hidden)
    case: Case = {"x": rng.normal(size=(N, D) if step else (N, T, D))}
    case["h_prev" if step else "h0"] = rng.normal(scale=0.5, size=(N, H))
    case.update(weights(rng, D, H, gates))
    return case


def rnn_step_backward(rng, hidden):  # type: ignore[no-untyped-def]
    case = rnn_like(rng, hidden, gates=1, step=True)
    case["dh_next"] = rng.normal(size=case["h_prev"].shape)
    return case


def rnn_backward(rng, hidden):  # type: ignore[no-untyped-def]
    case = rnn_like(rng, hidden, gates=1, step=False)
    N, T, _ = case["x"].shape
    case["dh"] = rng.normal(size=(N, T, case["h0"].shape[1]))
    return case


def grad_norms(rng, hidden):  # type: ignore[no-untyped-def]
    case = rnn_like(rng, hidden, gates=1, step=False)
    case["dh_last"] = rng.normal(size=case["h0"].shape)
    return case


def clip(rng: np.random.Generator, hidden: bool, index: int) -> Case:
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


def sigmoid(rng: np.random.Generator, hidden: bool, index: int) -> Case:
    shape = (4, 5) if not hidden else tuple(int(s) for s in rng.integers(1, 7, size=index % 3 + 1))
    x = rng.normal(scale=10.0, size=shape)
    flat = x.reshape(-1)
    # the extremes of the contract: |x| up to 1000 must neither overflow nor give nan
    extremes = np.array([1000.0, -1000.0, 0.0, 750.0, -745.5, 40.0, -40.0])
    flat[: min(flat.size, extremes.size)] = extremes[: flat.size]
    return {"x": rng.permutation(flat).reshape(shape)}


def lstm_step(rng, hidden, backward):  # type: ignore[no-untyped-def]
    case = rnn_like(rng, hidden, gates=4, step=True)
    case["c_prev"] = rng.normal(size=case["h_prev"].shape)
    if backward:
        case["dh_next"] = rng.normal(size=case["h_prev"].shape)
        case["dc_next"] = rng.normal(size=case["h_prev"].shape)
    return case


def lstm_seq(rng, hidden, backward):  # type: ignore[no-untyped-def]
    case = rnn_like(rng, hidden, gates=4, step=False)
    if backward:
        N, T, _ = case["x"].shape
        case["dh"] = rng.normal(size=(N, T, case["h0"].shape[1]))
    return case


def gru_step(rng, hidden, backward):  # type: ignore[no-untyped-def]
    case = rnn_like(rng, hidden, gates=3, step=True)
    if backward:
        case["dh_next"] = rng.normal(size=case["h_prev"].shape)
    return case


# --------------------------------------------------------------------------- costly hidden cases
# One hidden case per backward check is large: a real backward pass (about three times the
# forward's work) takes milliseconds, while differentiating the forward numerically needs
# one forward per input entry, (D·H + H·H)·G of them for the weights alone, which takes
# minutes: far beyond the per-check time limit.


def cost_rnn_step(rng: np.random.Generator) -> Case:
    """One RNN step with N = D = H = 256: 131 072 weight entries."""
    N, D, H = 256, 256, 256
    case = {"x": rng.normal(size=(N, D)), "h_prev": rng.normal(scale=0.5, size=(N, H))}
    case.update(weights(rng, D, H, 1))
    case["dh_next"] = rng.normal(size=(N, H))
    return case


def cost_rnn_seq(rng: np.random.Generator, *, gates: int, upstream: str) -> Case:
    """N = 32 sequences: T = 64 and D = H = 192 (128 for the LSTM), or T = 128, D = H = 160
    when only the last state's gradient ``dh_last`` is given."""
    N, T = (32, 64) if upstream == "dh" else (32, 128)
    D = H = (192 if gates == 1 else 128) if upstream == "dh" else 160
    case = {"x": rng.normal(size=(N, T, D)), "h0": rng.normal(scale=0.5, size=(N, H))}
    case.update(weights(rng, D, H, gates))
    case[upstream] = rng.normal(size=(N, T, H) if upstream == "dh" else (N, H))
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
