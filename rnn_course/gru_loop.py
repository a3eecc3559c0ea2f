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
loop. All buffers hold the rows of every step in time order, as
:mod:`rnn_course.schedule` lays them out for a padded or a packed batch; the backward
direction only visits the steps from last to first.

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

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnn_course.loop_context import loop_context
from rnn_course.schedule import Schedule, run_steps


def double_n(w: Tensor) -> Tensor:
    """The loop's layout of a weight ``(3H, ·)`` or bias ``(3H,)``: the n block doubled."""
    r, z, n = w.chunk(3, dim=0)
    return torch.cat([r, z, 2 * n])


def _forward_steps(
    xw: Tensor, hw: Tensor, ns: Tensor, hs: Tensor, h0: Tensor, w_hh: Tensor, schedule: Schedule
) -> None:
    """The forward recursion, in place on ``hw (P, 3H)``, ``ns`` and ``hs`` (``(P, H)``).

    ``hw`` holds ``(xw_r + b_hr, xw_z + b_hz, b_hn)`` on entry and ``(r, z, hw_n)`` on exit.
    Every per-step view is local to this function, so all are freed when it returns (see
    :mod:`rnn_course.loop_context`).
    """
    H = xw.shape[1] // 3
    minus_one = xw.new_full((), -1.0)
    w_hh_t = w_hh.t()
    views = schedule.views

    # per-segment views in processing order (a segment is a step of a padded batch), made
    # once; H0[k] is the state segment k starts from
    HW, RZ, XN = views(hw), views(hw[:, : 2 * H]), views(xw[:, 2 * H :])
    R, Z, HN = (views(v) for v in hw.split(H, dim=1))
    NS = views(ns)
    HS, H0 = schedule.with_prev(hs, h0)
    for k in range(len(HW)):
        # (a_r, a_z, hw_n) += W_hh h_{s-1}
        HW[k].addmm_(H0[k], w_hh_t)
        # r, z = σ(a_r, a_z)
        RZ[k].sigmoid_()
        # n = tanh(a_n) = 2 σ(a'_n) − 1, with a'_n = 2 a_n = xw_n + r ⊙ hw_n (both doubled)
        n = torch.addcmul(XN[k], R[k], HN[k], out=NS[k]).sigmoid_()
        torch.add(minus_one, n, alpha=2, out=n)
        # h_s = (1 − z) ⊙ n + z ⊙ h_{s-1}
        torch.lerp(n, H0[k], Z[k], out=HS[k])


def _backward_steps(
    dh: Tensor, dg: Tensor, coef: Tensor, z: Tensor, w_hh: Tensor, schedule: Schedule
) -> None:
    """The backward recursion, in place on ``dh (P, H)`` and ``dg (P, 3H)``.

    On entry ``dh`` holds ``dout`` (plus ``d_hT`` where a state is final); on exit it holds
    every ``dh_s``, and ``dg`` every ``(da_r, da_z, dhw_n)``. Views stay local.
    """
    P, H = dh.shape
    views = schedule.views

    DH1, COEF, DG3 = views(dh.unsqueeze(1)), views(coef), views(dg.view(P, 3, H))
    # the next step's z, dh and dg (None where the state is final)
    DH, NEXT_DH = schedule.with_next(dh)
    _, NEXT_Z = schedule.with_next(z)
    _, NEXT_DG = schedule.with_next(dg)
    for k in reversed(range(len(DH))):  # the segments from the last processed one back
        next_dh = NEXT_DH[k]
        if next_dh is not None:
            # dh_s = dout_s + z_{s+1} ⊙ dh_{s+1} + W_hhᵀ dg_{s+1}
            DH[k].addcmul_(NEXT_Z[k], next_dh).addmm_(NEXT_DG[k], w_hh)
        # (da_r, da_z, dhw_n) = dh_s ⊙ (c_r, c_z, c_hn)
        torch.mul(DH1[k], COEF[k], out=DG3[k])


