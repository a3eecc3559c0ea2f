r"""Backpropagation through time for the gated cells, written out in the book's notation.

As :mod:`rnn_course.bptt` does for the tanh RNN, this module runs an LSTM and a GRU over
one sequence with column vectors and one weight matrix per gate, and backpropagates by the
explicit recursions that chapters 5 and 6 derive; the chapters call it to check those
derivations against autograd and finite differences. Parameters are dictionaries keyed by
the book's names: ``W_hk``, ``W_xk`` and ``b_k`` for every block ``k`` (LSTM ``i, f, g,
o``; GRU, reset gate before the recurrent product, ``u, r`` and ``c`` for the candidate
:math:`\tilde{\mathbf{h}}`). Inputs are ``x (T, D)`` with row ``t - 1`` holding
:math:`\mathbf{x}^{(t)}`; ``dh (T, H)`` holds the partial derivatives
:math:`\partial \mathcal{L}^{(t)} / \partial \mathbf{h}^{(t)}` that the loss terms hand
over. Batches, the row layout and the stacked gates are the business of the layers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

Params = dict[str, Tensor]
LSTM_BLOCKS = "ifgo"
GRU_BLOCKS = "urc"


def random_parameters(blocks: str, D: int, H: int, seed: int, dtype=torch.float64) -> Params:
    """Gaussian weights of scale ``1/√H`` (recurrent), ``1/√D`` (input) and biases of 0.5."""
    g = torch.Generator().manual_seed(seed)
    p: Params = {}
    for k in blocks:
        p[f"W_h{k}"] = torch.randn(H, H, generator=g, dtype=dtype) / H**0.5
        p[f"W_x{k}"] = torch.randn(H, D, generator=g, dtype=dtype) / D**0.5
        p[f"b_{k}"] = 0.5 * torch.randn(H, generator=g, dtype=dtype)
    return p


# ------------------------------------------------------------------------------------------
# LSTM
# ------------------------------------------------------------------------------------------


def lstm_sequence_forward(x: Tensor, p: Params) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Run the LSTM over ``x (T, D)`` from zero state and cell; return ``h (T, H)``, a cache."""
    H = p["b_i"].shape[0]
    h = c = x.new_zeros(H)
    states, cache = [], []
    for x_t in x:
        a = {k: p[f"W_h{k}"] @ h + p[f"W_x{k}"] @ x_t + p[f"b_{k}"] for k in LSTM_BLOCKS}
        i, f, o = torch.sigmoid(a["i"]), torch.sigmoid(a["f"]), torch.sigmoid(a["o"])
        g = torch.tanh(a["g"])
        c_new = f * c + i * g
        h_new = o * torch.tanh(c_new)
        cache.append({"x": x_t, "h": h, "c": c, "c_new": c_new, "i": i, "f": f, "g": g, "o": o})
        h, c = h_new, c_new
        states.append(h)
    return torch.stack(states), cache


@torch.no_grad()
def lstm_sequence_backward(dh: Tensor, p: Params, cache: list[dict[str, Tensor]]) -> Params:
    """The gradients of every parameter by the recursion of chapter 5 (no autograd)."""
    grads = {name: torch.zeros_like(value) for name, value in p.items()}
    h_bar_next = torch.zeros_like(dh[0])  # what step t + 1 sends back to h^(t)
    c_next = torch.zeros_like(dh[0])  # f^(t+1) ⊙ c̄^(t+1), zero after the last step
    for t in range(len(cache) - 1, -1, -1):
        s = cache[t]
        h_bar = dh[t] + h_bar_next
        tanh_c = torch.tanh(s["c_new"])
        c_bar = c_next + h_bar * s["o"] * (1 - tanh_c**2)
        delta = {
            "i": c_bar * s["g"] * s["i"] * (1 - s["i"]),
            "f": c_bar * s["c"] * s["f"] * (1 - s["f"]),
            "g": c_bar * s["i"] * (1 - s["g"] ** 2),
            "o": h_bar * tanh_c * s["o"] * (1 - s["o"]),
        }
        for k, d in delta.items():
            grads[f"W_h{k}"] += torch.outer(d, s["h"])
            grads[f"W_x{k}"] += torch.outer(d, s["x"])
            grads[f"b_{k}"] += d
        h_bar_next = sum(p[f"W_h{k}"].T @ delta[k] for k in LSTM_BLOCKS)
        c_next = s["f"] * c_bar
    return grads


# ------------------------------------------------------------------------------------------
# GRU, reset gate before the recurrent product
# ------------------------------------------------------------------------------------------


