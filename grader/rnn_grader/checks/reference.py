"""The grading reference: the companion package's own cells and layers, in the contract's layout.

Every graded function is computed by an :mod:`rnn_course` module in :mod:`torch.nn`'s layout
(``RNNCell``, ``RNN``, ``LSTMCell``, ``LSTM``), or by :class:`torch.nn.GRUCell` itself, with
the contract's arrays mapped onto its parameters by :func:`torch.func.functional_call`:

* weights multiply from the right in the contract, so ``weight_ih = Wx.T`` and
  ``weight_hh = Wh.T``; the contract's single bias goes to ``bias_ih`` (``bias_hh = 0``);
* the lecture GRU's blocks are ``u, r, c``; ``torch.nn``'s are ``r, z, n`` with
  ``z = 1 - u``, so the reference reorders the blocks and negates the update block.

The GRU that assignment 2 grades is :class:`torch.nn.GRUCell` itself (reset gate after the
recurrent product, two biases): :func:`torch_gru_step_forward` maps ``Wx, Wh, bx, bh`` onto
its four parameters unchanged but for the transposes.

Every gradient comes from ``torch.autograd`` on these forwards, never from a hand-written
backward in the contract's layout. Shapes: N batch, T steps, D inputs, H hidden units.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from rnn_course import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from rnn_course.clip import grad_norm

Params = tuple[Tensor, Tensor, Tensor]  # (Wx, Wh, b)
F64 = torch.float64


@functools.cache
def _module(kind: str, D: int, H: int) -> nn.Module:
    """An ``rnn_course`` module of ``kind`` for sizes ``D, H`` in float64 (its values unused)."""
    make: dict[str, Callable[[], nn.Module]] = {
        "rnn_cell": lambda: RNNCell(D, H, dtype=F64),
        "rnn": lambda: RNN(D, H, batch_first=True, dtype=F64),
        "lstm_cell": lambda: LSTMCell(D, H, dtype=F64),
        "lstm": lambda: LSTM(D, H, batch_first=True, dtype=F64),
        "gru_cell": lambda: GRUCell(D, H, reset_after=False, dtype=F64),
        "gru_cell_after": lambda: GRUCell(D, H, reset_after=True, dtype=F64),
        "gru": lambda: GRU(D, H, batch_first=True, dtype=F64),
        "torch_gru_cell": lambda: nn.GRUCell(D, H, dtype=F64),
    }
    return make[kind]()


def torch_layout(Wx: Tensor, Wh: Tensor, b: Tensor, suffix: str = "") -> dict[str, Tensor]:
    """The contract's ``Wx (D, G·H), Wh (H, G·H), b (G·H,)`` as ``torch.nn`` parameters."""
    return {
        f"weight_ih{suffix}": Wx.t(),
        f"weight_hh{suffix}": Wh.t(),
        f"bias_ih{suffix}": b,
        f"bias_hh{suffix}": torch.zeros_like(b),
    }


def lecture_gru_to_torch(Wx: Tensor, Wh: Tensor, b: Tensor) -> Params:
    """Reorder the lecture GRU's blocks ``u, r, c`` into ``torch.nn``'s ``r, z, n``, ``z = 1 - u``.

    ``σ(-a) = 1 - σ(a)``, so negating the update block's weights and bias turns ``u`` into
    ``z``; the candidate block is ``torch.nn``'s ``n``.
    """

    def reorder(w: Tensor) -> Tensor:
        u, r, c = w.chunk(3, dim=-1)
        return torch.cat([r, -u, c], dim=-1)

    return reorder(Wx), reorder(Wh), reorder(b)


# --------------------------------------------------------------------------- forward functions


def rnn_step_forward(x: Tensor, h_prev: Tensor, Wx: Tensor, Wh: Tensor, b: Tensor) -> Tensor:
    """``h_next (N, H)`` of one tanh-RNN step, by :class:`rnn_course.RNNCell`."""
    cell = _module("rnn_cell", x.shape[-1], h_prev.shape[-1])
    return functional_call(cell, torch_layout(Wx, Wh, b), (x, h_prev))


def rnn_forward(x: Tensor, h0: Tensor, Wx: Tensor, Wh: Tensor, b: Tensor) -> Tensor:
    """``h (N, T, H)`` of the tanh RNN over ``x (N, T, D)``, by :class:`rnn_course.RNN`."""
    layer = _module("rnn", x.shape[-1], h0.shape[-1])
    out, _ = functional_call(layer, torch_layout(Wx, Wh, b, "_l0"), (x, h0[None]))
    return out


def sigmoid(x: Tensor) -> Tensor:
    """The logistic function."""
    return torch.sigmoid(x)


def lstm_step_forward(
    x: Tensor, h_prev: Tensor, c_prev: Tensor, Wx: Tensor, Wh: Tensor, b: Tensor
) -> tuple[Tensor, Tensor]:
    """``h_next, c_next`` of one LSTM step (blocks i, f, g, o), by :class:`rnn_course.LSTMCell`."""
    cell = _module("lstm_cell", x.shape[-1], h_prev.shape[-1])
    return functional_call(cell, torch_layout(Wx, Wh, b), (x, (h_prev, c_prev)))


