"""Assignment 3, ``deep_birnn``: its checks (inputs, reference, known mistakes, calls).

A bidirectional RNN over a padded batch, stacked RNNs with residual connections and the
highway layer, each forward and backward. Everything about these graded functions lives
here; :mod:`rnn_grader.checks.registry` collects :data:`CHECKS` with the other
assignments'.

Layers are numbered from 1 as in the book: layer 1 reads ``x`` and is ``layers[0]``.
Gradients of the stack are returned in one dict keyed by parameter and layer
(``"Wx_1"``, ..., ``"h0_L"``): the self-check compares arrays, numbers and dicts of
arrays, not lists.

Every backward check has one large hidden case (:func:`birnn_cost`, :func:`stacked_cost`,
:func:`highway_cost`): a real backward pass needs a few tenths of a second, while
differentiating the forward numerically needs at least one forward pass per column of a
weight (per entry of a bias), at least 10^12 floating-point operations: half a minute or
more on one core, against the 10 s of a check (:func:`numerical_flops`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnn_grader.checks import reference as ref
from rnn_grader.checks.base import Case, Check, explain, step, t_, to_np
from rnn_grader.checks.inputs import sizes, weights

Params = tuple[Tensor, Tensor, Tensor]  # (Wx, Wh, b)
Variants = dict[str, dict[str, Any]]

PARAMS = ("Wx", "Wh", "b")
BIRNN_ARGS = ("x", "lengths", "h0_fwd", "h0_bwd", "params_fwd", "params_bwd")
BIRNN_GRADS = (
    "dx",
    "dh0_fwd",
    "dh0_bwd",
    "dWx_fwd",
    "dWh_fwd",
    "db_fwd",
    "dWx_bwd",
    "dWh_bwd",
    "db_bwd",
)
HIGHWAY = ("x", "W_h", "b_h", "W_t", "b_t")
HIGHWAY_GRADS = ("dx", "dW_h", "db_h", "dW_t", "db_t")
#: Known mistakes are worked out on the cases a student reads messages of; the large cost
#: cases are hidden, and a hidden case's message never names a mistake.
MISTAKES_UP_TO = 50_000  # entries of x

# --------------------------------------------------------------------------- inputs


def _params(rng: np.random.Generator, D: int, H: int) -> list[np.ndarray]:
    w = weights(rng, D, H, 1)
    return [w["Wx"], w["Wh"], w["b"]]


def _scaled_params(rng: np.random.Generator, D: int, H: int) -> list[np.ndarray]:
    """Weights of a large case, scaled so that the states neither vanish nor saturate."""
    return [
        rng.normal(scale=1 / np.sqrt(D), size=(D, H)),
        rng.normal(scale=0.9 / np.sqrt(H), size=(H, H)),
        rng.normal(scale=0.1, size=H),
    ]


def lengths_of(rng: np.random.Generator, N: int, T: int) -> np.ndarray:
    """``(N,)`` int64 lengths in ``1..T``, with a full sequence and a length-1 one when N ≥ 2."""
    lengths = rng.integers(1, T + 1, size=N)
    if N >= 2:
        lengths[:2] = T, 1
        lengths = rng.permutation(lengths)
    return lengths.astype(np.int64)


def birnn_inputs(rng: np.random.Generator, hidden: bool, index: int = 0) -> Case:
    """A padded batch: the entries of ``x`` (and of ``dh``) past each length are noise."""
    N, T, D, H = sizes(rng, hidden)
    return {
        "x": rng.normal(size=(N, T, D)),
        "lengths": lengths_of(rng, N, T),
        "h0_fwd": rng.normal(scale=0.5, size=(N, H)),
        "h0_bwd": rng.normal(scale=0.5, size=(N, H)),
        "params_fwd": _params(rng, D, H),
        "params_bwd": _params(rng, D, H),
    }


def birnn_backward_inputs(rng: np.random.Generator, hidden: bool, index: int = 0) -> Case:
    case = birnn_inputs(rng, hidden, index)
    N, T, _ = case["x"].shape
    case["dh"] = rng.normal(size=(N, T, 2 * case["h0_fwd"].shape[1]))
    return case


def birnn_cost(rng: np.random.Generator) -> Case:
    """N = 64 sequences of 28 to 36 steps, D = 32, H = 512: about 2·10^9 flops forward."""
    N, T, D, H = 64, 36, 32, 512
    lengths = rng.integers(T - 8, T + 1, size=N)
    lengths[0] = T
    return {
        "x": rng.normal(size=(N, T, D)),
        "lengths": lengths.astype(np.int64),
        "h0_fwd": rng.normal(scale=0.5, size=(N, H)),
        "h0_bwd": rng.normal(scale=0.5, size=(N, H)),
        "params_fwd": _scaled_params(rng, D, H),
        "params_bwd": _scaled_params(rng, D, H),
        "dh": rng.normal(size=(N, T, 2 * H)),
    }


def stacked_inputs(rng: np.random.Generator, hidden: bool, index: int) -> Case:
    N, T, D, H = sizes(rng, hidden)
    L = 3 if not hidden else int(rng.integers(1, 5))
    residual = index % 2 == 1
    # residual stacks keep one size (so a residual wrongly added to layer 1 gives wrong
    # values, not a crash); plain stacks change the size from layer to layer
    widths = [H] * (L + 1) if residual else [D] + [int(rng.integers(2, 8)) for _ in range(L)]
    return {
        "x": rng.normal(size=(N, T, widths[0])),
        "h0s": [rng.normal(scale=0.5, size=(N, widths[l + 1])) for l in range(L)],
        "layers": [_params(rng, widths[l], widths[l + 1]) for l in range(L)],
        "residual": residual,
    }


def stacked_backward_inputs(rng: np.random.Generator, hidden: bool, index: int) -> Case:
    case = stacked_inputs(rng, hidden, index)
    N, T, _ = case["x"].shape
    case["dh"] = rng.normal(size=(N, T, case["h0s"][-1].shape[1]))
    return case


def stacked_mismatch(rng: np.random.Generator) -> Case:
    """A residual stack whose layer ``l ≥ 2`` maps 1 feature to ``k``: it must raise.

    NumPy would broadcast ``(N, T, k)`` states plus a ``(N, T, 1)`` input without a word,
    and every later layer reads ``k`` features, so only a check of the sizes raises.
    """
    N, T, D = 2, 3, 4
    L = int(rng.integers(2, 5))
    bad = int(rng.integers(2, L + 1))  # the layer, numbered from 1
    k = int(rng.integers(2, 6))
    widths = [D] + [1] * (bad - 1) + [k] * (L - bad + 1)
    return {
        "x": rng.normal(size=(N, T, D)),
        "h0s": [rng.normal(size=(N, s)) for s in widths[1:]],
        "layers": [_params(rng, widths[l], widths[l + 1]) for l in range(L)],
        "residual": True,
    }


def stacked_cost(rng: np.random.Generator) -> Case:
    """A residual stack of L = 4 layers, N = 32, T = 64, H = 256: 2.1·10^9 flops forward."""
    N, T, H, L = 32, 64, 256, 4
    return {
        "x": rng.normal(size=(N, T, H)),
        "h0s": [rng.normal(scale=0.5, size=(N, H)) for _ in range(L)],
        "layers": [_scaled_params(rng, H, H) for _ in range(L)],
        "residual": True,
        "dh": rng.normal(size=(N, T, H)),
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


def highway_backward_inputs(rng: np.random.Generator, hidden: bool, index: int = 0) -> Case:
    case = highway_inputs(rng, hidden, index)
    case["dy"] = rng.normal(size=case["x"].shape)
    return case


def highway_cost(rng: np.random.Generator) -> Case:
    """N = 1024 rows of D = 640 features: 1.7·10^9 flops forward."""
    N, D = 1024, 640
    return {
        "x": rng.normal(size=(N, D)),
        "W_h": rng.normal(scale=1 / np.sqrt(D), size=(D, D)),
        "b_h": rng.normal(scale=0.1, size=D),
        "W_t": rng.normal(scale=1 / np.sqrt(D), size=(D, D)),
        "b_t": rng.normal(scale=0.5, size=D) - 1.0,
        "dy": rng.normal(size=(N, D)),
    }


def numerical_flops(name: str, case: Case) -> tuple[int, int]:
    """``(forward, numerical)``: floating-point operations of one forward pass of check
    ``name``'s case, and the fewest that differentiating it numerically needs, one forward
    pass (of the part the parameter affects) per column of a weight or entry of a bias.

    Multiply-adds count two. Elementwise work is left out: it only adds to both.
    """
    if name == "birnn_backward":
        D, H = case["params_fwd"][0].shape
        steps = int(np.sum(case["lengths"]))
        per_direction = 2 * steps * (D * H + H * H)
        # each direction's H bias entries: H forward passes of that direction
        return 2 * per_direction, 2 * H * per_direction
    if name == "stacked_rnn_backward":
        N, T, _ = case["x"].shape
        layer = [2 * N * T * (Wx.size + Wh.size) for Wx, Wh, _ in case["layers"]]
        # a parameter of layer l changes layers l..L: one pass through them per column
        numeric = sum(Wh.shape[0] * sum(layer[l:]) for l, (_, Wh, _) in enumerate(case["layers"]))
        return sum(layer), numeric
    if name == "highway_backward":
        N, D = case["x"].shape
        forward = 2 * N * (case["W_h"].size + case["W_t"].size)
        return forward, D * forward
    raise ValueError(f"name must be a backward check of deep_birnn, got {name!r}")


# --------------------------------------------------------------------------- reference


@functools.cache
def _birnn_module(D: int, H: int) -> nn.Module:
    """``torch.nn.RNN(bidirectional=True)`` in float64 (its own values unused)."""
    return nn.RNN(D, H, batch_first=True, bidirectional=True, dtype=ref.F64)


def birnn_forward(
    x: Tensor,
    lengths: np.ndarray,
    h0_fwd: Tensor,
    h0_bwd: Tensor,
    params_fwd: Params,
    params_bwd: Params,
) -> Tensor:
    """``h (N, T, 2H)`` of a bidirectional tanh RNN over a padded batch, by ``torch.nn``.

    ``torch.nn.RNN(bidirectional=True)`` on ``pack_padded_sequence(x, lengths,
    enforce_sorted=False)``, padded back with zeros to ``T`` steps: sequence ``n`` is
    ``x[n, :lengths[n]]``, its backward direction starts at step ``lengths[n] - 1``.
    """
    T, D = x.shape[1:]
    H = h0_fwd.shape[-1]
    params = ref.torch_layout(*params_fwd, "_l0") | ref.torch_layout(*params_bwd, "_l0_reverse")
    packed = pack_padded_sequence(
        x, torch.as_tensor(lengths, dtype=torch.int64), batch_first=True, enforce_sorted=False
    )
    out, _ = functional_call(_birnn_module(D, H), params, (packed, torch.stack([h0_fwd, h0_bwd])))
    h, _ = pad_packed_sequence(out, batch_first=True, padding_value=0.0, total_length=T)
    return h


def _birnn_flat(lengths: np.ndarray):  # type: ignore[no-untyped-def]
    """:func:`birnn_forward` as a function of its nine differentiable arrays."""

    def forward(x, h0_fwd, h0_bwd, Wx_f, Wh_f, b_f, Wx_b, Wh_b, b_b):  # type: ignore[no-untyped-def]
        return birnn_forward(x, lengths, h0_fwd, h0_bwd, (Wx_f, Wh_f, b_f), (Wx_b, Wh_b, b_b))

    return forward


def _birnn_leaves(case: Case) -> dict[str, Tensor]:
    arrays = [case["x"], case["h0_fwd"], case["h0_bwd"], *case["params_fwd"], *case["params_bwd"]]
    return {name[1:]: t_(a) for name, a in zip(BIRNN_GRADS, arrays, strict=True)}


def _birnn_reference(case: Case) -> dict[str, Any]:
    h = _birnn_flat(case["lengths"])(*_birnn_leaves(case).values())
    return {"h": to_np(h)}


def _birnn_backward_reference(case: Case) -> dict[str, Any]:
    grads = ref.vjp(_birnn_flat(case["lengths"]), _birnn_leaves(case), [t_(case["dh"])])
    return to_np(grads)


def stacked_rnn_forward(
    x: Tensor, h0s: Sequence[Tensor], layers: Sequence[Params], residual: bool = False
) -> Tensor:
    """The top layer's states ``(N, T, H_L)`` of stacked tanh RNNs (sizes may change per layer).

    Each layer is an :class:`rnn_course.RNN`; with ``residual`` a layer ``l > 1`` passes up
    its states plus its input (``skip="residual"`` of the package's stacks), which needs
    equal sizes (``ValueError`` otherwise).
    """
    if residual:
        for l, (Wx, Wh, _) in enumerate(layers[1:], start=2):
            if Wx.shape[0] != Wh.shape[0]:
                raise ValueError(
                    f"a residual layer needs equal input and output sizes, layer {l} maps "
                    f"{Wx.shape[0]} to {Wh.shape[0]}"
                )
    out = x
    for l, (h0, params) in enumerate(zip(h0s, layers, strict=True), start=1):
        h = ref.rnn_forward(out, h0, *params)  # (N, T, H_l)
        out = h + out if residual and l > 1 else h
    return out


def _stacked_tensors(case: Case) -> tuple[Tensor, list[Tensor], list[list[Tensor]]]:
    h0s = [t_(h) for h in case["h0s"]]
    return t_(case["x"]), h0s, [[t_(p) for p in ps] for ps in case["layers"]]


def _mismatched_layer(layers: Sequence[Sequence[np.ndarray]]) -> int | None:
    """The first layer ``l ≥ 2`` (numbered from 1) whose input and output sizes differ."""
    for l, (Wx, Wh, _) in enumerate(layers[1:], start=2):
        if Wx.shape[0] != Wh.shape[0]:
            return l
    return None


def _stacked_reference(case: Case) -> dict[str, Any]:
    x, h0s, layers = _stacked_tensors(case)
    try:
        h = stacked_rnn_forward(x, h0s, layers, residual=bool(case["residual"]))
    except ValueError as error:
        l = _mismatched_layer(case["layers"])
        # the student's message must name the layer, as the book numbers it or as code
        # indexes it; NumPy's own broadcasting error does not count
        return {"raised": f"ValueError: {error}", "names": [f"layer {l}", f"layers[{l - 1}]"]}
    return {"h": to_np(h)}


def _stacked_backward_reference(case: Case) -> dict[str, Any]:
    x, h0s, layers = _stacked_tensors(case)
    L = len(layers)
    residual = bool(case["residual"])
    leaves = {"x": x} | {f"h0_{l}": h0s[l - 1] for l in range(1, L + 1)}
    for l in range(1, L + 1):
        leaves |= {f"{p}_{l}": layers[l - 1][k] for k, p in enumerate(PARAMS)}

    def forward(*values: Tensor) -> Tensor:
        v = dict(zip(leaves, values, strict=True))
        params = [[v[f"{p}_{l}"] for p in PARAMS] for l in range(1, L + 1)]
        h0 = [v[f"h0_{l}"] for l in range(1, L + 1)]
        return stacked_rnn_forward(v["x"], h0, params, residual=residual)

    grads = to_np(ref.vjp(forward, leaves, [t_(case["dh"])]))
    return {"dx": grads.pop("dx"), "grads": {k[1:]: g for k, g in grads.items()}}


def highway_forward(x: Tensor, W_h: Tensor, b_h: Tensor, W_t: Tensor, b_t: Tensor) -> Tensor:
    """Highway layer: ``t ⊙ tanh(x W_h + b_h) + (1 − t) ⊙ x`` with ``t = σ(x W_t + b_t)``."""
    # the package's highway skip: lerp(u, h, t) = t ⊙ h + (1 − t) ⊙ u
    t = torch.sigmoid(x @ W_t + b_t)
    return torch.lerp(x, torch.tanh(x @ W_h + b_h), t)


def _highway_reference(case: Case) -> dict[str, Any]:
    return {"y": to_np(highway_forward(*(t_(case[k]) for k in HIGHWAY)))}


def _highway_backward_reference(case: Case) -> dict[str, Any]:
    leaves = {k: t_(case[k]) for k in HIGHWAY}
    return to_np(ref.vjp(highway_forward, leaves, [t_(case["dy"])]))


# --------------------------------------------------------------------------- known mistakes
# The wrong versions are written in NumPy, apart from the reference, one switch per
# mistake; their outputs key each mistake's hint and fix (see base.explain).


def _small(case: Case) -> bool:
    return case["x"].size <= MISTAKES_UP_TO


def _rnn_direction(
    x: np.ndarray, valid: np.ndarray, h0: np.ndarray, params: Sequence[np.ndarray], reverse: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One direction over a padded batch: ``(states, carried)``, both ``(N, T, H)``.

    ``states`` is 0 at padded steps; ``carried`` holds the state a padded step keeps (the
    forward direction's last state, the backward direction's ``h0``).
    """
    Wx, Wh, b = params
    N, T, _ = x.shape
    out, carried = np.zeros((N, T, h0.shape[1])), np.zeros((N, T, h0.shape[1]))
    h = h0
    for t in range(T - 1, -1, -1) if reverse else range(T):
        m = valid[:, t, None]
        h = np.where(m, np.tanh(x[:, t] @ Wx + h @ Wh + b), h)
        out[:, t], carried[:, t] = np.where(m, h, 0.0), h
    return out, carried


def _flip_within(v: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``v`` with each sequence's first ``lengths[n]`` steps in reverse order."""
    out = v.copy()
    for n, L in enumerate(lengths):
        out[n, :L] = v[n, :L][::-1]
    return out


def _birnn_variant(case: Case, **mistake: bool) -> dict[str, np.ndarray]:
    """The BiRNN's outputs with one mistake switched on (:func:`birnn_mistakes`)."""
    x, lengths = case["x"], case["lengths"]
    T = x.shape[1]
    valid = np.arange(T) < lengths[:, None]
    full = np.ones_like(valid)
    pf, pb = case["params_fwd"], case["params_bwd"]
    fwd, fwd_carried = _rnn_direction(x, valid, case["h0_fwd"], pf, False)
    bwd, bwd_carried = _rnn_direction(x, valid, case["h0_bwd"], pb, True)
    if mistake.get("padded_kept"):
        fwd, bwd = fwd_carried, bwd_carried
    if mistake.get("fwd_unmasked"):
        fwd = _rnn_direction(x, full, case["h0_fwd"], pf, False)[0]
    if mistake.get("starts_on_padding"):  # its outputs at padded steps zeroed, or not
        bwd = _rnn_direction(x, full, case["h0_bwd"], pb, True)[0]
        bwd = bwd if mistake.get("unzeroed") else bwd * valid[..., None]
    if mistake.get("not_reversed"):
        bwd = _rnn_direction(x, valid, case["h0_bwd"], pb, False)[0]
    if mistake.get("not_flipped_back"):
        bwd = _flip_within(bwd, lengths)
    if mistake.get("own_weights"):
        bwd = _rnn_direction(x, valid, case["h0_bwd"], pf, True)[0]
    halves = [bwd, fwd] if mistake.get("swapped") else [fwd, bwd]
    return {"h": np.concatenate(halves, axis=2)}


def birnn_mistakes(case: Case) -> Variants:
    if not _small(case):
        return {}
    v = functools.partial(_birnn_variant, case)
    start = explain(
        "the backward direction must start at each sequence's last step, t = lengths[n]-1, "
        "not at the end of the padding",
        "run the backward direction over t = T-1..0 but update only where t < lengths[n]",
    )
    return {
        start: v(starts_on_padding=True),
        start + " ": v(starts_on_padding=True, unzeroed=True),
        explain(
            "the outputs at padded steps (t >= lengths[n]) must be 0",
            "keep the state through padded steps but write 0 into h there",
        ): v(padded_kept=True),
        explain(
            "features :H differ at padded steps: the forward direction must stop at each "
            "sequence's length",
            "mask the forward direction too: no update and 0 in h where t >= lengths[n]",
        ): v(fwd_unmasked=True),
        explain(
            "features H: equal a forward RNN with the backward weights: that direction reads "
            "each sequence from its last step",
            "run the backward direction over t = lengths[n]-1, ..., 0",
        ): v(not_reversed=True),
        explain(
            "features H: are right but reversed in time: position t must hold the backward "
            "state that has read x[n, t:lengths[n]]",
            "store the backward state of step t at h[:, t, H:], in time order",
        ): v(not_flipped_back=True),
        explain(
            "both halves are right but in the wrong places",
            "concatenate [forward, backward] along the last axis",
        ): v(swapped=True),
        explain(
            "features H: use the wrong parameters: the two directions have separate weights",
            "run the backward direction with params_bwd",
        ): v(own_weights=True),
    }


def _direction_backward(
    dout: np.ndarray,
    x: np.ndarray,
    valid: np.ndarray,
    h0: np.ndarray,
    params: Sequence[np.ndarray],
    reverse: bool,
    *,
    upstream_at_padding: bool = False,
    prev_from_left: bool = False,
) -> list[np.ndarray]:
    """``[dx, dh0, dWx, dWh, db]`` of one direction over a padded batch, with switches."""
    Wx, Wh, _ = params
    T, D = x.shape[1:]
    H = h0.shape[1]
    out, carried = _rnn_direction(x, valid, h0, params, reverse)
    da = np.zeros(out.shape)
    carry = np.zeros_like(h0)
    for t in range(T) if reverse else range(T - 1, -1, -1):
        m = valid[:, t, None]
        g = dout[:, t] + carry
        da[:, t] = np.where(m, g * (1 - out[:, t] ** 2), 0.0)
        carry = np.where(m, da[:, t] @ Wh.T, g if upstream_at_padding else carry)
    if reverse and not prev_from_left:
        prev = np.concatenate([carried[:, 1:], h0[:, None]], axis=1)
    else:
        prev = np.concatenate([h0[:, None], carried[:, :-1]], axis=1)
    return [
        da @ Wx.T,
        carry,
        x.reshape(-1, D).T @ da.reshape(-1, H),
        prev.reshape(-1, H).T @ da.reshape(-1, H),
        da.sum(axis=(0, 1)),
    ]


def _birnn_backward_variant(case: Case, **mistake: bool) -> dict[str, np.ndarray]:
    x, lengths, dh = case["x"], case["lengths"], case["dh"]
    T, H = x.shape[1], case["h0_fwd"].shape[1]
    valid = np.arange(T) < lengths[:, None]
    d_f, d_b = dh[..., :H], dh[..., H:]
    if mistake.get("halves_swapped"):
        d_f, d_b = d_b, d_f
    if mistake.get("not_reversed"):
        d_b = _flip_within(d_b, lengths)
    if mistake.get("reversed_over_padding"):
        d_b = d_b[:, ::-1]
    kw = {k: mistake.get(k, False) for k in ("upstream_at_padding",)}
    f = _direction_backward(d_f, x, valid, case["h0_fwd"], case["params_fwd"], False, **kw)
    b = _direction_backward(
        d_b,
        x,
        valid,
        case["h0_bwd"],
        case["params_bwd"],
        True,
        prev_from_left=mistake.get("prev_from_left", False),
        **kw,
    )
    dx = f[0] if mistake.get("dx_one_direction") else f[0] + b[0]
    return dict(zip(BIRNN_GRADS, [dx, f[1], b[1], *f[2:], *b[2:]], strict=True))


def birnn_backward_mistakes(case: Case) -> Variants:
    if not _small(case):
        return {}
    v = functools.partial(_birnn_backward_variant, case)
    return {
        explain(
            "padded steps must receive no gradient: dh there reaches no state",
            "at a padded step pass the carried gradient on unchanged and ignore dh[:, t]",
        ): v(upstream_at_padding=True),
        explain(
            "the _bwd gradients pair each backward state with the wrong step's dh: that "
            "direction's states are in time order",
            "use dh[n, t, H:] at step t of the backward direction, in time order",
        ): v(not_reversed=True),
        explain(
            "the _bwd gradients read dh in the order of the padded array: each sequence "
            "ends at lengths[n]-1",
            "reverse the backward direction's steps within each sequence, not over all T",
        ): v(reversed_over_padding=True),
        explain(
            "the two halves of dh go to the wrong directions",
            "dh[..., :H] belongs to the forward direction, dh[..., H:] to the backward one",
        ): v(halves_swapped=True),
        explain(
            "x feeds both directions: dx is the sum of the two directions' contributions",
            "dx = dx of the forward direction + dx of the backward direction",
        ): v(dx_one_direction=True),
        explain(
            "dWh_bwd pairs each step with the wrong previous state: the backward direction's "
            "previous state is the one at t+1",
            "dWh_bwd sums outer(state at t+1 (h0_bwd at the sequence's end), da at t)",
        ): v(prev_from_left=True),
    }


def stacked_mistakes(case: Case) -> Variants:
    if not case["residual"]:
        return {}
    x, h0s, layers = _stacked_tensors(case)
    every, none = x, x
    try:
        for h0, ps in zip(h0s, layers, strict=True):
            every = ref.rnn_forward(every, h0, *ps) + every
            none = ref.rnn_forward(none, h0, *ps)
    except (ValueError, RuntimeError):  # sizes that do not allow residuals: no variants
        return {}
    return {
        explain(
            "layer 1 also adds its input: which layers may a residual skip?",
            "add the input only for layers l > 1 (layer 1 maps D features to H_1)",
        ): {"h": every.numpy()},
        explain(
            "residual=True changes nothing in your output",
            "for l > 1 with residual=True, pass up states + input",
        ): {"h": none.numpy()},
    }


def _layer_backward(
    g: np.ndarray, x: np.ndarray, h0: np.ndarray, params: Sequence[np.ndarray]
) -> list[np.ndarray]:
    return _direction_backward(g, x, np.ones(x.shape[:2], bool), h0, params, False)


def _stacked_backward_variant(case: Case, **mistake: bool) -> dict[str, Any]:
    x, h0s, layers, residual = case["x"], case["h0s"], case["layers"], bool(case["residual"])
    L = len(layers)
    inputs, out = [], x
    full = np.ones(x.shape[:2], bool)
    for l in range(1, L + 1):
        inputs.append(out)
        h = _rnn_direction(out, full, h0s[l - 1], layers[l - 1], False)[0]
        out = h + out if residual and l > 1 else h
    grads, g = {}, case["dh"]
    for l in range(L, 0, -1):
        dinp, dh0, *dparams = _layer_backward(g, inputs[l - 1], h0s[l - 1], layers[l - 1])
        skip = residual and (l > 1 or mistake.get("skip_on_layer_1"))
        if skip and not mistake.get("no_skip_gradient"):
            dinp = dinp + g
        named = l if not mistake.get("layers_reversed") else L + 1 - l
        grads[f"h0_{named}"] = dh0
        grads.update({f"{p}_{named}": d for p, d in zip(PARAMS, dparams, strict=True)})
        g = dinp
    return {"dx": g, "grads": grads}


def stacked_backward_mistakes(case: Case) -> Variants:
    if not _small(case):
        return {}
    v = functools.partial(_stacked_backward_variant, case)
    out = {}
    if case["residual"]:
        out[
            explain(
                "the skip path carries gradient too: a residual layer's input receives it "
                "through the RNN and directly",
                "for l > 1 with residual=True, add the gradient of the layer's output to the "
                "gradient of its input",
            )
        ] = v(no_skip_gradient=True)
        out[
            explain(
                "only dx differs: layer 1 has no skip (it maps D features to H_1), so x gets "
                "gradient only through that layer's RNN",
                "add the skip's gradient for layers l > 1 only",
            )
        ] = v(skip_on_layer_1=True)
    if len(case["layers"]) > 1:
        out[
            explain(
                "the gradients belong to other layers: layer 1 is the one that reads x",
                "store layer l's gradients under the keys ending in _l, l = 1 for layers[0]",
            )
        ] = v(layers_reversed=True)
    return out


def highway_mistakes(case: Case) -> Variants:
    x, Wh, bh, Wt, bt = (case[k] for k in HIGHWAY)
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


def _highway_backward_variant(case: Case, **mistake: bool) -> dict[str, np.ndarray]:
    x, Wh, bh, Wt, bt, dy = (case[k] for k in (*HIGHWAY, "dy"))
    t = 1 / (1 + np.exp(-(x @ Wt + bt)))
    g = np.tanh(x @ Wh + bh)
    dg = dy * t
    da_h = dg if mistake.get("no_tanh_derivative") else dg * (1 - g**2)
    if mistake.get("gate_without_carry"):
        dt = dy * g
    elif mistake.get("gate_without_transform"):
        dt = -dy * x
    else:
        dt = dy * (g - x)
    da_t = dt if mistake.get("no_sigmoid_derivative") else dt * t * (1 - t)
    carry = 0.0 if mistake.get("no_carry") else dy * (1 - t)
    dx = carry + da_h @ Wh.T + da_t @ Wt.T
    grads = [dx, x.T @ da_h, da_h.sum(0), x.T @ da_t, da_t.sum(0)]
    return dict(zip(HIGHWAY_GRADS, grads, strict=True))


def highway_backward_mistakes(case: Case) -> Variants:
    if not _small(case):
        return {}
    v = functools.partial(_highway_backward_variant, case)
    gate = (
        "the gate's gradient misses a path: t scales the transform and 1 - t scales the carried x"
    )
    fix = "the gradient at t is dy * (tanh(x @ W_h + b_h) - x)"
    return {
        explain(gate, fix): v(gate_without_carry=True),
        explain(gate, fix) + " ": v(gate_without_transform=True),
        explain(
            "dx misses the carry path: x also reaches y directly, scaled by 1 - t",
            "add dy * (1 - t) to dx",
        ): v(no_carry=True),
        explain(
            "dW_t and db_t do not go through the gate's sigmoid",
            "multiply the gradient at t by t * (1 - t) before the products",
        ): v(no_sigmoid_derivative=True),
        explain(
            "dW_h and db_h do not go through the transform's tanh",
            "multiply dy * t by 1 - tanh(x @ W_h + b_h)**2",
        ): v(no_tanh_derivative=True),
    }


# --------------------------------------------------------------------------- the checks

GRADCHECK = "the table of your gradient-check cell shows which gradient differs"
_BIRNN_F = step("birnn_forward", BIRNN_ARGS, ("h", "cache"))
_STACKED_F = step(
    "stacked_rnn_forward", ("x", "h0s", "layers"), ("h", "cache"), kwargs={"residual": "residual"}
)
_HIGHWAY_F = step("highway_forward", HIGHWAY, ("y", "cache"))
_BIRNN_CONVERT = {"params_fwd": "tuple", "params_bwd": "tuple"}
_STACKED_CONVERT = {"layers": "tuples", "residual": "bool"}

CHECKS = [
    Check(
        "birnn_forward",
        "deep_birnn",
        {"steps": [_BIRNN_F], "outputs": ["h"], "convert": _BIRNN_CONVERT},
        birnn_inputs,
        _birnn_reference,
        "h[n, t, H:] is the backward state after reading x[n, t:lengths[n]] in reverse; "
        "padded steps output 0",
        birnn_mistakes,
    ),
    Check(
        "birnn_backward",
        "deep_birnn",
        {
            "steps": [_BIRNN_F, step("birnn_backward", ("dh", "cache"), BIRNN_GRADS)],
            "outputs": list(BIRNN_GRADS),
            "convert": _BIRNN_CONVERT,
        },
        birnn_backward_inputs,
        _birnn_backward_reference,
        "backpropagate each direction in the reverse of the order it ran, and ask what a "
        "padded step does; " + GRADCHECK,
        birnn_backward_mistakes,
        cost=birnn_cost,
    ),
    Check(
        "stacked_rnn_forward",
        "deep_birnn",
        {
            "steps": [_STACKED_F],
            "outputs": ["h"],
            "convert": _STACKED_CONVERT,
            "raises": "ValueError",
        },
        stacked_inputs,
        _stacked_reference,
        "layer l reads layer l-1's output; with residual=True layers l > 1 add their input",
        stacked_mistakes,
        extra_hidden=stacked_mismatch,
    ),
    Check(
        "stacked_rnn_backward",
        "deep_birnn",
        {
            "steps": [_STACKED_F, step("stacked_rnn_backward", ("dh", "cache"), ("dx", "grads"))],
            "outputs": ["dx", "grads"],
            "convert": _STACKED_CONVERT,
        },
        stacked_backward_inputs,
        _stacked_backward_reference,
        "layer l's input is layer l-1's output: its gradient is layer l-1's upstream dh; "
        + GRADCHECK,
        stacked_backward_mistakes,
        cost=stacked_cost,
    ),
    Check(
        "highway_forward",
        "deep_birnn",
        {"steps": [_HIGHWAY_F], "outputs": ["y"]},
        highway_inputs,
        _highway_reference,
        "the gate t decides, per feature, how much of the transform and how much of x pass",
        highway_mistakes,
    ),
    Check(
        "highway_backward",
        "deep_birnn",
        {
            "steps": [_HIGHWAY_F, step("highway_backward", ("dy", "cache"), HIGHWAY_GRADS)],
            "outputs": list(HIGHWAY_GRADS),
        },
        highway_backward_inputs,
        _highway_backward_reference,
        "x reaches y by three paths: the carry, the transform and the gate; " + GRADCHECK,
        highway_backward_mistakes,
        cost=highway_cost,
    ),
]