def gru_sequence_forward(x: Tensor, p: Params) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Run the reset-before GRU over ``x (T, D)`` from zero; return ``h (T, H)`` and a cache."""
    H = p["b_u"].shape[0]
    h = x.new_zeros(H)
    states, cache = [], []
    for x_t in x:
        u = torch.sigmoid(p["W_hu"] @ h + p["W_xu"] @ x_t + p["b_u"])
        r = torch.sigmoid(p["W_hr"] @ h + p["W_xr"] @ x_t + p["b_r"])
        s = r * h
        cand = torch.tanh(p["W_hc"] @ s + p["W_xc"] @ x_t + p["b_c"])
        cache.append({"x": x_t, "h": h, "u": u, "r": r, "s": s, "cand": cand})
        h = (1 - u) * h + u * cand
        states.append(h)
    return torch.stack(states), cache


@torch.no_grad()
def gru_sequence_backward(dh: Tensor, p: Params, cache: list[dict[str, Tensor]]) -> Params:
    """The gradients of every parameter by the recursion of chapter 6 (no autograd)."""
    grads = {name: torch.zeros_like(value) for name, value in p.items()}
    h_bar_next = torch.zeros_like(dh[0])
    for t in range(len(cache) - 1, -1, -1):
        v = cache[t]
        h_bar = dh[t] + h_bar_next
        delta = {
            "c": h_bar * v["u"] * (1 - v["cand"] ** 2),
            "u": h_bar * (v["cand"] - v["h"]) * v["u"] * (1 - v["u"]),
        }
        s_bar = p["W_hc"].T @ delta["c"]
        delta["r"] = s_bar * v["h"] * v["r"] * (1 - v["r"])
        grads["W_hc"] += torch.outer(delta["c"], v["s"])
        for k in "ur":
            grads[f"W_h{k}"] += torch.outer(delta[k], v["h"])
        for k in GRU_BLOCKS:
            grads[f"W_x{k}"] += torch.outer(delta[k], v["x"])
            grads[f"b_{k}"] += delta[k]
        h_bar_next = (
            (1 - v["u"]) * h_bar
            + v["r"] * s_bar
            + p["W_hu"].T @ delta["u"]
            + p["W_hr"].T @ delta["r"]
        )
    return grads


def gru_cell_state_dict(p: Params) -> dict[str, Tensor]:
    """The state dict of ``rnn_course.GRUCell(D, H, reset_after=False)`` computing ``p``'s GRU.

    The cell stacks its blocks in :mod:`torch.nn`'s order r, z, n with :math:`\\mathbf{z}`
    the fraction of the state that is kept.
    """
    return {
        "weight_ih": torch.cat([p["W_xr"], -p["W_xu"], p["W_xc"]]),
        "weight_hh": torch.cat([p["W_hr"], -p["W_hu"], p["W_hc"]]),
        "bias_ih": torch.cat([p["b_r"], -p["b_u"], p["b_c"]]),
        "bias_hh": torch.zeros(3 * p["b_u"].shape[0], dtype=p["b_u"].dtype),
    }


def lstm_cell_state_dict(p: Params) -> dict[str, Tensor]:
    """The state dict of ``rnn_course.LSTMCell(D, H)`` computing ``p``'s LSTM step."""
    return {
        "weight_ih": torch.cat([p[f"W_x{k}"] for k in LSTM_BLOCKS]),
        "weight_hh": torch.cat([p[f"W_h{k}"] for k in LSTM_BLOCKS]),
        "bias_ih": torch.cat([p[f"b_{k}"] for k in LSTM_BLOCKS]),
        "bias_hh": torch.zeros(4 * p["b_i"].shape[0], dtype=p["b_i"].dtype),
    }


# ------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------


def autograd_gradients(forward: Any, x: Tensor, dh: Tensor, p: Params) -> Params:
    """The gradients of :math:`\\mathcal{L} = \\sum_t \\langle dh^{(t)}, \\mathbf{h}^{(t)}
    \\rangle` by :func:`torch.autograd.grad` through ``forward(x, p)``."""
    leaves = {name: value.detach().clone().requires_grad_() for name, value in p.items()}
    h, _ = forward(x, leaves)
    grads = torch.autograd.grad((dh * h).sum(), list(leaves.values()))
    return dict(zip(leaves, grads, strict=True))


@torch.no_grad()
def finite_difference_gradients(
    forward: Any, x: Tensor, dh: Tensor, p: Params, eps: float
) -> Params:
    """Central differences :math:`(\\mathcal{L}(\\theta + \\varepsilon) - \\mathcal{L}(\\theta -
    \\varepsilon)) / 2\\varepsilon`, one parameter entry at a time, of the same loss."""

    def loss(q: Params) -> float:
        return (dh * forward(x, q)[0]).sum().item()

    grads: Params = {}
    for name, value in p.items():
        grad = torch.zeros_like(value)
        for index in range(value.numel()):
            shifted = {n: v.clone() for n, v in p.items()}
            shifted[name].view(-1)[index] += eps
            up = loss(shifted)
            shifted[name].view(-1)[index] -= 2 * eps
            grad.view(-1)[index] = (up - loss(shifted)) / (2 * eps)
        grads[name] = grad
    return grads


def max_relative_error(a: Params, b: Params) -> float:
    """The largest ``max |a - b| / max |b|`` over the parameters (``b`` is the reference)."""
    return max(((a[n] - b[n]).abs().max() / b[n].abs().max().clamp(min=1e-12)).item() for n in a)