def lstm_forward(x: Tensor, h0: Tensor, Wx: Tensor, Wh: Tensor, b: Tensor) -> Tensor:
    """``h (N, T, H)`` of the LSTM from ``h0`` and a zero cell, by :class:`rnn_course.LSTM`."""
    layer = _module("lstm", x.shape[-1], h0.shape[-1])
    state = (h0[None], torch.zeros_like(h0)[None])
    out, _ = functional_call(layer, torch_layout(Wx, Wh, b, "_l0"), (x, state))
    return out


def gru_step_forward(
    x: Tensor, h_prev: Tensor, Wx: Tensor, Wh: Tensor, b: Tensor, *, reset_after: bool = False
) -> Tensor:
    """``h_next`` of one lecture-GRU step, by ``rnn_course.GRUCell(reset_after=False)``."""
    kind = "gru_cell_after" if reset_after else "gru_cell"
    cell = _module(kind, x.shape[-1], h_prev.shape[-1])
    return functional_call(cell, torch_layout(*lecture_gru_to_torch(Wx, Wh, b)), (x, h_prev))


def torch_gru_step_forward(
    x: Tensor, h_prev: Tensor, Wx: Tensor, Wh: Tensor, bx: Tensor, bh: Tensor
) -> Tensor:
    r"""``h_next (N, H)`` of one step of :class:`torch.nn.GRUCell` itself.

    Args:
        x: ``(N, D)``; h_prev: ``(N, H)``.
        Wx: ``(D, 3H)``, Wh: ``(H, 3H)``: blocks ``r, z, n`` of ``H`` columns each, so that
            ``weight_ih = Wx.T`` and ``weight_hh = Wh.T``.
        bx, bh: ``(3H,)``, ``bias_ih`` and ``bias_hh``.

    .. math::
        r = \sigma(x W_{x,r} + b_{x,r} + h W_{h,r} + b_{h,r}), \quad
        z = \sigma(x W_{x,z} + b_{x,z} + h W_{h,z} + b_{h,z}), \\
        n = \tanh(x W_{x,n} + b_{x,n} + r \odot (h W_{h,n} + b_{h,n})), \quad
        h' = (1 - z) \odot n + z \odot h
    """
    cell = _module("torch_gru_cell", x.shape[-1], h_prev.shape[-1])
    params = {"weight_ih": Wx.t(), "weight_hh": Wh.t(), "bias_ih": bx, "bias_hh": bh}
    return functional_call(cell, params, (x, h_prev))


def clip_grad_norm(grads: dict[str, Tensor], max_norm: float) -> tuple[dict[str, Tensor], float]:
    """The contract's rule: one global norm; scale by ``max_norm / norm`` if ``norm > max_norm``.

    The norm is :func:`rnn_course.clip.grad_norm`; unlike ``clip_grad_norm_`` the contract
    has no ``1e-6`` in the denominator and leaves gradients untouched at or below the
    threshold.
    """
    holders = []
    for g in grads.values():
        p = torch.zeros_like(g, requires_grad=True)
        p.grad = g.clone()
        holders.append(p)
    total = float(grad_norm(holders)) if holders else 0.0
    scale = max_norm / total if total > max_norm else 1.0
    return {k: g * scale for k, g in grads.items()}, total


# --------------------------------------------------------------------------- gradients by autograd


def vjp(
    forward: Callable[..., Tensor | tuple[Tensor, ...]],
    inputs: dict[str, Tensor],
    upstream: Sequence[Tensor],
) -> dict[str, Tensor]:
    """Gradients of ``Σ_k ⟨upstream_k, output_k⟩`` w.r.t. every input, named ``d<input>``."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
    with torch.enable_grad():
        out = forward(*leaves.values())
        outs = out if isinstance(out, tuple) else (out,)
        grads = torch.autograd.grad(
            outs, list(leaves.values()), grad_outputs=list(upstream), allow_unused=True
        )
    return {
        "d" + k: (torch.zeros_like(v) if g is None else g)
        for (k, v), g in zip(leaves.items(), grads, strict=True)
    }


def grad_norms_through_time(
    dh_last: Tensor, x: Tensor, h0: Tensor, Wx: Tensor, Wh: Tensor, b: Tensor
) -> Tensor:
    """``norms (T,)``: Frobenius norms of the total derivatives ``dJ/dh[:, t]``.

    ``J = ⟨dh_last, h[:, T-1]⟩``.

    Steps the package's :class:`rnn_course.RNNCell` so that every state is a node of the
    graph, then asks autograd for ``dJ/dh_t`` of all of them at once.
    """
    params = torch_layout(Wx.detach(), Wh.detach(), b.detach())
    cell = _module("rnn_cell", x.shape[-1], h0.shape[-1])
    with torch.enable_grad():
        h = h0.detach().clone().requires_grad_(True)
        states = []
        for x_t in x.detach().unbind(1):
            h = functional_call(cell, params, (x_t, h))  # (N, H)
            states.append(h)
        grads = torch.autograd.grad(states[-1], states, grad_outputs=dh_last)
    return torch.stack([torch.linalg.vector_norm(g) for g in grads])
