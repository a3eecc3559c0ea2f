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


# --------------------------------------------------------------------------- costly hidden cases
# One hidden case per backward check is large: a real backward pass (about three times the
# forward's work) takes milliseconds, while differentiating the forward numerically needs
# one forward per input entry, (D·H + H·H)·G of them for the weights alone, which takes
# minutes: far beyond the per-check time limit.


def cost_rnn_seq(rng: np.random.Generator, *, gates: int, upstream: str) -> Case:
    """N = 32 sequences: T = 64 and D = H = 384 (128 for the LSTM), or T = 128, D = H = 384
    when only the last state's gradient ``dh_last`` is given."""
    N, T = (32, 64) if upstream == "dh" else (32, 128)
    D = H = (384 if gates == 1 else 128) if upstream == "dh" else 384
    case = {"x": rng.normal(size=(N, T, D)), "h0": rng.normal(scale=0.5, size=(N, H))}
    case.update(weights(rng, D, H, gates))
    case[upstream] = rng.normal(size=(N, T, H) if upstream == "dh" else (N, H))
    return case
