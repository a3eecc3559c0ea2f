r"""The GRU time loop as one autograd function with a hand-written backward pass.

As for the LSTM (:mod:`rnn_course.lstm_loop`), autograd would record about eight nodes per
step of a GRU, and at small sizes their bookkeeping dominates the time. :class:`GRULoop`
runs the loop of :class:`torch.nn.GRU`'s cell (the reset gate applied after the recurrent
product) without recording, keeps the activations, and backpropagates through time by
hand: six tensor operations per step forward, three backward. Every pre-activation
gradient of a step is the state's gradient times a factor that the forward pass already
determined, so those factors are computed for all steps at once before the loop.
``dW_hh`` and ``db_hh`` are one matrix product and one sum after the loop; ``dW_ih``,
``db_ih`` and the input's gradient flow through the projection ``xw`` computed outside the
loop. All buffers are in time order; the backward direction only visits the steps from
last to first.

Forward, per step (``s`` is the processing order, reversed for the backward direction),
with ``xw_s = W_ih x_s + b_ih`` and ``hw_s = W_hh h_{s-1} + b_hh`` split into r, z, n:

.. math::
    \begin{aligned}
    (r, z) &= \sigma(xw_{rz} + hw_{rz}), \qquad n = \tanh(xw_n + r \odot hw_n) \\
    h_s &= (1 - z) \odot n + z \odot h_{s-1}
    \end{aligned}

Backward, with ``dh_s`` the gradient of the loss with respect to ``h_s``:

.. math::
    \begin{aligned}
    dh_s &= dout_s + z_{s+1} \odot dh_{s+1} + W_{hh}^T dg_{s+1} \\
    dg_s &= (da_r, da_z, d hw_n) = dh_s \odot (c_r, c_z, c_{hn}), \qquad
    da_n = dh_s \odot c_n
    \end{aligned}

where ``dg`` is the gradient of ``hw`` and the factors are
``c_n = (1 − z)(1 − n²)``, ``c_z = (h_{s-1} − n) z (1 − z)``,
``c_r = c_n ⊙ hw_n ⊙ r (1 − r)`` and ``c_hn = c_n ⊙ r``. The gradient of ``xw`` is
``(da_r, da_z, da_n)``.

The loop's n block is doubled: :func:`double_n` doubles the n rows of ``W_ih``, ``b_ih``,
``W_hh`` and ``b_hh``, so that the loop's pre-activation is ``a'_n = 2 a_n`` and
``n = tanh(a_n) = 2 σ(a'_n) − 1``: on the CPU ``torch.tanh`` takes about three times as
long per element as ``torch.sigmoid``. The factors above then carry ``c_n / 2`` for
``c_n``, and autograd carries the factor 2 back to the parameters. Python's cyclic garbage
collector is paused while the loops run (:mod:`rnn_course.loop_context`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnn_course.loop_context import loop_context, step_views


def double_n(w: Tensor) -> Tensor:
    """The loop's layout of a weight ``(3H, ·)`` or bias ``(3H,)``: the n block doubled."""
    r, z, n = w.chunk(3, dim=0)
    return torch.cat([r, z, 2 * n])


def _forward_steps(
    xw: Tensor, hw: Tensor, ns: Tensor, hs: Tensor, h0: Tensor, w_hh: Tensor, reverse: bool
) -> None:
    """The forward recursion, in place on ``hw``, ``ns`` and ``hs``; views stay local.

    ``hw`` holds ``(xw_r + b_hr, xw_z + b_hz, b_hn)`` on entry and ``(r, z, hw_n)`` on exit.
    Every per-step view is local to this function, so all are freed when it returns (see
    :mod:`rnn_course.loop_context`).
    """
    T, H = xw.shape[0], xw.shape[2] // 3
    minus_one = xw.new_full((), -1.0)
    w_hh_t = w_hh.t()

    # per-step views in processing order, made once (unbind is one call for T steps)
    steps = partial(step_views, reverse=reverse)

    HW, RZ, XN = steps(hw), steps(hw[..., : 2 * H]), steps(xw[..., 2 * H :])
    R, Z, HN = (steps(v) for v in hw.split(H, dim=2))
    NS, HS = steps(ns), steps(hs)
    h = h0
    for s in range(T):
        # (a_r, a_z, hw_n) += W_hh h_{s-1}
        HW[s].addmm_(h, w_hh_t)
        # r, z = σ(a_r, a_z)
        RZ[s].sigmoid_()
        # n = tanh(a_n) = 2 σ(a'_n) − 1, with a'_n = 2 a_n = xw_n + r ⊙ hw_n (both doubled)
        n = torch.addcmul(XN[s], R[s], HN[s], out=NS[s]).sigmoid_()
        torch.add(minus_one, n, alpha=2, out=n)
        # h_s = (1 − z) ⊙ n + z ⊙ h_{s-1}
        h = torch.lerp(n, h, Z[s], out=HS[s])