class GRULoop(torch.autograd.Function):
    """``(xw, h0, w_hh, b_hh, schedule)`` → ``(out, h_T)``, gates in :mod:`torch.nn`'s r, z, n.

    Shapes: ``xw (P, 3H)`` the input projections ``W_ih x_t + b_ih``, the rows of every step
    in time order as :class:`~rnn_course.schedule.Schedule` lays them out; ``h0 (N, H)``;
    ``w_hh (3H, H)``; ``b_hh (3H,)`` or ``None``; ``out (P, H)`` in the same layout; ``h_T
    (N, H)`` the final states. The n blocks are doubled, as :func:`double_n` makes them.
    """

    @staticmethod
    def forward(
        ctx: Any, xw: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, schedule: Schedule
    ) -> tuple[Tensor, Tensor]:
        P, G = xw.shape
        H = G // 3
        # hw starts as (xw_r + b_hr, xw_z + b_hz, b_hn); each step adds W_hh h_{s-1} in place,
        # which leaves the pre-activations of r and z and hw_n; σ(·) then replaces r and z
        hw = torch.empty_like(xw)
        if b_hh is None:
            hw[:, : 2 * H].copy_(xw[:, : 2 * H])
            hw[:, 2 * H :].zero_()
        else:
            torch.add(xw[:, : 2 * H], b_hh[: 2 * H], out=hw[:, : 2 * H])
            hw[:, 2 * H :].copy_(b_hh[2 * H :])
        ns = xw.new_empty(P, H)  # n_s
        hs = xw.new_empty(P, H)  # h_s, the output
        # the loop reads and writes these buffers only: no autograd bookkeeping at all
        with loop_context():
            _forward_steps(xw, hw, ns, hs, h0, w_hh, schedule)
        ctx.schedule = schedule
        ctx.has_bias = b_hh is not None
        ctx.save_for_backward(hw, ns, hs, h0, w_hh)
        return hs, schedule.final(hs)

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, d_out: Tensor, d_hT: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None, None]:
        hw, n, hs, h0, w_hh = ctx.saved_tensors
        schedule: Schedule = ctx.schedule
        P, G = hw.shape
        H = G // 3
        dh = torch.empty_like(hs)
        dg = torch.empty_like(hw)
        d_xw = torch.empty_like(hw)
        with loop_context():
            r, z, hn = hw.split(H, dim=1)  # each (P, H), time order
            # the factors of every step at once (see the module)
            one_minus_z = torch.rsub(z, 1)
            # (1 − z)(1 − n²) / 2: ∂n/∂a'_n = (1 − n²) / 2 for the doubled a'_n (see the module)
            c_n = torch.addcmul(one_minus_z, one_minus_z * n, n, value=-1).mul_(0.5)
            coef = hw.new_empty(P, 3, H)
            c_r, c_z, c_hn = coef.unbind(1)
            torch.addcmul(r, r, r, value=-1, out=c_r).mul_(hn).mul_(c_n)  # c_n hw_n σ'(r)
            torch.sub(hs, n, out=c_z).mul_(one_minus_z)  # (h_{s-1} − n) σ'(z) = (h_s − n)(1 − z)
            torch.mul(c_n, r, out=c_hn)
            dh.copy_(d_out)  # dh starts as dout, plus the final state's gradient
            schedule.add_final(dh, d_hT)
            _backward_steps(dh, dg, coef, z, w_hh, schedule)
            # gradient of xw: (da_r, da_z) = dg_rz, da_n = dh ⊙ c_n
            d_xw[:, : 2 * H].copy_(dg[:, : 2 * H])
            torch.mul(dh, c_n, out=d_xw[:, 2 * H :])
        # the initial state's gradient: z ⊙ dh + W_hhᵀ dg of the rows that read it
        dh0 = schedule.initial(lambda rows: torch.addmm(z[rows] * dh[rows], dg[rows], w_hh), h0)
        # dW_hh = Σ_s dg_s h_{s-1}ᵀ in a few products (two for a padded batch: h0 for the
        # first processed step, the neighbouring output for the others), db_hh = Σ_s dg_s
        dw_hh = schedule.products_with_prev(dg, hs, h0)
        db_hh = dg.sum(0) if ctx.has_bias else None
        return d_xw, dh0, dw_hh, db_hh, None


def gru_loop(
    xw: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None = None,
    reverse: bool = False,
    batch_sizes: tuple[int, ...] | None = None,
) -> tuple[Tensor, Tensor]:
    """Run :class:`GRULoop` (see the module): ``out`` and ``h_T (N, H)``.

    Without ``batch_sizes`` the batch is padded: ``xw (T, N, 3H)`` gives ``out (T, N, H)``.
    With ``batch_sizes`` (a packed batch, :mod:`rnn_course.schedule`) ``xw`` is
    ``(P, 3H)`` and ``out`` is ``(P, H)``.
    """
    if batch_sizes is None:
        T, N, G = xw.shape
        out, h = GRULoop.apply(xw.reshape(T * N, G), h0, w_hh, b_hh, Schedule.padded(T, N, reverse))
        return out.view(T, N, -1), h
    return GRULoop.apply(xw, h0, w_hh, b_hh, Schedule(tuple(batch_sizes), reverse))


def gru_steps_autograd(
    xw: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, schedule: Schedule
) -> tuple[Tensor, Tensor]:
    """The same loop in plain autograd operations, in :mod:`torch.nn`'s layout (n not doubled).

    ``xw (P, 3H)`` is ``W_ih x_t + b_ih``. What :func:`torch.compile` captures (see
    :meth:`rnn_course.layers.GRU.compile_time_loop`).
    """
    w_hh_t = w_hh.t()

    def cell(xw_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor]:
        (h,) = state
        hw = torch.mm(h, w_hh_t) if b_hh is None else torch.addmm(b_hh, h, w_hh_t)
        x_r, x_z, x_n = xw_t.chunk(3, dim=1)
        h_r, h_z, h_n = hw.chunk(3, dim=1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        # n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
        n = torch.tanh(x_n + r * h_n)
        # h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
        return (torch.lerp(n, h, z),)

    out, (h,) = run_steps(cell, xw, (h0,), schedule)
    return out, h
