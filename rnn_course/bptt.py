"""Backpropagation through time written out by hand, and its truncated variant.

The forward functions use the assignments' conventions: batch-first sequences and weights
that multiply from the right,

.. math::

    \\mathbf{a}_t = \\mathbf{x}_t W_x + \\mathbf{h}_{t-1} W_h + \\mathbf{b}, \\qquad
    \\mathbf{h}_t = \\tanh(\\mathbf{a}_t),

with ``x (N, T, D)``, ``h0 (N, H)``, ``W_x (D, H)``, ``W_h (H, H)``, ``b (H,)``. The backward
functions run the recursion explicitly under :func:`torch.no_grad` (no autograd); the tests
check them against :mod:`torch.autograd` in float64.

Partial versus total derivatives. Let ``dh[:, t]`` be the *partial* derivative
∂J/∂h_t of the loss through the paths that leave the recurrence at step t (an output layer
at every step, say). The *total* derivative also follows h_t into h_{t+1}:

.. math::

    \\frac{dJ}{d\\mathbf{h}_t} = \\frac{\\partial J}{\\partial \\mathbf{h}_t}
        + \\boldsymbol{\\delta}_{t+1} W_h^{\\top}, \\qquad
    \\boldsymbol{\\delta}_t = \\frac{dJ}{d\\mathbf{a}_t}
        = \\frac{dJ}{d\\mathbf{h}_t} \\odot (1 - \\mathbf{h}_t^2),

and the gradients of the shared weights add up over the steps:
``dW_h = Σ_t h_{t-1}ᵀ δ_t``, ``dW_x = Σ_t x_tᵀ δ_t``, ``db = Σ_t Σ_n δ_t``. The tanh derivative
is taken at the step's own output, ``1 − h_t²``, not at ``h_{t-1}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from rnn_course.gradient_flow import _stepwise_hidden_gradient_norms
from rnn_course.validation import (
    expect_floating,
    expect_positive_int,
    expect_same_device_and_dtype,
    expect_shape,
    expect_tensor,
)

# ---------------------------------------------------------------------------------------------
# tanh RNN
# ---------------------------------------------------------------------------------------------


class RNNCache(NamedTuple):
    """What :func:`tanh_rnn_backward` needs from the forward pass."""

    x: Tensor  # (N, T, D)
    h0: Tensor  # (N, H)
    W_x: Tensor  # (D, H)
    W_h: Tensor  # (H, H)
    h: Tensor  # (N, T, H), h[:, t] = h_t


class RNNGrads(NamedTuple):
    """Gradients of the loss with respect to the inputs of :func:`tanh_rnn_forward`."""

    dx: Tensor  # (N, T, D)
    dh0: Tensor  # (N, H)
    dW_x: Tensor  # (D, H)
    dW_h: Tensor  # (H, H)
    db: Tensor  # (H,)


def _check_inputs(
    x: Tensor, h0: Tensor, W_x: Tensor, W_h: Tensor, b: Tensor, gates: int
) -> tuple[int, int, int, int]:
    """Validate the forward arguments once; return ``N, T, D, H``."""
    for name, value in (("x", x), ("h0", h0), ("W_x", W_x), ("W_h", W_h), ("b", b)):
        expect_tensor(name, value)
        expect_floating(name, value)
    expect_shape("x", x, (None, None, None), "(N, T, D)")
    N, T, D = x.shape
    if T == 0:
        raise ValueError("x must contain at least one time step, got T=0")
    expect_shape("h0", h0, (N, None), "(N, H)")
    H = h0.shape[1]
    G = "" if gates == 1 else str(gates)
    expect_shape("W_x", W_x, (D, gates * H), f"(D, {G}H)")
    expect_shape("W_h", W_h, (H, gates * H), f"(H, {G}H)")
    expect_shape("b", b, (gates * H,), f"({G}H,)")
    expect_same_device_and_dtype(x=x, h0=h0, W_x=W_x, W_h=W_h, b=b)
    return N, T, D, H


def tanh_rnn_forward(
    x: Tensor, h0: Tensor, W_x: Tensor, W_h: Tensor, b: Tensor
) -> tuple[Tensor, RNNCache]:
    """Run a tanh RNN over a batch of sequences.

    Args:
        x: inputs ``(N, T, D)``.
        h0: initial state ``(N, H)``.
        W_x: input weights ``(D, H)``.
        W_h: recurrent weights ``(H, H)``.
        b: bias ``(H,)``.

    Returns:
        ``h (N, T, H)`` with ``h[:, t]`` the state after reading ``x[:, t]`` (``h0`` is not
        included), and the cache for :func:`tanh_rnn_backward`. The forward pass is plain
        torch code, so autograd can differentiate it too.
    """
    N, T, D, H = _check_inputs(x, h0, W_x, W_h, b, gates=1)
    # the input projections do not depend on the state: one GEMM for all steps
    xw = (x.reshape(N * T, D) @ W_x + b).reshape(N, T, H)
    h = h0
    hs = []
    for t in range(T):
        # h_t = tanh(x_t W_x + h_{t-1} W_h + b)
        h = torch.tanh(xw[:, t] + h @ W_h)  # (N, H)
        hs.append(h)
    h_all = torch.stack(hs, dim=1)  # (N, T, H)
    return h_all, RNNCache(x, h0, W_x, W_h, h_all)


@torch.no_grad()
def tanh_rnn_backward(dh: Tensor, cache: RNNCache) -> RNNGrads:
    """Backpropagate through a tanh RNN by the explicit recursion (no autograd).

    Args:
        dh: partial derivatives ``∂J/∂h_t`` from outside the recurrence, ``(N, T, H)``.
        cache: from :func:`tanh_rnn_forward`.

    Returns:
        :class:`RNNGrads` ``(dx (N, T, D), dh0 (N, H), dW_x (D, H), dW_h (H, H), db (H,))``.
    """
    x, h0, W_x, W_h, h = (t.detach() for t in cache)
    N, T, D = x.shape
    H = h0.shape[1]
    expect_tensor("dh", dh)
    expect_shape("dh", dh, (N, T, H), "(N, T, H)")
    expect_same_device_and_dtype(dh=dh, h=h)
    delta = torch.empty_like(h)  # δ_t = dJ/da_t for every step, (N, T, H)
    W_h_T = W_h.T
    # dJ/dh_T gets nothing from a later step
    carry = torch.zeros_like(h0)  # δ_{t+1} W_hᵀ, (N, H)
    for t in range(T - 1, -1, -1):
        # dJ/dh_t = ∂J/∂h_t + δ_{t+1} W_hᵀ ;  δ_t = dJ/dh_t ⊙ (1 − h_t²)
        d = (dh[:, t] + carry) * (1 - h[:, t] * h[:, t])
        delta[:, t] = d
        carry = d @ W_h_T  # (N, H)
    # the weight gradients sum over steps: one GEMM each over the flattened (N·T) rows
    h_prev = torch.cat([h0[:, None], h[:, :-1]], dim=1)  # h_{t-1}, (N, T, H)
    delta_flat = delta.reshape(N * T, H)
    dW_x = x.reshape(N * T, D).T @ delta_flat  # Σ_t x_tᵀ δ_t, (D, H)
    dW_h = h_prev.reshape(N * T, H).T @ delta_flat  # Σ_t h_{t-1}ᵀ δ_t, (H, H)
    db = delta_flat.sum(0)  # (H,)
    dx = (delta_flat @ W_x.T).reshape(N, T, D)  # (N, T, D)
    return RNNGrads(dx, carry, dW_x, dW_h, db)


# ---------------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------------


class LSTMCache(NamedTuple):
    """What :func:`lstm_backward` needs from the forward pass (gates after activation)."""

    x: Tensor  # (N, T, D)
    h0: Tensor  # (N, H)
    c0: Tensor  # (N, H)
    W_x: Tensor  # (D, 4H)
    W_h: Tensor  # (H, 4H)
    gates: Tensor  # (N, T, 4H): i, f, g, o after σ / tanh
    c: Tensor  # (N, T, H), c[:, t] = c_t
    tanh_c: Tensor  # (N, T, H)
    h: Tensor  # (N, T, H)


class LSTMGrads(NamedTuple):
    """Gradients of the loss with respect to the inputs of :func:`lstm_forward`."""

    dx: Tensor  # (N, T, D)
    dh0: Tensor  # (N, H)
    dc0: Tensor  # (N, H)
    dW_x: Tensor  # (D, 4H)
    dW_h: Tensor  # (H, 4H)
    db: Tensor  # (4H,)


def lstm_forward(
    x: Tensor, h0: Tensor, c0: Tensor, W_x: Tensor, W_h: Tensor, b: Tensor
) -> tuple[Tensor, LSTMCache]:
    """Run an LSTM (gate order i, f, g, o, as in :class:`torch.nn.LSTM`) over a batch.

    Args:
        x: inputs ``(N, T, D)``.
        h0: initial hidden state ``(N, H)``.
        c0: initial cell ``(N, H)``.
        W_x: input weights ``(D, 4H)`` (``= weight_ih.T``).
        W_h: recurrent weights ``(H, 4H)`` (``= weight_hh.T``).
        b: bias ``(4H,)`` (``= bias_ih + bias_hh``).

    Returns:
        ``h (N, T, H)`` and the cache; the cells are ``cache.c (N, T, H)``.

    .. math::

        \\mathbf{a} = \\mathbf{x}_t W_x + \\mathbf{h}_{t-1} W_h + \\mathbf{b}, \\quad
        \\mathbf{c}_t = \\mathbf{f} \\odot \\mathbf{c}_{t-1} + \\mathbf{i} \\odot \\mathbf{g},
        \\quad \\mathbf{h}_t = \\mathbf{o} \\odot \\tanh(\\mathbf{c}_t)
    """
    N, T, D, H = _check_inputs(x, h0, W_x, W_h, b, gates=4)
    expect_tensor("c0", c0)
    expect_shape("c0", c0, (N, H), "(N, H)")
    expect_same_device_and_dtype(h0=h0, c0=c0)
    xw = (x.reshape(N * T, D) @ W_x + b).reshape(N, T, 4 * H)
    h, c = h0, c0
    gates_all, cs, tanh_cs, hs = [], [], [], []
    for t in range(T):
        a = xw[:, t] + h @ W_h  # (N, 4H)
        # i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
        i = torch.sigmoid(a[:, :H])
        f = torch.sigmoid(a[:, H : 2 * H])
        g = torch.tanh(a[:, 2 * H : 3 * H])
        o = torch.sigmoid(a[:, 3 * H :])
        # c_t = f ⊙ c_{t-1} + i ⊙ g
        c = f * c + i * g
        tanh_c = torch.tanh(c)
        # h_t = o ⊙ tanh(c_t)
        h = o * tanh_c
        gates_all.append(torch.cat([i, f, g, o], dim=1))
        cs.append(c)
        tanh_cs.append(tanh_c)
        hs.append(h)
    h_all = torch.stack(hs, dim=1)  # (N, T, H)
    cache = LSTMCache(
        x,
        h0,
        c0,
        W_x,
        W_h,
        torch.stack(gates_all, dim=1),
        torch.stack(cs, dim=1),
        torch.stack(tanh_cs, dim=1),
        h_all,
    )
    return h_all, cache


@torch.no_grad()
def lstm_backward(dh: Tensor, cache: LSTMCache, dc_last: Tensor | None = None) -> LSTMGrads:
    """Backpropagate through an LSTM by the explicit recursion (no autograd).

    Args:
        dh: partial derivatives ``∂J/∂h_t`` from outside the recurrence, ``(N, T, H)``.
        cache: from :func:`lstm_forward`.
        dc_last: ``∂J/∂c_{T-1}`` from outside (when the loss reads the final cell),
            ``(N, H)``; zero when ``None``.

    Returns:
        :class:`LSTMGrads` ``(dx, dh0, dc0, dW_x (D, 4H), dW_h (H, 4H), db (4H,))``.

    Notes:
        The cell gradient has two sources at every step: the path through
        ``h_t = o ⊙ tanh(c_t)`` and the path into ``c_{t+1} = f_{t+1} ⊙ c_t + …``. The latter
        multiplies by ``f`` only, with no weight matrix and no squashing derivative: the
        constant error carousel.
    """
    x, h0, c0, W_x, W_h, gates, c, tanh_c, h = (t.detach() for t in cache)
    N, T, D = x.shape
    H = h0.shape[1]
    expect_tensor("dh", dh)
    expect_shape("dh", dh, (N, T, H), "(N, T, H)")
    expect_same_device_and_dtype(dh=dh, h=h)
    dc_next = torch.zeros_like(c0)
    if dc_last is not None:
        expect_tensor("dc_last", dc_last)
        expect_shape("dc_last", dc_last, (N, H), "(N, H)")
        expect_same_device_and_dtype(dc_last=dc_last, h=h)
        dc_next = dc_last.detach().clone()
    da_all = torch.empty_like(gates)  # dJ/da_t, (N, T, 4H)
    W_h_T = W_h.T
    dh_next = torch.zeros_like(h0)  # the recurrent part of dJ/dh_t
    for t in range(T - 1, -1, -1):
        i, f, g, o = gates[:, t].split(H, dim=1)
        c_prev = c0 if t == 0 else c[:, t - 1]
        # dJ/dh_t (total) = ∂J/∂h_t + a_{t+1}-gradient W_hᵀ
        dh_t = dh[:, t] + dh_next
        # h_t = o ⊙ tanh(c_t)
        do = dh_t * tanh_c[:, t]
        # dJ/dc_t (total) = from h_t + from c_{t+1} (already multiplied by f_{t+1})
        dc = dc_next + dh_t * o * (1 - tanh_c[:, t] * tanh_c[:, t])
        # c_t = f ⊙ c_{t-1} + i ⊙ g
        di = dc * g
        dg = dc * i
        df = dc * c_prev
        dc_next = dc * f
        # back through σ and tanh: σ' = σ(1 − σ), tanh' = 1 − tanh²
        da = torch.cat([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], 1)
        da_all[:, t] = da
        dh_next = da @ W_h_T  # (N, H)
    h_prev = torch.cat([h0[:, None], h[:, :-1]], dim=1)  # (N, T, H)
    da_flat = da_all.reshape(N * T, 4 * H)
    dW_x = x.reshape(N * T, D).T @ da_flat  # (D, 4H)
    dW_h = h_prev.reshape(N * T, H).T @ da_flat  # (H, 4H)
    db = da_flat.sum(0)  # (4H,)
    dx = (da_flat @ W_x.T).reshape(N, T, D)
    return LSTMGrads(dx, dh_next, dc_next, dW_x, dW_h, db)


# ---------------------------------------------------------------------------------------------
# Truncated BPTT
# ---------------------------------------------------------------------------------------------

State = Any  # a tensor, a tuple of tensors (LSTM) or None


def detach_state(state: State) -> State:
    """Cut the graph behind a recurrent state: ``None``, a tensor, or a tuple/list of them."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, tuple | list):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"state must be None, a tensor or a tuple of tensors, got {type(state)}")


