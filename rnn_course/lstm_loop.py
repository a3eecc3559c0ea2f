r"""The LSTM time loop as one autograd function with a hand-written backward pass.

Autograd records about ten nodes per time step of an LSTM; at small sizes their
bookkeeping, not the arithmetic, dominates the time. :class:`LSTMLoop` runs the loop
without recording, keeps the gate activations, and backpropagates through time with the
explicit recursion below, three tensor operations per step. Everything that does not depend
on the recursion is computed for all steps at once: the local derivatives of the gates
before the loop, ``dW_hh`` as one matrix product after it; ``dW_ih``, the biases and the
input's gradient flow through the projection ``xw`` that the caller computed outside the
loop (autograd handles that single ``addmm``).

The gate blocks are in the order **o, i, f, g** (not :mod:`torch.nn`'s i, f, g, o), and
the g block of the weights and biases is **doubled**, so that the loop's pre-activation of
that block is ``a'_g = 2 a_g``. Then one ``sigmoid_`` activates the whole row of four
blocks, and ``g = tanh(a_g) = 2 σ(a'_g) − 1`` costs one cheap operation: on the CPU,
``torch.tanh`` takes about three times as long per element as ``torch.sigmoid``, and one call
on a contiguous row beats two calls on strided blocks. In the backward pass the three gates
whose gradient scales with ``dc`` are contiguous. :func:`to_oifg` makes the layout from a
weight or bias; autograd carries the reordering and the factor 2 back to the parameters.

All buffers are in time order; the backward direction (``reverse=True``) only visits the
steps from last to first, so that nothing is flipped.

Forward, per step (``s`` is the processing order):

.. math::
    \begin{aligned}
    (o, i, f, \tilde g) &= \sigma(xw_s + W_{hh} h_{s-1}), \qquad g = 2 \tilde g - 1 \\
    c_s &= f \odot c_{s-1} + i \odot g, \qquad h_s = o \odot \tanh(c_s)
    \end{aligned}

Backward, with ``dh_s = dout_s + W_{hh}^T da_{s+1}`` (``da`` the pre-activation gradient):

.. math::
    \begin{aligned}
    dc &\mathrel{+}= dh_s \odot o \odot (1 - \tanh^2 c_s) \\
    (da_o, da_i, da_f, da'_g) &= (dh_s, dc, dc, dc) \odot
        (h_s (1-o),\; g\, i(1-i),\; c_{s-1} f(1-f),\; i (1-g^2) / 2) \\
    dc_{s-1} &= dc \odot f
    \end{aligned}

(``h_s (1 − o) = tanh(c_s) σ'(o)`` because ``h_s = o tanh(c_s)``; the ``/ 2`` is
``∂g/∂a'_g``.)

Python's cyclic garbage collector is paused while the loops run
(:mod:`rnn_course.loop_context`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnn_course.loop_context import loop_context


def to_oifg(w: Tensor) -> Tensor:
    """The loop's layout of a weight ``(4H, ·)`` or bias ``(4H,)`` given in i, f, g, o order.

    The blocks are reordered to o, i, f, g and the g block is doubled (see the module).
    """
    i, f, g, o = w.chunk(4, dim=0)
    return torch.cat([o, i, f, 2 * g])


def _order(steps: tuple[Tensor, ...], reverse: bool) -> tuple[Tensor, ...]:
    """Per-step views in processing order."""
    return steps[::-1] if reverse else steps


def _forward_steps(
    gates: Tensor, cs: Tensor, tcs: Tensor, hs: Tensor, h0: Tensor, w_hh: Tensor, reverse: bool
) -> None:
    """The forward recursion, in place: ``gates`` holds ``xw`` on entry, activations on exit.

    ``cs[0]`` (``cs[T]`` for ``reverse``) holds ``c0`` on entry. Every per-step view is local
    to this function, so all of them are freed when it returns (see
    :mod:`rnn_course.loop_context`).
    """
    T, H = gates.shape[0], gates.shape[2] // 4
    minus_one = gates.new_full((), -1.0)
    w_hh_t = w_hh.t()
    # per-step views in processing order, made once (unbind is one call for T steps);
    # C[s] is the cell before step s and C[s + 1] the cell after it
    A = _order(gates.unbind(0), reverse)
    O, I, F, G_ = (_order(v.unbind(0), reverse) for v in gates.split(H, dim=2))
    C = _order(cs.unbind(0), reverse)
    TC, HS = _order(tcs.unbind(0), reverse), _order(hs.unbind(0), reverse)
    h = h0
    for s in range(T):
        # a = xw_s + W_hh h_{s-1}, then σ of all four blocks: (o, i, f, σ(2 a_g))
        A[s].addmm_(h, w_hh_t).sigmoid_()
        # g = 2 σ(2 a_g) − 1 = tanh(a_g)
        g = torch.add(minus_one, G_[s], alpha=2, out=G_[s])
        # c_s = f ⊙ c_{s-1} + i ⊙ g
        c = torch.mul(F[s], C[s], out=C[s + 1]).addcmul_(I[s], g)
        # h_s = o ⊙ tanh(c_s)
        h = torch.mul(O[s], torch.tanh(c, out=TC[s]), out=HS[s])


def _backward_steps(
    da: Tensor, coef: Tensor, o_dtanh: Tensor, w_hh: Tensor, d_cT: Tensor, reverse: bool
) -> None:
    """The backward recursion, in place on ``da (T, N, 5H)``; per-step views stay local.

    On entry ``da``'s first block holds ``dout`` (plus ``d_hT`` at the last processed step);
    on exit its blocks hold ``(da_o, da_i, da_f, da_g, dc_{s-1})`` of every step.
    """
    T, H = da.shape[0], da.shape[2] // 5
    back = not reverse  # the backward pass visits the steps in the opposite order

    def steps(v: Tensor) -> tuple[Tensor, ...]:
        return _order(v.unbind(0), back)

    DA, DA4 = steps(da), steps(da[..., : 4 * H])
    DH, DH1 = steps(da[..., :H]), steps(da[..., :H].unsqueeze(2))
    DC, DC4 = steps(da[..., 4 * H :].unsqueeze(2)), steps(da[..., H:].unflatten(-1, (4, H)))
    COEF, ODT = steps(coef), steps(o_dtanh)
    dc = d_cT.unsqueeze(1)  # (N, 1, H)
    for k in range(T):  # k counts back from the last processed step
        if k > 0:
            # dh_s = dout_s + W_hhᵀ da_{s+1}, accumulated into the first block
            DH[k].addmm_(DA4[k - 1], w_hh)
            dc = DC[k - 1]
        # dc += dh ⊙ o ⊙ (1 − tanh² c_s), written into the other four blocks
        torch.addcmul(dc, DH1[k], ODT[k], out=DC4[k])
        # (da_o, da_i, da_f, da_g, dc_{s-1}) = (dh, dc, dc, dc, dc) ⊙ coef
        DA[k].mul_(COEF[k])


class LSTMLoop(torch.autograd.Function):
    """``(xw, h0, c0, w_hh, reverse)`` → ``(out, h_T, c_T)`` in the loop's layout.

    Shapes: ``xw (T, N, 4H)`` the input projections with both biases folded in, in time
    order; ``h0, c0 (N, H)``; ``w_hh (4H, H)``; ``out (T, N, H)`` in time order. The gate
    blocks of ``xw`` and ``w_hh`` are in the order o, i, f, g with the g block doubled, as
    :func:`to_oifg` makes them.
    """

    @staticmethod
    def forward(
        ctx: Any, xw: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, reverse: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        T, N, G = xw.shape
        H = G // 4
        gates = xw.clone()  # each step adds W_hh h_{s-1}, then activates in place
        cs = xw.new_empty(T + 1, N, H)  # the cell before and after every step, time order
        tcs = xw.new_empty(T, N, H)  # tanh(c_s)
        hs = xw.new_empty(T, N, H)  # h_s, the output
        first_c, last_c = (T, 0) if reverse else (0, T)
        # the loop reads and writes these buffers only: no autograd bookkeeping at all
        with loop_context():
            cs[first_c].copy_(c0)
            _forward_steps(gates, cs, tcs, hs, h0, w_hh, reverse)
        ctx.reverse = reverse
        ctx.save_for_backward(gates, cs, tcs, hs, h0, w_hh)
        last = 0 if reverse else T - 1
        return hs, hs[last].clone(), cs[last_c].clone()

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, d_out: Tensor, d_hT: Tensor, d_cT: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, None]:
        gates, cs, tcs, hs, h0, w_hh = ctx.saved_tensors
        reverse = ctx.reverse
        T, N, G = gates.shape
        H = G // 4
        # one allocation for both (T, N, 5H) buffers: freed and made again on every call,
        # two large blocks made the C library return and re-fault their pages more often
        coef, da = gates.new_empty(2, T, N, 5 * H).unbind(0)
        first, last = (T - 1, 0) if reverse else (0, T - 1)  # in processing order
        with loop_context():
            o, i, f, g = gates.split(H, dim=2)  # each (T, N, H), time order
            c_prev = cs[1:] if reverse else cs[:-1]  # c_{s-1} of every step, time order
            # local factors of every step at once, in one buffer of five blocks:
            # (h (1 − o), g σ'(i), c_{s-1} σ'(f), i (1 − g²) / 2, f)
            coef_o, coef_i, coef_f, coef_g, coef_c = coef.split(H, dim=2)
            torch.addcmul(hs, hs, o, value=-1, out=coef_o)  # h (1 − o) = tanh(c) σ'(o)
            if_ = gates[..., H : 3 * H]
            torch.addcmul(if_, if_, if_, value=-1, out=coef[..., H : 3 * H])  # σ'(i), σ'(f)
            coef_i.mul_(g)
            coef_f.mul_(c_prev)
            # the loop's g block is a'_g = 2 a_g, and ∂g/∂a'_g = (1 − g²) / 2
            torch.addcmul(i, i * g, g, value=-1, out=coef_g).mul_(0.5)
            coef_c.copy_(f)  # dc_{s-1} = dc ⊙ f
            # ∂h/∂c = o (1 − tanh² c) = o − h tanh(c), seen four times: for i, f, g and dc_{s-1}
            o_dtanh = torch.addcmul(o, hs, tcs, value=-1).unsqueeze(2).expand(T, N, 4, H)
            # da holds (dh, dc, dc, dc, dc) until multiplied by coef, which leaves
            # (da_o, da_i, da_f, da_g) and dc_{s-1} in place; dh starts as dout
            da[..., :H].copy_(d_out)
            da[last, :, :H].add_(d_hT)
            _backward_steps(da, coef, o_dtanh, w_hh, d_cT, reverse)
        d_xw = da[..., : 4 * H]
        # dW_hh = Σ_s da_s h_{s-1}ᵀ: h_{s-1} is h0 for the first processed step and the
        # neighbouring output otherwise, so two products cover all steps without a copy
        # (the rows of da are evenly spaced, so its first four blocks are a matrix view)
        rest = slice(0, (T - 1) * N) if reverse else slice(N, T * N)
        dh0 = d_xw[first] @ w_hh
        h_prev_rest = hs[1:] if reverse else hs[:-1]
        dw_hh = d_xw[first].t() @ h0
        if T > 1:
            da_rest = da.view(T * N, 5 * H)[rest, : 4 * H]  # ((T − 1) N, 4H)
            dw_hh.addmm_(da_rest.t(), h_prev_rest.reshape(-1, H))
        return d_xw, dh0, da[first, :, 4 * H :].clone(), dw_hh, None


def lstm_loop(
    xw: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, reverse: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Run :class:`LSTMLoop`; all tensors with gates in o, i, f, g order (see the module)."""
    return LSTMLoop.apply(xw, h0, c0, w_hh, reverse)