def _backward_steps(
    dh: Tensor, dg: Tensor, coef: Tensor, z: Tensor, w_hh: Tensor, reverse: bool
) -> None:
    """The backward recursion, in place on ``dh (T, N, H)`` and ``dg (T, N, 3H)``.

    On entry ``dh`` holds ``dout`` (plus ``d_hT`` at the last processed step); on exit it
    holds every ``dh_s``, and ``dg`` every ``(da_r, da_z, dhw_n)``. Views stay local.
    """
    T, N, H = dh.shape
    back = not reverse  # the backward pass visits the steps in the opposite order

    steps = partial(step_views, reverse=back)

    DH, DH1, Z = steps(dh), steps(dh.unsqueeze(2)), steps(z)
    DG, DG3, COEF = steps(dg), steps(dg.view(T, N, 3, H)), steps(coef)
    torch.mul(DH1[0], COEF[0], out=DG3[0])
    for k in range(1, T):  # k counts back from the last processed step
        # dh_s = dout_s + z_{s+1} ⊙ dh_{s+1} + W_hhᵀ dg_{s+1}
        DH[k].addcmul_(Z[k - 1], DH[k - 1]).addmm_(DG[k - 1], w_hh)
        # (da_r, da_z, dhw_n) = dh_s ⊙ (c_r, c_z, c_hn)
        torch.mul(DH1[k], COEF[k], out=DG3[k])


class GRULoop(torch.autograd.Function):
    """``(xw, h0, w_hh, b_hh, reverse)`` → ``(out, h_T)``, gates in :mod:`torch.nn`'s r, z, n.

    Shapes: ``xw (T, N, 3H)`` the input projections ``W_ih x_t + b_ih`` in time order;
    ``h0 (N, H)``; ``w_hh (3H, H)``; ``b_hh (3H,)`` or ``None``; ``out (T, N, H)`` in time
    order.
    """

    @staticmethod
    def forward(
        ctx: Any, xw: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, reverse: bool
    ) -> tuple[Tensor, Tensor]:
        T, N, G = xw.shape
        H = G // 3
        # hw starts as (xw_r + b_hr, xw_z + b_hz, b_hn); each step adds W_hh h_{s-1} in place,
        # which leaves the pre-activations of r and z and hw_n; σ(·) then replaces r and z
        hw = torch.empty_like(xw)
        if b_hh is None:
            hw[..., : 2 * H].copy_(xw[..., : 2 * H])
            hw[..., 2 * H :].zero_()
        else:
            torch.add(xw[..., : 2 * H], b_hh[: 2 * H], out=hw[..., : 2 * H])
            hw[..., 2 * H :].copy_(b_hh[2 * H :])
        ns = xw.new_empty(T, N, H)  # n_s
        hs = xw.new_empty(T, N, H)  # h_s, the output
        # the loop reads and writes these buffers only: no autograd bookkeeping at all
        with loop_context():
            _forward_steps(xw, hw, ns, hs, h0, w_hh, reverse)
        ctx.reverse = reverse
        ctx.has_bias = b_hh is not None
        ctx.save_for_backward(hw, ns, hs, h0, w_hh)
        return hs, hs[0 if reverse else T - 1].clone()

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, d_out: Tensor, d_hT: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None, None]:
        hw, n, hs, h0, w_hh = ctx.saved_tensors
        reverse = ctx.reverse
        T, N, G = hw.shape
        H = G // 3
        dh = torch.empty_like(hs)
        dg = torch.empty_like(hw)
        d_xw = torch.empty_like(hw)
        last = 0 if reverse else T - 1  # the last processed step
        with loop_context():
            r, z, hn = hw.split(H, dim=2)  # each (T, N, H), time order
            # the factors of every step at once (see the module)
            one_minus_z = torch.rsub(z, 1)
            # (1 − z)(1 − n²) / 2: ∂n/∂a'_n = (1 − n²) / 2 for the doubled a'_n (see the module)
            c_n = torch.addcmul(one_minus_z, one_minus_z * n, n, value=-1).mul_(0.5)
            coef = hw.new_empty(T, N, 3, H)
            c_r, c_z, c_hn = coef.unbind(2)
            torch.addcmul(r, r, r, value=-1, out=c_r).mul_(hn).mul_(c_n)  # c_n hw_n σ'(r)
            torch.sub(hs, n, out=c_z).mul_(one_minus_z)  # (h_{s-1} − n) σ'(z) = (h_s − n)(1 − z)
            torch.mul(c_n, r, out=c_hn)
            dh.copy_(d_out)  # dh starts as dout
            dh[last].add_(d_hT)
            _backward_steps(dh, dg, coef, z, w_hh, reverse)
            # gradient of xw: (da_r, da_z) = dg_rz, da_n = dh ⊙ c_n
            d_xw[..., : 2 * H].copy_(dg[..., : 2 * H])
            torch.mul(dh, c_n, out=d_xw[..., 2 * H :])
        # dW_hh = Σ_s dg_s h_{s-1}ᵀ in two products (h0 for the first processed step, the
        # neighbouring output for the others), db_hh = Σ_s dg_s
        first, rest = (T - 1, slice(0, T - 1)) if reverse else (0, slice(1, T))
        # the gradient of the initial state: z ⊙ dh + W_hhᵀ dg of the first processed step
        dh0 = torch.addmm(z[first] * dh[first], dg[first], w_hh)
        h_prev_rest = hs[1:] if reverse else hs[:-1]
        dw_hh = dg[first].t() @ h0
        if T > 1:
            dw_hh.addmm_(dg[rest].reshape(-1, G).t(), h_prev_rest.reshape(-1, H))
        db_hh = dg.view(T * N, G).sum(0) if ctx.has_bias else None
        return d_xw, dh0, dw_hh, db_hh, None


def gru_loop(
    xw: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None = None, reverse: bool = False
) -> tuple[Tensor, Tensor]:
    """Run :class:`GRULoop` (see the module): ``out (T, N, H)`` and ``h_T (N, H)``."""
    return GRULoop.apply(xw, h0, w_hh, b_hh, reverse)
