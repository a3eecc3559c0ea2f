r"""The LSTM time loop as one autograd function with a hand-written backward pass.

Autograd records about ten nodes per time step of an LSTM; at small sizes their
bookkeeping, not the arithmetic, dominates the time. :class:`LSTMLoop` runs the loop
without recording and backpropagates through time with the explicit recursion below, three
tensor operations per step. Everything that does not depend on the recursion is computed
outside it: the local factors of the backward pass at the end of the forward pass, and only
when a gradient will be asked for (for large steps, inside each forward step while its
activations are in the cache: see :data:`PER_STEP_FACTORS`); ``dW_hh`` as one matrix
product after the backward loop; ``dW_ih``, the biases and the input's gradient flow
through the projection ``xw`` that the caller computed outside the loop (autograd handles
that single ``addmm``).

The gate blocks are in the order **o, i, f, g** (not :mod:`torch.nn`'s i, f, g, o), and
the g block of the weights and biases is **doubled**, so that the loop's pre-activation of
that block is ``a'_g = 2 a_g``. Then one ``sigmoid_`` activates the whole row of four
blocks, and ``g = tanh(a_g) = 2 σ(a'_g) − 1`` costs one cheap operation: on the CPU,
``torch.tanh`` takes about three times as long per element as ``torch.sigmoid``, and one call
on a contiguous row beats two calls on strided blocks. In the backward pass the three gates
whose gradient scales with ``dc`` are contiguous. :func:`to_oifg` makes the layout from a
weight or bias; autograd carries the reordering and the factor 2 back to the parameters.

All buffers hold the rows of every step one after the other, in time order, as
:mod:`rnn_course.schedule` lays them out for a padded or a packed batch: the backward
direction only visits the steps from last to first, so that nothing is flipped, and a
packed batch runs at each step only the rows whose sequences have not ended. The loops
run over the schedule's segments, which for a padded batch are its steps.

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
from rnn_course.schedule import Schedule, run_steps


def to_oifg(w: Tensor) -> Tensor:
    """The loop's layout of a weight ``(4H, ·)`` or bias ``(4H,)`` given in i, f, g, o order.

    The blocks are reordered to o, i, f, g and the g block is doubled (see the module).
    """
    i, f, g, o = w.chunk(4, dim=0)
    return torch.cat([o, i, f, 2 * g])


# Steps of at least this many state entries (N·H) write their local factors as they go;
# smaller ones write them all at once after the loop. Measured in one process against the
# batched version, forward and backward: 0.87-0.95 of its time at N·H = 8192 and 16384,
# no gain at 4096 (N·H = 16·256, 32·128, 64·64), where the eight extra calls per step
# cost as much as the passes over memory they replace.
PER_STEP_FACTORS = 8192


def _forward_steps(
    gates: Tensor,
    cs: Tensor,
    tcs: Tensor,
    hs: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    schedule: Schedule,
    factors: tuple[Tensor, Tensor] | None = None,
) -> None:
    """The forward recursion, in place: ``gates (P, 4H)`` holds ``xw``, then activations.

    ``cs``, ``tcs`` and ``hs`` (each ``(P, H)``) receive ``c_s``, ``tanh(c_s)`` and ``h_s``.
    With ``factors`` (``coef`` and ``o_dtanh``, see :func:`_local_factors`) each step also
    writes its local factors, while its activations are in the cache. Every per-step view is
    local to this function, so all of them are freed when it returns (see
    :mod:`rnn_course.loop_context`).
    """
    H = hs.shape[1]
    zero, minus_one = (gates.new_full((), v) for v in (0.0, -1.0))
    w_hh_t = w_hh.t()
    views = schedule.views

    # per-segment views in processing order (a segment is a step of a padded batch), made
    # once; H0[k] and C0[k] are the states segment k starts from
    A, IF = views(gates), views(gates[:, H : 3 * H])
    O, I, F, G_ = (views(v) for v in gates.split(H, dim=1))
    TC = views(tcs)
    HS, H0 = schedule.with_prev(hs, h0)
    C, C0 = schedule.with_prev(cs, c0)
    if factors is not None:
        coef, o_dtanh = factors
        K_O, K_I, K_F, K_G, K_C = (views(v) for v in coef.split(H, dim=1))
        K_IF, ODT = views(coef[:, H : 3 * H]), views(o_dtanh)
    for k in range(len(A)):
        # a = xw_s + W_hh h_{s-1}, then σ of all four blocks: (o, i, f, σ(2 a_g))
        A[k].addmm_(H0[k], w_hh_t).sigmoid_()
        # g = 2 σ(2 a_g) − 1 = tanh(a_g)
        g = torch.add(minus_one, G_[k], alpha=2, out=G_[k])
        # c_s = f ⊙ c_{s-1} + i ⊙ g
        c = torch.mul(F[k], C0[k], out=C[k]).addcmul_(I[k], g)
        # h_s = o ⊙ tanh(c_s)
        tc = torch.tanh(c, out=TC[k])
        h = torch.mul(O[k], tc, out=HS[k])
        if factors is not None:  # the same factors as _local_factors, for this step
            torch.addcmul(h, h, O[k], value=-1, out=K_O[k])
            torch.addcmul(IF[k], IF[k], IF[k], value=-1, out=K_IF[k])
            K_I[k].mul_(g)
            K_F[k].mul_(C0[k])
            torch.addcmul(minus_one, g, g, out=K_G[k])
            torch.addcmul(zero, K_G[k], I[k], value=-0.5, out=K_G[k])
            K_C[k].copy_(F[k])
            torch.addcmul(O[k], h, tc, value=-1, out=ODT[k])


def _backward_steps(
    da: Tensor, coef: Tensor, o_dtanh: Tensor, w_hh: Tensor, d_cT: Tensor, schedule: Schedule
) -> None:
    """The backward recursion, in place on ``da (P, 5H)``; per-step views stay local.

    On entry ``da``'s first block holds ``dout`` (plus ``d_hT`` where a state is final); on
    exit its blocks hold ``(da_o, da_i, da_f, da_g, dc_{s-1})`` of every step.
    """
    H = da.shape[1] // 5
    views = schedule.views

    DA, DH = views(da), views(da[:, :H])
    DH1, DC4 = views(da[:, :H].unsqueeze(1)), views(da[:, H:].unflatten(-1, (4, H)))
    COEF, ODT = views(coef), views(o_dtanh)
    # the next step's (da_o, da_i, da_f, da_g), and its dc_{s-1}: the gradient of this
    # step's cell (d_cT where the state is final)
    _, NEXT_DA4 = schedule.with_next(da[:, : 4 * H])
    _, NEXT_DC = schedule.with_next(da[:, 4 * H :].unsqueeze(1), d_cT.unsqueeze(1))
    for k in reversed(range(len(DA))):  # the segments from the last processed one back
        next_da = NEXT_DA4[k]
        if next_da is not None:
            # dh_s = dout_s + W_hhᵀ da_{s+1}, accumulated into the first block
            DH[k].addmm_(next_da, w_hh)
        # dc += dh ⊙ o ⊙ (1 − tanh² c_s), written into the other four blocks
        torch.addcmul(NEXT_DC[k], DH1[k], ODT[k], out=DC4[k])
        # (da_o, da_i, da_f, da_g, dc_{s-1}) = (dh, dc, dc, dc, dc) ⊙ coef
        DA[k].mul_(COEF[k])


def _local_factors(
    gates: Tensor,
    cs: Tensor,
    tcs: Tensor,
    hs: Tensor,
    c0: Tensor,
    coef: Tensor,
    o_dtanh: Tensor,
    schedule: Schedule,
) -> None:
    """Write the factors of every step that do not depend on the recursion, all at once.

    ``coef (P, 5H)`` gets ``(h (1 − o), g σ'(i), c_{s-1} σ'(f), i (1 − g²) / 2, f)`` and
    ``o_dtanh (P, H)`` gets ``∂h/∂c = o (1 − tanh² c) = o − h tanh(c)``.
    """
    H = hs.shape[1]
    o, i, f, g = gates.split(H, dim=1)  # each (P, H), time order
    coef_o, coef_i, coef_f, coef_g, coef_c = coef.split(H, dim=1)
    torch.addcmul(hs, hs, o, value=-1, out=coef_o)  # h (1 − o) = tanh(c) σ'(o)
    if_ = gates[:, H : 3 * H]
    torch.addcmul(if_, if_, if_, value=-1, out=coef[:, H : 3 * H])  # σ'(i), σ'(f)
    coef_i.mul_(g)
    for block in schedule.blocks:  # c_{s-1} of every step: c0 or the previous step's c
        coef_f[block.rows].mul_((c0 if block.initial else cs)[block.source])
    # the loop's g block is a'_g = 2 a_g, and ∂g/∂a'_g = (1 − g²) / 2
    zero, minus_one = (hs.new_full((), v) for v in (0.0, -1.0))
    torch.addcmul(minus_one, g, g, out=coef_g)  # g² − 1
    torch.addcmul(zero, coef_g, i, value=-0.5, out=coef_g)  # i (1 − g²) / 2
    coef_c.copy_(f)  # dc_{s-1} = dc ⊙ f
    torch.addcmul(o, hs, tcs, value=-1, out=o_dtanh)


class LSTMLoop(torch.autograd.Function):
    """``(xw, h0, c0, w_hh, schedule, backward)`` → ``(out, h_T, c_T)`` in the loop's layout.

    Shapes: ``xw (P, 4H)`` the input projections with both biases folded in, the rows of
    every step in time order as :class:`~rnn_course.schedule.Schedule` lays them out;
    ``h0, c0 (N, H)``; ``w_hh (4H, H)``; ``out (P, H)`` in the same layout; ``h_T, c_T
    (N, H)`` the final states. The gate blocks of ``xw`` and ``w_hh`` are in the order o, i,
    f, g with the g block doubled, as :func:`to_oifg` makes them. ``backward`` says whether
    a gradient may be asked for; only then are the local factors computed and saved
    (:func:`lstm_loop` decides).
    """

    @staticmethod
    def forward(
        ctx: Any,
        xw: Tensor,
        h0: Tensor,
        c0: Tensor,
        w_hh: Tensor,
        schedule: Schedule,
        backward: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        P, G = xw.shape
        H = G // 4
        gates = xw.clone()  # each step adds W_hh h_{s-1}, then activates in place
        cs = xw.new_empty(P, H)  # c_s
        tcs = xw.new_empty(P, H)  # tanh(c_s)
        hs = xw.new_empty(P, H)  # h_s, the output
        # the backward pass needs only the local factors: computed here, while the
        # activations are still in the cache, and only when a gradient will be asked for
        # (the buffers are made outside inference mode, so that they can be saved)
        if backward:
            factors = xw.new_empty(P, 6 * H)
            coef, o_dtanh = factors.split([5 * H, H], dim=1)
        # the loop reads and writes these buffers only: no autograd bookkeeping at all
        with loop_context():
            per_step = backward and schedule.batch * H >= PER_STEP_FACTORS
            _forward_steps(
                gates, cs, tcs, hs, h0, c0, w_hh, schedule, (coef, o_dtanh) if per_step else None
            )
            if backward and not per_step:
                _local_factors(gates, cs, tcs, hs, c0, coef, o_dtanh, schedule)
        ctx.schedule = schedule
        if backward:
            ctx.save_for_backward(coef, o_dtanh, hs, h0, w_hh)
        return hs, schedule.final(hs), schedule.final(cs)

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, d_out: Tensor, d_hT: Tensor, d_cT: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, None, None]:
        coef, o_dtanh, hs, h0, w_hh = ctx.saved_tensors
        schedule: Schedule = ctx.schedule
        P, H = hs.shape
        G = 4 * H
        da = coef.new_empty(P, 5 * H)
        with loop_context():
            # da holds (dh, dc, dc, dc, dc) until multiplied by coef, which leaves
            # (da_o, da_i, da_f, da_g) and dc_{s-1} in place; dh starts as dout, plus the
            # final state's gradient where the state is final
            da[:, :H].copy_(d_out)
            schedule.add_final(da[:, :H], d_hT)
            # ∂h/∂c seen four times: for i, f, g and dc_{s-1}
            o_dtanh4 = o_dtanh.unsqueeze(1).expand(P, 4, H)
            _backward_steps(da, coef, o_dtanh4, w_hh, d_cT, schedule)
        d_xw = da[:, :G]
        # the initial states' gradients: W_hhᵀ da and dc_{s-1} of the rows that read them
        dh0 = schedule.initial(lambda rows: d_xw[rows] @ w_hh, h0)
        dc0 = schedule.initial(lambda rows: da[rows, G:].clone(), h0)
        # dW_hh = Σ_s da_s h_{s-1}ᵀ: h_{s-1} is h0 or the neighbouring output, so a few
        # products cover all steps without a copy (two for a padded batch)
        dw_hh = schedule.products_with_prev(d_xw, hs, h0)
        return d_xw, dh0, dc0, dw_hh, None, None


def lstm_loop(
    xw: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    reverse: bool = False,
    batch_sizes: tuple[int, ...] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run :class:`LSTMLoop`; all tensors with gates in o, i, f, g order (see the module).

    Without ``batch_sizes`` the batch is padded: ``xw (T, N, 4H)`` gives ``out (T, N, H)``.
    With ``batch_sizes`` (a packed batch, :mod:`rnn_course.schedule`) ``xw`` is
    ``(P, 4H)`` and ``out`` is ``(P, H)``. ``h_T`` and ``c_T`` are ``(N, H)``.
    """
    if batch_sizes is None:
        T, N, G = xw.shape
        schedule = Schedule.padded(T, N, reverse)
        xw2 = xw.reshape(T * N, G)
    else:
        schedule, xw2 = Schedule(tuple(batch_sizes), reverse), xw
    # inside the function's forward grad mode is always off: decide here whether autograd
    # records the call, so that a forward pass without gradients skips the local factors
    backward = torch.is_grad_enabled() and any(t.requires_grad for t in (xw, h0, c0, w_hh))
    out, h, c = LSTMLoop.apply(xw2, h0, c0, w_hh, schedule, backward)
    return (out if batch_sizes is not None else out.view(xw.shape[0], xw.shape[1], -1)), h, c


def lstm_steps_autograd(
    xw: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    schedule: Schedule,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """The same loop in plain autograd operations, in :mod:`torch.nn`'s gate order i, f, g, o.

    ``xw (P, 4H)`` with both biases folded in. What :func:`torch.compile` captures (see
    :meth:`rnn_course.layers.LSTM.compile_time_loop`): the loop above writes into strided
    buffers in place, which breaks a compiled graph.
    """
    w_hh_t = w_hh.t()

    def cell(xw_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        h, c = state
        i, f, g, o = torch.addmm(xw_t, h, w_hh_t).chunk(4, dim=1)
        # c_t = f ⊙ c_{t-1} + i ⊙ g
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        # h_t = o ⊙ tanh(c_t)
        return torch.sigmoid(o) * torch.tanh(c), c

    out, (h, c) = run_steps(cell, xw, (h0, c0), schedule)
    return out, (h, c)
