r"""Backpropagation through time written out by hand, and its truncated variant.

The hand-written pass follows the book's notation (chapter 2): column vectors, one
sequence, time steps ``t = 1, …, T``,

.. math::

    \mathbf{a}^{(t)} = W_h \mathbf{h}^{(t-1)} + W_x \mathbf{x}^{(t)} + \mathbf{b}, \qquad
    \mathbf{h}^{(t)} = \tanh\big(\mathbf{a}^{(t)}\big),

with ``x (T, D)`` (row ``t - 1`` holds :math:`\mathbf{x}^{(t)}`), ``h0 (H,)``,
``W_x (H, D)``, ``W_h (H, H)`` and ``b (H,)``. The backward pass turns the *partial*
derivatives :math:`\partial \mathcal{L}^{(t)} / \partial \mathbf{h}^{(t)}` that the
loss terms hand over into the *total* derivatives

.. math::

    \bar{\mathbf{h}}^{(t)} = \frac{d\mathcal{L}}{d\mathbf{h}^{(t)}}
        = \frac{\partial \mathcal{L}^{(t)}}{\partial \mathbf{h}^{(t)}}
        + W_h^\top \boldsymbol{\delta}^{(t+1)}, \qquad
    \boldsymbol{\delta}^{(t)} = \frac{d\mathcal{L}}{d\mathbf{a}^{(t)}}
        = \big(1 - (\mathbf{h}^{(t)})^2\big) \odot \bar{\mathbf{h}}^{(t)},

and the gradient of each shared weight is a sum of one outer product per step,
:math:`d\mathcal{L}/dW_h = \sum_t \boldsymbol{\delta}^{(t)} (\mathbf{h}^{(t-1)})^\top`.
Batches, the row-vector layout and the gated cells are the business of the layers in
:mod:`rnn_course.layers`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnn_course.gradient_flow import _stepwise_hidden_gradient_norms
from rnn_course.state import State, detach_state
from rnn_course.validation import (
    expect_floating,
    expect_positive_int,
    expect_same_device_and_dtype,
    expect_shape,
    expect_tensor,
)

# ---------------------------------------------------------------------------------------------
# tanh RNN, one sequence, column vectors
# ---------------------------------------------------------------------------------------------


class TanhRNNCache(NamedTuple):
    """What :func:`tanh_rnn_backward` needs from the forward pass."""

    x: Tensor  # (T, D), x[t - 1] = x^(t)
    h0: Tensor  # (H,)
    W_x: Tensor  # (H, D)
    W_h: Tensor  # (H, H)
    h: Tensor  # (T, H), h[t - 1] = h^(t)


class TanhRNNGrads(NamedTuple):
    """Total derivatives of the loss with respect to the arguments of :func:`tanh_rnn_forward`."""

    dx: Tensor  # (T, D), dx[t - 1] = dL/dx^(t)
    dh0: Tensor  # (H,)
    dW_x: Tensor  # (H, D)
    dW_h: Tensor  # (H, H)
    db: Tensor  # (H,)


def tanh_rnn_forward(
    x: Tensor, h0: Tensor, W_x: Tensor, W_h: Tensor, b: Tensor
) -> tuple[Tensor, TanhRNNCache]:
    r"""Run the tanh RNN over one sequence, in the book's column-vector notation.

    .. math::

        \mathbf{h}^{(t)} = \tanh\big(W_h \mathbf{h}^{(t-1)} + W_x \mathbf{x}^{(t)}
        + \mathbf{b}\big), \qquad t = 1, \dots, T.

    Args:
        x: inputs, row ``t - 1`` is :math:`\mathbf{x}^{(t)}`.
        h0: initial state :math:`\mathbf{h}^{(0)}`.
        W_x: input weights.
        W_h: recurrent weights.
        b: bias.

    Returns:
        The states ``h``, row ``t - 1`` is :math:`\mathbf{h}^{(t)}` (``h0`` is not included),
        and the cache for :func:`tanh_rnn_backward`. The forward pass is plain torch code,
        so autograd can differentiate it too.

    Shape:
        ``x (T, D)``, ``h0 (H,)``, ``W_x (H, D)``, ``W_h (H, H)``, ``b (H,)`` → ``h (T, H)``.
    """
    for name, value in (("x", x), ("h0", h0), ("W_x", W_x), ("W_h", W_h), ("b", b)):
        expect_tensor(name, value)
        expect_floating(name, value)
    expect_shape("x", x, (None, None), "(T, D)")
    T, D = x.shape
    if T == 0:
        raise ValueError("x must contain at least one time step, got T=0")
    expect_shape("h0", h0, (None,), "(H,)")
    H = h0.shape[0]
    expect_shape("W_x", W_x, (H, D), "(H, D)")
    expect_shape("W_h", W_h, (H, H), "(H, H)")
    expect_shape("b", b, (H,), "(H,)")
    expect_same_device_and_dtype(x=x, h0=h0, W_x=W_x, W_h=W_h, b=b)
    h = h0
    states = []
    for t in range(1, T + 1):
        # h^(t) = tanh(W_h h^(t-1) + W_x x^(t) + b)
        h = torch.tanh(W_h @ h + W_x @ x[t - 1] + b)  # (H,)
        states.append(h)
    h_all = torch.stack(states)  # (T, H)
    return h_all, TanhRNNCache(x, h0, W_x, W_h, h_all)


@torch.no_grad()
def tanh_rnn_backward(dh: Tensor, cache: TanhRNNCache) -> TanhRNNGrads:
    r"""Backpropagate through the tanh RNN by the explicit recursion (no autograd).

    Args:
        dh: the partial derivatives :math:`\partial \mathcal{L}^{(t)} / \partial
            \mathbf{h}^{(t)}` that the loss terms hand over, row ``t - 1`` for step ``t``
            (zero rows for steps without a loss term).
        cache: from :func:`tanh_rnn_forward`.

    Returns:
        :class:`TanhRNNGrads`, the total derivatives with respect to ``x``, ``h0``,
        ``W_x``, ``W_h`` and ``b``.

    Shape:
        ``dh (T, H)`` → ``dx (T, D)``, ``dh0 (H,)``, ``dW_x (H, D)``, ``dW_h (H, H)``,
        ``db (H,)``.
    """
    x, h0, W_x, W_h, h = (c.detach() for c in cache)
    T, H = h.shape
    expect_tensor("dh", dh)
    expect_shape("dh", dh, (T, H), "(T, H)")
    expect_same_device_and_dtype(dh=dh, h=h)
    dx = torch.zeros_like(x)
    dW_x, dW_h, db = torch.zeros_like(W_x), torch.zeros_like(W_h), torch.zeros_like(h0)
    delta_next = torch.zeros_like(h0)  # δ^(T+1) = 0: nothing comes after the last step
    for t in range(T, 0, -1):
        h_t = h[t - 1]
        h_prev = h[t - 2] if t > 1 else h0
        # total derivative: h̄^(t) = ∂L^(t)/∂h^(t) + W_hᵀ δ^(t+1)
        h_bar = dh[t - 1] + W_h.T @ delta_next
        # through the tanh, whose slope is taken at the step's output: δ^(t) = (1 − h^(t)²) ⊙ h̄^(t)
        delta = (1 - h_t * h_t) * h_bar
        # every step adds its own term to the gradients of the shared parameters
        dW_h += torch.outer(delta, h_prev)  # δ^(t) h^(t-1)ᵀ
        dW_x += torch.outer(delta, x[t - 1])  # δ^(t) x^(t)ᵀ
        db += delta
        dx[t - 1] = W_x.T @ delta
        delta_next = delta
    dh0 = W_h.T @ delta_next  # dL/dh^(0) = W_hᵀ δ^(1)
    return TanhRNNGrads(dx, dh0, dW_x, dW_h, db)


# ---------------------------------------------------------------------------------------------
# Truncated BPTT
# ---------------------------------------------------------------------------------------------


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
    r"""The norm of :math:`d\mathcal{L}/d\mathbf{h}^{(t)}` at every step, graph cut every ``k``.

    The layer runs over the whole sequence with its state carried, but the state is
    detached after steps ``t = k, 2k, …``; the loss is :math:`\mathcal{L} = \langle
    \mathbf{u}, \mathbf{h}^{(T)} \rangle` for a fixed ``upstream`` :math:`\mathbf{u}`, as
    in :func:`rnn_course.gradient_flow.hidden_gradient_norms`. Steps up to the last cut get
    a gradient of exactly zero.

    Args:
        layer: an ``RNN``/``LSTM``/``GRU`` layer (rnn_course or torch.nn), unidirectional.
        x: inputs in the layer's layout.
        k: truncation length.
        hx: initial state as the layer takes it (default zeros).
        upstream: :math:`\mathbf{u} = d\mathcal{L}/d\mathbf{h}^{(T)}`; default
            ``ones / √(N·H)``.

    Returns:
        ``norms``, where ``norms[t - 1]`` is the Frobenius norm over the batch of
        :math:`d\mathcal{L}/d\mathbf{h}^{(t)}`.

    Shape:
        ``x (N, T, D)`` if ``layer.batch_first`` else ``(T, N, D)``; ``upstream (N, H)``;
        ``norms (T,)``.
    """
    expect_positive_int("k", k)
    return _stepwise_hidden_gradient_norms(layer, x, hx, upstream, cut_every=k)
