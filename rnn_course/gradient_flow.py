r"""Measuring how gradients flow back through time and through layers.

The notation is the book's (column vectors, steps :math:`t = 1, \dots, T`). For the
recurrence :math:`\mathbf{h}^{(t)} = \tanh(W_h \mathbf{h}^{(t-1)} + W_x \mathbf{x}^{(t)}
+ \mathbf{b})` and a loss term :math:`\mathcal{L}^{(i)}` on the state at step ``i``, the
chain rule gives, for ``j < i``,

.. math::

    \frac{d\mathcal{L}^{(i)}}{d\mathbf{h}^{(j)}}
    = \left(\frac{\partial \mathbf{h}^{(i)}}{\partial \mathbf{h}^{(i-1)}} \cdots
      \frac{\partial \mathbf{h}^{(j+1)}}{\partial \mathbf{h}^{(j)}}\right)^{\!\top}
      \frac{\partial \mathcal{L}^{(i)}}{\partial \mathbf{h}^{(i)}},

so the gradient's size over a distance ``i − j`` is governed by a product of Jacobians,
each a squashing derivative times the same recurrent matrix. The functions below measure
the gradient of a real layer (:func:`hidden_gradient_norms`), the Jacobian products
themselves (:func:`rnn_step_jacobians`, :func:`jacobian_product_norms`), the linearized
backward pass (:func:`linear_backward_norms`) and per-parameter gradient norms
(:func:`layer_gradient_norms`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from rnn_course.state import detach_state
from rnn_course.validation import (
    expect_floating,
    expect_positive_int,
    expect_same_device_and_dtype,
    expect_shape,
    expect_tensor,
)

# ---------------------------------------------------------------------------------------------
# Gradients of a layer's hidden states
# ---------------------------------------------------------------------------------------------


def _stepwise_hidden_gradient_norms(
    layer: nn.Module,
    x: Tensor,
    hx: Any,
    upstream: Tensor | None,
    cut_every: int | None = None,
) -> Tensor:
    """Step ``layer`` one time step at a time and return ``‖dL/dh^(t)‖`` for every t.

    The top layer's hidden state of every step is the very tensor that the next step reads,
    so the gradient with respect to it is the total derivative (for an LSTM through both
    the next hidden state and, via the cell, everything after). With ``cut_every = k`` the
    state is detached after every k-th step (truncated BPTT).
    """
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be an nn.Module (an RNN, LSTM or GRU), got {type(layer)}")
    if getattr(layer, "bidirectional", False):
        raise ValueError(
            "layer must be unidirectional: the backward direction's state at step t depends "
            "on inputs after t, so there is no single h^(t) to differentiate; got "
            "bidirectional=True"
        )
    expect_tensor("x", x)
    expect_floating("x", x)
    batch_first = bool(getattr(layer, "batch_first", False))
    layout = "(N, T, D)" if batch_first else "(T, N, D)"
    expect_shape("x", x, (None, None, None), layout)
    T = x.shape[1] if batch_first else x.shape[0]
    if T == 0:
        raise ValueError("x must contain at least one time step, got T=0")
    # the graph must exist even when every parameter is frozen
    x = x.detach().requires_grad_()
    with torch.enable_grad():
        state = hx
        tops: list[Tensor] = []
        for t in range(T):
            x_t = x[:, t : t + 1] if batch_first else x[t : t + 1]  # one step, layer layout
            _, state = layer(x_t, state)
            is_lstm = isinstance(state, tuple)
            h_n = state[0] if is_lstm else state  # (num_layers, N, H)
            rows = list(h_n.unbind(0))
            tops.append(rows[-1])  # the top layer's h^(t), (N, H)
            h_n = torch.stack(rows)  # the next step reads tops[-1] itself
            state = (h_n, state[1]) if is_lstm else h_n
            if cut_every is not None and (t + 1) % cut_every == 0 and t + 1 < T:
                state = detach_state(state)
        last = tops[-1]
        N, H = last.shape
        if upstream is None:
            # unit Frobenius norm: norms[T-1] = 1
            upstream = torch.full_like(last, 1.0 / math.sqrt(N * H))
        else:
            expect_tensor("upstream", upstream)
            expect_shape("upstream", upstream, (N, H), "(N, H)")
            upstream = upstream.to(dtype=last.dtype, device=last.device)
        # L = ⟨upstream, h^(T)⟩
        loss = (upstream * last).sum()
        grads = torch.autograd.grad(loss, tops, allow_unused=True)
    zero = torch.zeros((), dtype=last.dtype, device=last.device)
    return torch.stack([zero if g is None else torch.linalg.vector_norm(g) for g in grads])


def hidden_gradient_norms(
    layer: nn.Module, x: Tensor, hx: Any = None, *, upstream: Tensor | None = None
) -> Tensor:
    r"""The norm of the total derivative :math:`d\mathcal{L}/d\mathbf{h}^{(t)}` at every step.

    The loss is :math:`\mathcal{L} = \langle \mathbf{u}, \mathbf{h}^{(T)} \rangle` for a
    fixed vector :math:`\mathbf{u}` (``upstream``), a loss on the last state.
    :math:`\mathbf{h}^{(t)}` is the hidden state of the top layer at step t (for an LSTM the
    hidden state only; its gradient is the total derivative, through the next hidden state
    *and* the cell). Works for the RNN, LSTM and GRU layers of rnn_course and of torch.nn, any
    ``num_layers``, unidirectional only, in the layer's own layout (``batch_first``). The
    layer's mode is respected: call ``layer.eval()`` first if it has dropout.

    Args:
        layer: the recurrent layer.
        x: inputs ``(N, T, D)`` if ``layer.batch_first`` else ``(T, N, D)``.
        hx: initial state as the layer takes it (default zeros).
        upstream: :math:`\mathbf{u} = d\mathcal{L}/d\mathbf{h}^{(T)}`. Default
            ``ones / √(N·H)``, a unit vector, so ``norms[T - 1] = 1`` and ``norms[t - 1]`` is
            the gain over the distance ``T - t``.

    Returns:
        ``norms``, detached, on ``x``'s device: ``norms[t - 1]`` is the Frobenius norm over
        the batch of :math:`d\mathcal{L}/d\mathbf{h}^{(t)}`.

    Shape:
        ``x (N, T, D)`` if ``layer.batch_first`` else ``(T, N, D)``; ``upstream (N, H)``;
        ``norms (T,)``.
    """
    return _stepwise_hidden_gradient_norms(layer, x, hx, upstream)


# ---------------------------------------------------------------------------------------------
# Recurrent matrices and their spectral radius
# ---------------------------------------------------------------------------------------------


def _expect_square(name: str, W: Tensor) -> None:
    expect_tensor(name, W)
    expect_floating(name, W)
    if W.dim() != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"{name} must be a square matrix (H, H), got shape {tuple(W.shape)}")


def spectral_radius(W: Tensor) -> float:
    """The largest absolute eigenvalue of a square matrix ``W (H, H)``."""
    _expect_square("W", W)
    return torch.linalg.eigvals(W.detach()).abs().max().item()


def with_spectral_radius(W: Tensor, radius: float) -> Tensor:
    """A copy of ``W (H, H)`` rescaled so that its spectral radius equals ``radius``.

    Scaling a matrix scales all its eigenvalues, so the eigenvectors are unchanged.
    """
    _expect_square("W", W)
    if isinstance(radius, bool) or not isinstance(radius, int | float) or not radius >= 0:
        raise ValueError(f"radius must be a non-negative number, got {radius!r}")
    current = spectral_radius(W)
    if current == 0.0:
        raise ValueError("W has spectral radius 0 (it is nilpotent), so it cannot be rescaled")
    return W.detach() * (radius / current)


def random_recurrent_matrix(
    hidden_size: int,
    radius: float,
    *,
    seed: int,
    orthogonal: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """A random ``(H, H)`` matrix with spectral radius exactly ``radius``.

    Gaussian entries rescaled with :func:`with_spectral_radius`, or (``orthogonal=True``)
    ``radius`` times a random orthogonal matrix, whose eigenvalues all have modulus
    ``radius`` and whose singular values all equal it.
    """
    H = expect_positive_int("hidden_size", hidden_size)
    if isinstance(radius, bool) or not isinstance(radius, int | float) or not radius >= 0:
        raise ValueError(f"radius must be a non-negative number, got {radius!r}")
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(H, H, generator=gen, dtype=torch.float64)
    if orthogonal:
        Q, R = torch.linalg.qr(A)
        # fix the signs so that Q is Haar-distributed
        Q = Q * torch.sign(torch.diagonal(R))
        W = float(radius) * Q
    else:
        W = with_spectral_radius(A / math.sqrt(H), radius)
    return W.to(device=device or "cpu", dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Jacobians of the tanh recurrence
# ---------------------------------------------------------------------------------------------


def rnn_step_jacobians(h: Tensor, W_h: Tensor) -> Tensor:
    r"""The step Jacobians of the tanh RNN, in the book's column-vector notation.

    For :math:`\mathbf{h}^{(t)} = \tanh(W_h \mathbf{h}^{(t-1)} + W_x \mathbf{x}^{(t)} +
    \mathbf{b})`, entry ``[i, j]`` of the Jacobian is
    :math:`\partial h^{(t)}_i / \partial h^{(t-1)}_j = (1 - (h^{(t)}_i)^2)\,(W_h)_{ij}`:

    .. math::

        \frac{\partial \mathbf{h}^{(t)}}{\partial \mathbf{h}^{(t-1)}}
        = \operatorname{diag}\big(1 - (\mathbf{h}^{(t)})^2\big)\, W_h .

    ``W_h`` is ``torch.nn.RNN``'s ``weight_hh_l0`` as it is (the assignments' right-multiplied
    ``Wh`` is its transpose).

    Args:
        h: the states of one sequence, row ``t - 1`` is :math:`\mathbf{h}^{(t)}`.
        W_h: recurrent weights.

    Returns:
        The Jacobians; entry ``t - 1`` is
        :math:`\partial \mathbf{h}^{(t)} / \partial \mathbf{h}^{(t-1)}` (for ``t = 1`` with
        respect to the initial state).

    Shape:
        ``h (T, H)``, ``W_h (H, H)`` → ``(T, H, H)``.
    """
    expect_tensor("h", h)
    expect_floating("h", h)
    _expect_square("W_h", W_h)
    H = W_h.shape[0]
    expect_shape("h", h, (None, H), "(T, H)")
    expect_same_device_and_dtype(h=h, W_h=W_h)
    # diag(1 − h^(t)²) W_h: scale row i of W_h by 1 − h^(t)_i²
    return (1 - h * h)[:, :, None] * W_h[None]  # (T, H, H)


def jacobian_product_norms(jacobians: Tensor) -> Tensor:
    r"""Spectral norms of the products of the last ``d`` Jacobians, ``d = 0, …, T - 1``.

    With :math:`J^{(t)}` = ``jacobians[t - 1]`` :math:`= \partial \mathbf{h}^{(t)} /
    \partial \mathbf{h}^{(t-1)}`,

    .. math::

        \mathrm{norms}[d] = \big\lVert J^{(T)} J^{(T-1)} \cdots J^{(T-d+1)} \big\rVert_2
        = \left\lVert \frac{d\mathbf{h}^{(T)}}{d\mathbf{h}^{(T-d)}} \right\rVert_2 ,

    with ``norms[0] = 1`` for the empty product: the worst-case gain of a gradient
    travelling back ``d`` steps.

    Args:
        jacobians: from :func:`rnn_step_jacobians`.

    Returns:
        ``norms``.

    Shape:
        ``jacobians (T, H, H)`` → ``norms (T,)``.
    """
    expect_tensor("jacobians", jacobians)
    expect_floating("jacobians", jacobians)
    if jacobians.dim() != 3 or jacobians.shape[1] != jacobians.shape[2]:
        raise ValueError(f"jacobians must have shape (T, H, H), got {tuple(jacobians.shape)}")
    T, H, _ = jacobians.shape
    P = torch.eye(H, dtype=jacobians.dtype, device=jacobians.device)
    norms = [torch.linalg.matrix_norm(P, ord=2)]
    for d in range(1, T):
        # dh^(T)/dh^(T-d) = (dh^(T)/dh^(T-d+1)) · ∂h^(T-d+1)/∂h^(T-d)
        P = P @ jacobians[T - d]
        norms.append(torch.linalg.matrix_norm(P, ord=2))
    return torch.stack(norms)


def linear_backward_norms(W: Tensor, v: Tensor, steps: int) -> Tensor:
    r"""``‖(Wᵀ)^k v‖`` for ``k = 0, …, steps``: the backward pass without the squashing.

    For the linear recurrence :math:`\mathbf{h}^{(t)} = W \mathbf{h}^{(t-1)}` each step
    back multiplies the (column) gradient by :math:`W^\top`:
    :math:`d\mathcal{L}/d\mathbf{h}^{(t-1)} = W^\top\, d\mathcal{L}/d\mathbf{h}^{(t)}`. With
    :math:`W^\top = V \Lambda V^{-1}` the component along an eigenvector grows like
    :math:`|\lambda|^k`: above 1 it explodes, below 1 it vanishes.

    Args:
        W: the recurrent matrix (of the column-vector recurrence).
        v: the starting gradient.
        steps: how many steps back.

    Returns:
        ``norms``, with ``norms[0] = ‖v‖``.

    Shape:
        ``W (H, H)``, ``v (H,)`` → ``norms (steps + 1,)``.
    """
    _expect_square("W", W)
    expect_tensor("v", v)
    expect_shape("v", v, (W.shape[0],), "(H,)")
    expect_same_device_and_dtype(W=W, v=v)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    W_T = W.detach().T
    g = v.detach()
    norms = [torch.linalg.vector_norm(g)]
    for _ in range(steps):
        g = W_T @ g  # (H,)
        norms.append(torch.linalg.vector_norm(g))
    return torch.stack(norms)


# ---------------------------------------------------------------------------------------------
# Per-parameter gradient norms
# ---------------------------------------------------------------------------------------------


def layer_gradient_norms(
    model: nn.Module, loss: Tensor, *, retain_graph: bool = False
) -> dict[str, float]:
    """Backpropagate ``loss`` and return the gradient norm of every named parameter.

    The model's gradients are reset first (``zero_grad(set_to_none=True)``), so the result
    belongs to this loss alone; parameters that ``loss`` does not depend on report 0.0.

    Args:
        model: any module.
        loss: a scalar computed from ``model``.
        retain_graph: keep the graph for another backward pass.

    Returns:
        ``{name: ‖∂loss/∂param‖₂}`` in ``model.named_parameters()`` order.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    expect_tensor("loss", loss)
    if loss.numel() != 1:
        raise ValueError(f"loss must be a scalar, got shape {tuple(loss.shape)}")
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=retain_graph)
    return {
        name: 0.0 if p.grad is None else torch.linalg.vector_norm(p.grad).item()
        for name, p in model.named_parameters()
    }
