r"""The GRU time loop as one autograd function with a hand-written backward pass.

As for the LSTM (:mod:`rnn_course.lstm_loop`), autograd would record about eight nodes per
step of a GRU, and at small sizes their bookkeeping dominates the time. :class:`GRULoop`
runs the loop of :class:`torch.nn.GRU`'s cell (the reset gate applied after the recurrent
product) without recording, keeps the activations, and backpropagates through time by
hand: six tensor operations per step forward, three backward. Every pre-activation
gradient of a step is the state's gradient times a factor that the forward pass already
determined, so those factors are computed for all steps at once before the loop. The
input projection is part of the function: it writes the r and z blocks of all steps
straight into the buffer the loop accumulates into, and the n block beside it; the
gradients of ``W_ih``, ``W_hh``, the biases and the input are a few matrix products and
sums after the loop. All buffers hold the rows of every step in time order, as
:mod:`rnn_course.schedule` lays them out for a padded or a packed batch; the backward
direction only visits the steps from last to first.

Forward, per step (``s`` is the processing order, reversed for the backward direction),
with ``xw_s = W_ih x_s + b_ih`` and ``hw_s = W_hh h_{s-1} + b_hh`` split into r, z, n:

.. math::
    \begin{aligned}
    (r, z) &= \sigma(xw_{rz} + hw_{rz}), \qquad n = \tanh(xw_n + r \odot hw_n) \\
    h_s &= (1 - z) \odot n + z \odot h_{s-1}
    \end{aligned}

The backward pass runs the recursion of this form's gradients from the last step to the
first; its derivation is not printed here: chapter 6 of the book derives the lecture form,
whose reset gate acts before the product, and this form's backward pass is an exercise of
assignment 2.

The loop's n block is doubled: :func:`double_n` doubles the n rows of ``W_ih``, ``b_ih``,
``W_hh`` and ``b_hh``, so that the loop's pre-activation is ``a'_n = 2 a_n`` and
``n = tanh(a_n) = 2 σ(a'_n) − 1``: on the CPU ``torch.tanh`` takes about three times as
long per element as ``torch.sigmoid``. The gradients of the doubled rows, doubled again,
are those of the parameters.
Python's cyclic garbage collector is paused while the loops run
(:mod:`rnn_course.loop_context`).
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
    xn: Tensor, hw: Tensor, ns: Tensor, hs: Tensor, h0: Tensor, w_hh: Tensor, schedule: Schedule
) -> None:
    """The forward recursion, in place on ``hw (P, 3H)``, ``ns`` and ``hs`` (``(P, H)``).

    ``xn (P, H)`` is the n block's input projection. ``hw`` holds
    ``(xw_r + b_hr, xw_z + b_hz, b_hn)`` on entry and ``(r, z, hw_n)`` on exit.
    Every per-step view is local to this function, so all are freed when it returns (see
    :mod:`rnn_course.loop_context`).
    """
    H = xn.shape[1]
    minus_one = xn.new_full((), -1.0)
    w_hh_t = w_hh.t()
    views = schedule.views

    # per-segment views in processing order (a segment is a step of a padded batch), made
    # once; H0[k] is the state segment k starts from
    HW, RZ, XN = views(hw), views(hw[:, : 2 * H]), views(xn)
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
    """One direction of a GRU layer: ``(x, h0, w_ih, w_hh, b_ih, b_hh, schedule)`` →
    ``(out, h_T)``.

    Shapes: ``x (P, H_in)`` the rows of every step in time order as
    :class:`~rnn_course.schedule.Schedule` lays them out; ``h0 (N, H)``; the weights and
    biases in :mod:`torch.nn`'s layout (r, z, n), biases ``None`` or both given; ``out
    (P, H)`` in the layout of ``x``; ``h_T (N, H)`` the final states.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        h0: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor | None,
        b_hh: Tensor | None,
        schedule: Schedule,
    ) -> tuple[Tensor, Tensor]:
        """Run the projection and the loop without recording; keep the activations."""
        P, H = x.shape[0], w_hh.shape[1]
        w_ih2, w_hh2 = double_n(w_ih), double_n(w_hh)
        # hw starts as (W_ir x + b_ir + b_hr, W_iz x + b_iz + b_hz, b_hn); each step adds
        # W_hh h_{s-1} in place, which leaves the pre-activations of r and z and hw_n;
        # σ(·) then replaces r and z. xn is W_in x + b_in. Both in the loop's layout
        # (n doubled), each in one product for all steps.
        hw = x.new_empty(P, 3 * H)
        xn = x.new_empty(P, H)
        if b_ih is None or b_hh is None:
            torch.mm(x, w_ih2[: 2 * H].t(), out=hw[:, : 2 * H])
            torch.mm(x, w_ih2[2 * H :].t(), out=xn)
            hw[:, 2 * H :].zero_()
        else:
            b_ih2, b_hh2 = double_n(b_ih), double_n(b_hh)
            b_rz = b_ih2[: 2 * H] + b_hh2[: 2 * H]
            torch.addmm(b_rz, x, w_ih2[: 2 * H].t(), out=hw[:, : 2 * H])
            torch.addmm(b_ih2[2 * H :], x, w_ih2[2 * H :].t(), out=xn)
            hw[:, 2 * H :].copy_(b_hh2[2 * H :])
        ns = x.new_empty(P, H)  # n_s
        hs = x.new_empty(P, H)  # h_s, the output
        # the loop reads and writes these buffers only: no autograd bookkeeping at all
        with loop_context():
            _forward_steps(xn, hw, ns, hs, h0, w_hh2, schedule)
        ctx.schedule = schedule
        ctx.has_bias = b_ih is not None
        ctx.save_for_backward(hw, ns, hs, h0, x, w_ih2, w_hh2)
        return hs, schedule.final(hs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_out: Tensor, d_hT: Tensor) -> tuple[Any, ...]:
        """Backpropagate through time by hand; the weights' gradients as a few products."""
        hw, n, hs, h0, x, w_ih2, w_hh2 = ctx.saved_tensors
        schedule: Schedule = ctx.schedule
        P, H = hs.shape
        dh = torch.empty_like(hs)
        # (da_r, da_z, dhw_n, da_n) of every row: dg = the first three, the gradient of hw
        grads = hs.new_empty(P, 4 * H)
        dg, d_rz, d_n = grads[:, : 3 * H], grads[:, : 2 * H], grads[:, 3 * H :]
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
            _backward_steps(dh, dg, coef, z, w_hh2, schedule)
            # the gradient of the n block's input projection: da_n = dh ⊙ c_n
            torch.mul(dh, c_n, out=d_n)
        need = ctx.needs_input_grad
        # the initial state's gradient: z ⊙ dh + W_hhᵀ dg of the rows that read it
        dh0 = None
        if need[1]:
            dh0 = schedule.initial(
                lambda rows: torch.addmm(z[rows] * dh[rows], dg[rows], w_hh2), h0
            )
        # the input's and the weights' gradients, of the doubled rows, then doubled again:
        # a few products over all rows (dW_hh = Σ_s dg_s h_{s-1}ᵀ, two products for a
        # padded batch: h0 for the first processed step, the neighbouring output for the
        # others)
        dx = None
        if need[0]:
            dx = torch.addmm(d_n @ w_ih2[2 * H :], d_rz, w_ih2[: 2 * H])
        dw_ih = double_n(torch.cat([d_rz.t() @ x, d_n.t() @ x])) if need[2] else None
        dw_hh = double_n(schedule.products_with_prev(dg, hs, h0)) if need[3] else None
        db_ih = db_hh = None
        if ctx.has_bias:
            d_rz_sum = d_rz.sum(0)
            db_ih = double_n(torch.cat([d_rz_sum, d_n.sum(0)])) if need[4] else None
            db_hh = double_n(torch.cat([d_rz_sum, dg[:, 2 * H :].sum(0)])) if need[5] else None
        return dx, dh0, dw_ih, dw_hh, db_ih, db_hh, None


def gru_loop(
    x: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    reverse: bool = False,
    batch_sizes: tuple[int, ...] | None = None,
) -> tuple[Tensor, Tensor]:
    """One direction of a GRU layer by :class:`GRULoop`, weights in :mod:`torch.nn`'s layout.

    Without ``batch_sizes`` the batch is padded: ``x (T, N, H_in)`` gives ``out (T, N, H)``.
    With ``batch_sizes`` (a packed batch, :mod:`rnn_course.schedule`) ``x`` is
    ``(P, H_in)`` and ``out`` is ``(P, H)``. ``h_T`` is ``(N, H)``.
    """
    if batch_sizes is None:
        T, N, I = x.shape
        schedule = Schedule.padded(T, N, reverse)
        out, h = GRULoop.apply(x.reshape(T * N, I), h0, w_ih, w_hh, b_ih, b_hh, schedule)
        return out.view(T, N, -1), h
    schedule = Schedule(tuple(batch_sizes), reverse)
    return GRULoop.apply(x, h0, w_ih, w_hh, b_ih, b_hh, schedule)


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