def truncated_bptt(
    model: Callable[[Tensor, State], tuple[Tensor, State]],
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    k: int,
    optimizer: torch.optim.Optimizer,
    state: State = None,
) -> list[float]:
    """Train on one long sequence in chunks of ``k`` steps, carrying the state.

    Each chunk runs ``prediction, state = model(x[:, s:s+k], state)``, computes
    ``loss_fn(prediction, y[:, s:s+k])``, backpropagates and takes one optimizer step. The
    state then goes on to the next chunk with ``.detach()``: its *value* is carried (the
    forward pass is the same as the untruncated one, up to the weight updates) but gradients
    stop at the chunk boundary, so no dependency longer than ``k`` steps can be learned.

    Args:
        model: ``model(x_chunk (N, k, D), state) -> (prediction, state)``; ``state`` is
            ``None`` on the first call.
        x: inputs, batch-first ``(N, T, ...)``.
        y: per-step targets ``(N, T, ...)``.
        loss_fn: ``loss_fn(prediction, y_chunk) -> scalar``.
        k: chunk length (the last chunk may be shorter).
        optimizer: stepped once per chunk.
        state: initial state (default ``None``).

    Returns:
        The loss of every chunk, ``ceil(T / k)`` floats.
    """
    expect_tensor("x", x)
    expect_tensor("y", y)
    expect_positive_int("k", k)
    if x.dim() < 2 or y.dim() < 2 or x.shape[:2] != y.shape[:2]:
        raise ValueError(
            f"x and y must be batch-first with the same (N, T), got {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )
    losses = []
    T = x.shape[1]
    for start in range(0, T, k):
        prediction, state = model(x[:, start : start + k], state)
        loss = loss_fn(prediction, y[:, start : start + k])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        # keep the value, drop the graph: the next chunk's gradients stop here
        state = detach_state(state)
    return losses


def truncated_gradient_norms(
    layer: nn.Module, x: Tensor, k: int, hx: State = None, *, upstream: Tensor | None = None
) -> Tensor:
    """``‖∂J/∂h_t‖`` for every step when the graph is cut every ``k`` steps.

    The layer runs over the whole sequence with its state carried, but the state is
    detached after steps ``k-1, 2k-1, …``; ``J = ⟨upstream, h_{T-1}⟩`` as in
    :func:`rnn_course.gradient_flow.hidden_gradient_norms`. Steps before the last cut get
    a gradient of exactly zero.

    Args:
        layer: an ``RNN``/``LSTM``/``GRU`` layer (rnn_course or torch.nn), unidirectional.
        x: inputs in the layer's layout, ``(N, T, D)`` if ``batch_first`` else ``(T, N, D)``.
        k: truncation length.
        hx: initial state as the layer takes it (default zeros).
        upstream: ``∂J/∂h_{T-1}``, ``(N, H)``; default ``ones / √(N·H)``.

    Returns:
        norms ``(T,)``: Frobenius norms over the batch.
    """
    expect_positive_int("k", k)
    return _stepwise_hidden_gradient_norms(layer, x, hx, upstream, cut_every=k)
