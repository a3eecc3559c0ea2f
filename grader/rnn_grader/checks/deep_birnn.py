"""Assignment 3, ``deep_birnn``: its checks (inputs, reference, known mistakes, calls).

The bidirectional RNN, the stacked RNN with residual connections and the highway layer.
Everything about these graded functions lives here; :mod:`rnn_grader.checks.registry`
collects :data:`CHECKS` with the other assignments'.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from rnn_course import RNN
from rnn_grader.checks import reference as ref
from rnn_grader.checks.base import Case, Check, explain, forward_reference, step, t_, to_np
from rnn_grader.checks.inputs import sizes, weights

Params = tuple[Tensor, Tensor, Tensor]  # (Wx, Wh, b)
Variants = dict[str, dict[str, Any]]

# --------------------------------------------------------------------------- inputs


def _params(rng: np.random.Generator, D: int, H: int) -> list[np.ndarray]:
    w = weights(rng, D, H, 1)
    return [w["Wx"], w["Wh"], w["b"]]


def birnn_inputs(rng: np.random.Generator, hidden: bool, index: int = 0) -> Case:
    N, T, D, H = sizes(rng, hidden)
    return {
        "x": rng.normal(size=(N, T, D)),
        "h0_fwd": rng.normal(scale=0.5, size=(N, H)),
        "h0_bwd": rng.normal(scale=0.5, size=(N, H)),
        "params_fwd": _params(rng, D, H),
        "params_bwd": _params(rng, D, H),
    }


def stacked_inputs(rng: np.random.Generator, hidden: bool, index: int) -> Case:
    N, T, D, H = sizes(rng, hidden)
    L = 3 if not hidden else int(rng.integers(1, 5))
    residual = index % 2 == 1
    # residual stacks keep one size (so a residual wrongly added to layer 0 gives wrong
    # values, not a crash); plain stacks change the size from layer to layer
    widths = [H] * (L + 1) if residual else [D] + [int(rng.integers(2, 8)) for _ in range(L)]
    return {
        "x": rng.normal(size=(N, T, widths[0])),
        "h0s": [rng.normal(scale=0.5, size=(N, widths[l + 1])) for l in range(L)],
        "layers": [_params(rng, widths[l], widths[l + 1]) for l in range(L)],
        "residual": residual,
    }


def stacked_mismatch(rng: np.random.Generator) -> Case:
    """A residual stack whose second layer changes the size: must raise ``ValueError``."""
    N, T, D = 2, 3, 4
    widths = [D, 5, 3]
    return {
        "x": rng.normal(size=(N, T, D)),
        "h0s": [rng.normal(size=(N, s)) for s in widths[1:]],
        "layers": [_params(rng, widths[l], widths[l + 1]) for l in range(2)],
        "residual": True,
    }


def highway_inputs(rng: np.random.Generator, hidden: bool, index: int = 0) -> Case:
    N, _, D, _ = sizes(rng, hidden)
    return {
        "x": rng.normal(size=(N, D)),
        "W_h": rng.normal(scale=0.7, size=(D, D)),
        "b_h": rng.normal(scale=0.3, size=D),
        "W_t": rng.normal(scale=0.7, size=(D, D)),
        "b_t": rng.normal(scale=0.5, size=D) - 1.0,
    }


# --------------------------------------------------------------------------- reference


@functools.cache
def _birnn_module(D: int, H: int) -> nn.Module:
    return RNN(D, H, batch_first=True, bidirectional=True, dtype=ref.F64)


def birnn_forward(
    x: Tensor, h0_fwd: Tensor, h0_bwd: Tensor, params_fwd: Params, params_bwd: Params
) -> Tensor:
    """``h (N, T, 2H)`` of a bidirectional tanh RNN, by ``rnn_course.RNN(bidirectional=True)``."""
    D, H = x.shape[-1], h0_fwd.shape[-1]
    params = ref.torch_layout(*params_fwd, "_l0") | ref.torch_layout(*params_bwd, "_l0_reverse")
    out, _ = functional_call(_birnn_module(D, H), params, (x, torch.stack([h0_fwd, h0_bwd])))
    return out


def stacked_rnn_forward(
    x: Tensor, h0s: Sequence[Tensor], layers: Sequence[Params], residual: bool = False
) -> Tensor:
    """The top layer's states ``(N, T, H_L)`` of stacked tanh RNNs (sizes may change per layer).

    Each layer is an :class:`rnn_course.RNN`; with ``residual`` a layer ``l > 0`` passes up
    its states plus its input (``skip="residual"`` of the package's stacks), which needs
    equal sizes (``ValueError`` otherwise).
    """
    out = x
    for l, (h0, params) in enumerate(zip(h0s, layers, strict=True)):
        h = ref.rnn_forward(out, h0, *params)  # (N, T, H_l)
        if residual and l > 0:
            if h.shape != out.shape:
                raise ValueError(
                    f"a residual layer needs equal input and output sizes, layer {l} maps "
                    f"{out.shape[-1]} to {h.shape[-1]}"
                )
            h = h + out
        out = h
    return out


def highway_forward(x: Tensor, W_h: Tensor, b_h: Tensor, W_t: Tensor, b_t: Tensor) -> Tensor:
    """Highway layer: ``t ⊙ tanh(x W_h + b_h) + (1 − t) ⊙ x`` with ``t = σ(x W_t + b_t)``."""
    # the package's highway skip: lerp(u, h, t) = t ⊙ h + (1 − t) ⊙ u
    t = torch.sigmoid(x @ W_t + b_t)
    return torch.lerp(x, torch.tanh(x @ W_h + b_h), t)


def _birnn_reference(case: Case) -> dict[str, Any]:
    pf, pb = ([t_(p) for p in case[k]] for k in ("params_fwd", "params_bwd"))
    h = birnn_forward(*(t_(case[k]) for k in ("x", "h0_fwd", "h0_bwd")), pf, pb)
    return {"h": to_np(h)}


def _stacked_reference(case: Case) -> dict[str, Any]:
    layers = [[t_(p) for p in ps] for ps in case["layers"]]
    try:
        h = stacked_rnn_forward(
            t_(case["x"]), [t_(h) for h in case["h0s"]], layers, residual=bool(case["residual"])
        )
    except ValueError:
        return {"raised": "ValueError"}
    return {"h": to_np(h)}


# --------------------------------------------------------------------------- known mistakes


def birnn_mistakes(case: Case) -> Variants:
    x, hf, hb = t_(case["x"]), t_(case["h0_fwd"]), t_(case["h0_bwd"])
    pf, pb = [t_(p) for p in case["params_fwd"]], [t_(p) for p in case["params_bwd"]]
    fwd = ref.rnn_forward(x, hf, *pf)
    rev = ref.rnn_forward(x.flip(1), hb, *pb)
    good_b = rev.flip(1)
    return {
        explain(
            "the second half equals a forward RNN with the backward weights: that direction "
            "must read the sequence from its end",
            "run the backward RNN on x[:, ::-1]",
        ): {"h": torch.cat([fwd, ref.rnn_forward(x, hb, *pb)], 2).numpy()},
        explain(
            "the backward half is right but reversed in time: position t must hold the state "
            "aligned with x[:, t]",
            "flip the backward RNN's states back with [:, ::-1] before concatenating",
        ): {"h": torch.cat([fwd, rev], 2).numpy()},
        explain(
            "both halves are right but in the wrong places",
            "concatenate [forward, backward] along the last axis",
        ): {"h": torch.cat([good_b, fwd], 2).numpy()},
        explain(
            "the backward half uses the wrong parameters: the two directions have separate weights",
            "run the backward RNN with params_bwd",
        ): {"h": torch.cat([fwd, ref.rnn_forward(x.flip(1), hb, *pf).flip(1)], 2).numpy()},
    }


def stacked_mistakes(case: Case) -> Variants:
    if not case["residual"]:
        return {}
    x = t_(case["x"])
    h0s = [t_(h) for h in case["h0s"]]
    layers = [[t_(p) for p in ps] for ps in case["layers"]]
    every, none = x, x
    try:
        for h0, ps in zip(h0s, layers, strict=True):
            every = ref.rnn_forward(every, h0, *ps) + every
            none = ref.rnn_forward(none, h0, *ps)
    except (ValueError, RuntimeError):  # sizes that do not allow residuals: no variants
        return {}
    return {
        explain(
            "the first layer also adds its input: which layers may a residual skip?",
            "add the input only for layers l > 0",
        ): {"h": every.numpy()},
        explain(
            "residual=True changes nothing in your output",
            "for l > 0 with residual=True, pass up states + input",
        ): {"h": none.numpy()},
    }


def highway_mistakes(case: Case) -> Variants:
    x, Wh, bh, Wt, bt = (case[k] for k in ("x", "W_h", "b_h", "W_t", "b_t"))
    t = 1 / (1 + np.exp(-(x @ Wt + bt)))
    return {
        explain(
            "the gate weights the wrong branch: t = 1 must pass the transform",
            "y = t * tanh(x @ W_h + b_h) + (1 - t) * x",
        ): {"y": (1 - t) * np.tanh(x @ Wh + bh) + t * x},
        explain(
            "the gate is computed with the wrong nonlinearity or weights",
            "t = sigmoid(x @ W_t + b_t), transform tanh(x @ W_h + b_h)",
        ): {"y": np.tanh(x @ Wt + bt) * np.tanh(x @ Wh + bh) + (1 - np.tanh(x @ Wt + bt)) * x},
    }


# --------------------------------------------------------------------------- the checks

HIGHWAY = ("x", "W_h", "b_h", "W_t", "b_t")

CHECKS = [
    Check(
        "birnn_forward",
        "deep_birnn",
        {
            "steps": [
                step("birnn_forward", ("x", "h0_fwd", "h0_bwd", "params_fwd", "params_bwd"), ("h",))
            ],
            "outputs": ["h"],
            "convert": {"params_fwd": "tuple", "params_bwd": "tuple"},
        },
        birnn_inputs,
        _birnn_reference,
        "h[:, t, H:] must line up with x[:, t]: the backward RNN's state after reading "
        "x[:, T-1], ..., x[:, t]",
        birnn_mistakes,
    ),
    Check(
        "stacked_rnn_forward",
        "deep_birnn",
        {
            "steps": [
                step(
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
        stacked_inputs,
        _stacked_reference,
        "layer l reads layer l-1's states; with residual=True layers l > 0 add their input",
        stacked_mistakes,
        extra_hidden=stacked_mismatch,
    ),
    Check(
        "highway_forward",
        "deep_birnn",
        {"steps": [step("highway_forward", HIGHWAY, ("y",))], "outputs": ["y"]},
        highway_inputs,
        forward_reference(highway_forward, HIGHWAY, ("y",)),
        "the gate t decides, per feature, how much of the transform and how much of x pass",
        highway_mistakes,
    ),
]
