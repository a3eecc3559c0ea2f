r"""One direction of an LSTM layer as one autograd function with a hand-written backward pass.

Autograd records about ten nodes per time step of an LSTM; at small sizes their
bookkeeping, not the arithmetic, dominates the time. :class:`LSTMLoop` runs the input
projection and the time loop without recording, and backpropagates through time with the
explicit recursion below, three tensor operations per step. Everything that does not
depend on the recursion is computed outside it: the local factors of the backward pass at
the end of the forward pass, and only when a gradient will be asked for (for large steps,
inside each forward step while its activations are in the cache: see
:data:`PER_STEP_FACTORS`); the gradients of ``W_ih``, ``W_hh``, the biases and the input as
a few matrix products after the backward loop.

One buffer of five blocks per row, ``(P, 5H)``, holds a step's gates, then their local
factors: the input projection writes the pre-activations into its first four blocks, the
forward loop activates them in place, and the factors overwrite them in place (the fifth
block receives ``f``). The backward loop writes ``(P, 5H)`` of gradients, the
pre-activations' and the cell's; nothing else of that size is made, and nothing is copied.

The gate blocks are in the order **o, i, f, g** (not :mod:`torch.nn`'s i, f, g, o), and in
the forward pass the g rows of the weights and bias are **doubled**, so that the loop's
pre-activation of that block is ``a'_g = 2 a_g``. Then one ``sigmoid_`` activates the whole
row of four blocks, and ``g = tanh(a_g) = 2 σ(a'_g) − 1`` costs one cheap operation: on the
CPU, ``torch.tanh`` takes about three times as long per element as ``torch.sigmoid``, and
one call on a row beats two calls on strided blocks. In the backward pass the three gates
whose gradient scales with ``dc`` are contiguous. :func:`to_oifg` makes the layout; the
gradients are of the undoubled pre-activations and go back to :mod:`torch.nn`'s order.

All buffers hold the rows of every step one after the other, in time order, as
:mod:`rnn_course.schedule` lays them out for a padded or a packed batch: the backward
direction only visits the steps from last to first, so that nothing is flipped, and a
packed batch runs at each step only the rows whose sequences have not ended. The loops
run over the schedule's segments, which for a padded batch are its steps.

Forward, per step (``s`` is the processing order):

.. math::
    \begin{aligned}
    (o, i, f, \tilde g) &= \sigma(W_{ih} x_s + b + W_{hh} h_{s-1}), \qquad
        g = 2 \tilde g - 1 \\
    c_s &= f \odot c_{s-1} + i \odot g, \qquad h_s = o \odot \tanh(c_s)
    \end{aligned}

Backward, with ``dh_s = dout_s + W_{hh}^T da_{s+1}`` (``da`` the pre-activation gradient):

.. math::
    \begin{aligned}
    dc &\mathrel{+}= dh_s \odot o \odot (1 - \tanh^2 c_s) \\
    da_o &= dh_s \odot h_s (1-o), \qquad da_i = dc \odot g\, i(1-i) \\
    da_f &= dc \odot c_{s-1} f(1-f), \qquad da_g = dc \odot i (1-g^2) \\
    dc_{s-1} &= dc \odot f
    \end{aligned}

(``h_s (1 − o) = tanh(c_s) σ'(o)`` because ``h_s = o tanh(c_s)``.)

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


def to_oifg(w: Tensor, double_g: bool = False) -> Tensor:
    """The loop's layout of a weight ``(4H, ·)`` or bias ``(4H,)`` given in i, f, g, o order.

    The blocks are reordered to o, i, f, g; with ``double_g`` the g block is doubled (the
    forward pass's layout, see the module).
    """
    i, f, g, o = w.chunk(4, dim=0)
    return torch.cat([o, i, f, 2 * g if double_g else g])


def from_oifg(w: Tensor) -> Tensor:
    """:mod:`torch.nn`'s order i, f, g, o of a tensor whose blocks are in o, i, f, g order."""
    o, i, f, g = w.chunk(4, dim=0)
    return torch.cat([i, f, g, o])


# Steps of at least this many state entries (N·H) write their local factors as they go;
# smaller ones write them all at once after the loop. Measured in one process against the
# batched version, forward and backward: 0.87-0.95 of its time at N·H = 8192 and 16384,
# no gain at 4096 (N·H = 16·256, 32·128, 64·64), where the eight extra calls per step
# cost as much as the passes over memory they replace.
PER_STEP_FACTORS = 8192
# Steps that write their factors as they go and have at least this many state entries
# compute tanh(c) as 2 σ(2c) − 1, three calls instead of one: torch.tanh takes about six
# times as long per element as torch.sigmoid on this kind of CPU. Measured in one process at
# T=100, N=64, H=256: 1.13 instead of 1.18 times the GEMM floor for forward and backward.
# The other steps keep the cell in units of 2c, so that the same costs two calls, a sigmoid
# and an add (see _forward_steps): measured against torch.tanh in one process, forward and
# backward, 0.98 of the time of a call at T=50, N=32, H=64, no gain at T=100, N=16, H=64.
TANH_BY_SIGMOID = 8192


def _factors(
    row: Tensor, odt: Tensor, tc: Tensor, h: Tensor, c_prev: Tensor | None, H: int
) -> None:
    """Turn activations into the backward pass's local factors, in place (see the module).

    ``row (n, 5H)`` holds ``(o, i, f, g, ·)`` on entry and ``(h (1 − o), g σ'(i),
    σ'(f) [c_{s-1}], i (1 − g²), f)`` on exit; ``tc`` is ``tanh(c_s)`` and ``odt``
    receives ``∂h/∂c = o (1 − tanh² c) = o − h tanh(c)`` (it may be ``tc`` itself). With
    ``c_prev`` the f block is multiplied by it here; without, the caller does it.
    """
    o, i, f, g, x = row.split(H, dim=1)
    torch.addcmul(o, h, tc, value=-1, out=odt)  # o − h tanh(c), while o is intact
    torch.addcmul(h, h, o, value=-1, out=o)  # h (1 − o)
    torch.mul(i, g, out=x)  # u = i g, for the next two
    torch.addcmul(i, x, g, value=-1, out=g)  # i − u g = i (1 − g²)
    torch.addcmul(x, x, i, value=-1, out=i)  # u − u i = g i (1 − i)
    x.copy_(f)  # dc_{s-1} = dc ⊙ f
    torch.addcmul(f, f, f, value=-1, out=f)  # f (1 − f)
    if c_prev is not None:
        f.mul_(c_prev)  # c_{s-1} f (1 − f)


def _forward_steps(
    rows: Tensor,
    cs: Tensor,
    tcs: Tensor,
    hs: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    schedule: Schedule,
    factors: bool,
) -> None:
    """The forward recursion, in place: ``rows (P, 5H)`` holds the projections in its first
    four blocks on entry, activations (or, with ``factors``, the local factors) on exit.

    ``cs``, ``tcs`` and ``hs`` (each ``(P, H)``) receive ``c_s``, ``tanh(c_s)`` (with
    ``factors``: ``∂h/∂c``) and ``h_s``. Without ``factors`` the loop runs the cell in units
    of ``2c`` (``cs`` holds ``2 c_s`` until the end), so that ``tanh(c_s) = 2 σ(2 c_s) − 1``
    costs a sigmoid and an add; with them, the factors of the f gate read ``c_{s-1}`` during
    the loop, and ``tanh`` is taken directly or, for large steps, as ``2 σ(2c) − 1``. Every
    per-step view is local to this function, so all of them are freed when it returns (see
    :mod:`rnn_course.loop_context`).
    """
    H = hs.shape[1]
    minus_one, two = (rows.new_full((), v) for v in (-1.0, 2.0))
    w_hh_t = w_hh.t()
    views = schedule.views
    tanh_by_sigmoid = schedule.batch * H >= TANH_BY_SIGMOID

    # per-segment views in processing order (a segment is a step of a padded batch), made
    # once; H0[k] and C0[k] are the states segment k starts from
    R = views(rows) if factors else []
    A = views(rows[:, : 4 * H])
    O, I, F, G_ = (views(v) for v in rows[:, : 4 * H].split(H, dim=1))
    TC = views(tcs)
    HS, H0 = schedule.with_prev(hs, h0)
    doubled = not factors  # the cell in units of 2c
    C, C0 = schedule.with_prev(cs, c0 * 2 if doubled else c0)
    for k in range(len(A)):
        # a = W_ih x_s + b + W_hh h_{s-1}, then σ of all four blocks: (o, i, f, σ(2 a_g))
        A[k].addmm_(H0[k], w_hh_t).sigmoid_()
        # g = 2 σ(2 a_g) − 1 = tanh(a_g)
        g = torch.add(minus_one, G_[k], alpha=2, out=G_[k])
        if doubled:
            # 2c_s = f ⊙ 2c_{s-1} + 2 i ⊙ g; tanh(c_s) = 2 σ(2c_s) − 1
            c = torch.mul(F[k], C0[k], out=C[k]).addcmul_(I[k], g, value=2)
            tc = torch.sigmoid(c, out=TC[k])
            torch.add(minus_one, tc, alpha=2, out=tc)
        else:
            # c_s = f ⊙ c_{s-1} + i ⊙ g; tanh(c) = 2 σ(2c) − 1 for large steps
            c = torch.mul(F[k], C0[k], out=C[k]).addcmul_(I[k], g)
            if tanh_by_sigmoid:
                tc = torch.mul(c, two, out=TC[k]).sigmoid_()
                torch.add(minus_one, tc, alpha=2, out=tc)
            else:
                tc = torch.tanh(c, out=TC[k])
        # h_s = o ⊙ tanh(c_s)
        h = torch.mul(O[k], tc, out=HS[k])
        if factors:  # this step's local factors, while its activations are in the cache
            _factors(R[k], tc, tc, h, C0[k], H)
    if doubled:
        cs.mul_(0.5)  # c_s, exactly (a power of two): the final state and the factors read it


def _backward_steps(
    da: Tensor,
    rows: Tensor,
    odt: Tensor,
    d_out: Tensor,
    d_hT: Tensor,
    d_cT: Tensor,
    w_hh: Tensor,
    schedule: Schedule,
) -> None:
    """The backward recursion into ``da (P, 5H)``, from the factors ``rows (P, 5H)``.

    On exit ``da`` holds ``(da_o, da_i, da_f, da_g, dc_{s-1})`` of every step. Each step
    builds ``(dh, dc, dc, dc, dc)`` in a small buffer and multiplies its factors by it
    (the factors stay as they are: a second backward pass through a retained graph reads
    them again). Views stay local.
    """
    P, H = odt.shape
    views = schedule.views

    # ∂h/∂c seen four times: for i, f, g and dc_{s-1}
    R, DOUT, ODT = views(rows), views(d_out), views(odt.unsqueeze(1).expand(P, 4, H))
    # the next step's (da_o, da_i, da_f, da_g), and its dc_{s-1}: the gradient of this
    # step's cell (d_cT where the state is final)
    _, NEXT_DA = schedule.with_next(da[:, : 4 * H])
    _, NEXT_DC = schedule.with_next(da[:, 4 * H :].unsqueeze(1), d_cT.unsqueeze(1))
    DA5, FINAL = views(da), schedule.with_final(d_hT)
    M = da.new_empty(schedule.batch, 5 * H)  # (dh, dc, dc, dc, dc) of one step
    parts: dict[int, tuple[Tensor, Tensor, Tensor, Tensor]] = {}
    for k in reversed(range(len(R))):  # the segments from the last processed one back
        n = R[k].shape[0]
        if n not in parts:  # a packed batch's steps have fewer rows as they go
            m = M[:n]
            parts[n] = (m, m[:, :H], m[:, :H].unsqueeze(1), m[:, H:].unflatten(1, (4, H)))
        m, dh, dh1, dc4 = parts[n]
        next_da = NEXT_DA[k]
        if next_da is None:
            # dh_s = dout_s + d_hT where the state is final
            torch.add(DOUT[k], FINAL[k], out=dh)
        else:
            # dh_s = dout_s + W_hhᵀ da_{s+1}
            torch.addmm(DOUT[k], next_da, w_hh, out=dh)
        # dc += dh ⊙ o ⊙ (1 − tanh² c_s), written into the other four blocks
        torch.addcmul(NEXT_DC[k], dh1, ODT[k], out=dc4)
        # (da_o, da_i, da_f, da_g, dc_{s-1}) = (dh, dc, dc, dc, dc) ⊙ factors
        torch.mul(R[k], m, out=DA5[k])


class LSTMLoop(torch.autograd.Function):
    """One direction of an LSTM layer: ``(x, h0, c0, w_ih, w_hh, b_ih, b_hh, schedule,
    backward)`` → ``(out, h_T, c_T)``.

    Shapes: ``x (P, H_in)`` the rows of every step in time order as
    :class:`~rnn_course.schedule.Schedule` lays them out; ``h0, c0 (N, H)``; the weights
    and biases in :mod:`torch.nn`'s layout (i, f, g, o), biases ``None`` or both given;
    ``out (P, H)`` in the layout of ``x``; ``h_T, c_T (N, H)`` the final states.
    ``backward`` says whether a gradient may be asked for; only then are the local factors
    computed (:func:`lstm_loop` decides).
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        h0: Tensor,
        c0: Tensor,
        w_ih: Tensor,
        w_hh: Tensor,
        b_ih: Tensor | None,
        b_hh: Tensor | None,
        schedule: Schedule,
        backward: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run the projection and the loop without recording; keep the local factors."""
        P, H = x.shape[0], w_hh.shape[1]
        rows = x.new_empty(P, 5 * H)  # gates, then local factors, then gradients
        cs = x.new_empty(P, H)  # c_s
        tcs = x.new_empty(P, H)  # tanh(c_s), then ∂h/∂c
        hs = x.new_empty(P, H)  # h_s, the output
        # W_ih x_s + b_ih + b_hh for all steps in one product, straight into the gate
        # blocks, in the loop's layout (o, i, f, g with the g rows doubled)
        w_ih_l = to_oifg(w_ih, double_g=True)
        if b_ih is None or b_hh is None:
            torch.mm(x, w_ih_l.t(), out=rows[:, : 4 * H])
        else:
            torch.addmm(to_oifg(b_ih + b_hh, double_g=True), x, w_ih_l.t(), out=rows[:, : 4 * H])
        # the loop reads and writes these buffers only: no autograd bookkeeping at all
        with loop_context():
            per_step = backward and schedule.batch * H >= PER_STEP_FACTORS
            w_hh_l = to_oifg(w_hh, double_g=True)
            _forward_steps(rows, cs, tcs, hs, h0, c0, w_hh_l, schedule, per_step)
            if backward and not per_step:  # the factors of every step at once
                _factors(rows, tcs, tcs, hs, None, H)
                f = rows[:, 2 * H : 3 * H]
                for block in schedule.blocks:  # c_{s-1} of every row: c0 or its previous c
                    f[block.rows].mul_((c0 if block.initial else cs)[block.source])
        ctx.schedule = schedule
        ctx.has_bias = b_ih is not None
        if backward:
            ctx.save_for_backward(rows, tcs, hs, h0, x, w_ih, w_hh)
        return hs, schedule.final(hs), schedule.final(cs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_out: Tensor, d_hT: Tensor, d_cT: Tensor) -> tuple[Any, ...]:
        """Backpropagate through time by hand; the weights' gradients as a few products."""
        rows, odt, hs, h0, x, w_ih, w_hh = ctx.saved_tensors
        schedule: Schedule = ctx.schedule
        H = hs.shape[1]
        w_hh_l = to_oifg(w_hh)  # the gradients are those of the undoubled pre-activations
        grads = torch.empty_like(rows)  # (da_o, da_i, da_f, da_g, dc_{s-1}) of every row
        with loop_context():
            _backward_steps(grads, rows, odt, d_out, d_hT, d_cT, w_hh_l, schedule)
        da = grads[:, : 4 * H]  # (P, 4H), o, i, f, g
        need = ctx.needs_input_grad
        # the initial states' gradients: W_hhᵀ da and dc_{s-1} of the rows that read them
        dh0 = schedule.initial(lambda r: da[r] @ w_hh_l, h0) if need[1] else None
        dc0 = schedule.initial(lambda r: grads[r, 4 * H :].clone(), h0) if need[2] else None
        # the input's and the weights' gradients: a few matrix products over all rows
        dx = da @ to_oifg(w_ih) if need[0] else None
        dw_ih = from_oifg(da.t() @ x) if need[3] else None
        # dW_hh = Σ_s da_s h_{s-1}ᵀ: h_{s-1} is h0 or the neighbouring output, so a few
        # products cover all steps without a copy (two for a padded batch)
        dw_hh = from_oifg(schedule.products_with_prev(da, hs, h0)) if need[4] else None
        db = from_oifg(da.sum(0)) if ctx.has_bias and (need[5] or need[6]) else None
        # both biases get the gradient of their sum, as two tensors
        return dx, dh0, dc0, dw_ih, dw_hh, db, None if db is None else db.clone(), None, None


def lstm_loop(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    reverse: bool = False,
    batch_sizes: tuple[int, ...] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One direction of an LSTM layer by :class:`LSTMLoop`, weights in :mod:`torch.nn`'s layout.

    Without ``batch_sizes`` the batch is padded: ``x (T, N, H_in)`` gives
    ``out (T, N, H)``. With ``batch_sizes`` (a packed batch, :mod:`rnn_course.schedule`)
    ``x`` is ``(P, H_in)`` and ``out`` is ``(P, H)``. ``h_T`` and ``c_T`` are ``(N, H)``.
    """
    if batch_sizes is None:
        T, N, I = x.shape
        out, h, c = lstm_direction(
            x.reshape(T * N, I), h0, c0, w_ih, w_hh, b_ih, b_hh, Schedule.padded(T, N, reverse)
        )
        return out.view(T, N, -1), h, c
    schedule = Schedule(tuple(batch_sizes), reverse)
    return lstm_direction(x, h0, c0, w_ih, w_hh, b_ih, b_hh, schedule)


def lstm_direction(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    schedule: Schedule,
) -> tuple[Tensor, Tensor, Tensor]:
    """:class:`LSTMLoop` over ``x (P, H_in)``: ``out (P, H)``, ``h_T`` and ``c_T``."""
    # inside the function's forward grad mode is always off: decide here whether autograd
    # records the call, so that a forward pass without gradients skips the local factors
    tensors = (x, h0, c0, w_ih, w_hh, b_ih, b_hh)
    backward = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    return LSTMLoop.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, schedule, backward)


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
