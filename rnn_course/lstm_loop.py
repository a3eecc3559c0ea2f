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

from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnn_course.loop_context import loop_context, step_views


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
    w_hh: Tensor,
    reverse: bool,
    factors: tuple[Tensor, Tensor] | None = None,
) -> None:
    """The forward recursion, in place: ``gates`` holds ``xw`` on entry, activations on exit.

    ``cs[0]`` (``cs[T]`` for ``reverse``) holds ``c0`` on entry. With ``factors`` (``coef``
    and ``o_dtanh``, see :func:`_local_factors`) each step also writes its local factors,
    while its activations are in the cache. Every per-step view is local to this function,
    so all of them are freed when it returns (see :mod:`rnn_course.loop_context`).
    """
    T, H = gates.shape[0], gates.shape[2] // 4
    zero, minus_one = (gates.new_full((), v) for v in (0.0, -1.0))
    w_hh_t = w_hh.t()

    steps = partial(step_views, reverse=reverse)

    # per-step views in processing order, made once (unbind is one call for T steps);
    # C[s] is the cell before step s and C[s + 1] the cell after it
    A, IF = steps(gates), steps(gates[..., H : 3 * H])
    O, I, F, G_ = (steps(v) for v in gates.split(H, dim=2))
    C, TC, HS = steps(cs), steps(tcs), steps(hs)
    if factors is not None:
        coef, o_dtanh = factors
        K_O, K_I, K_F, K_G, K_C = (steps(v) for v in coef.split(H, dim=2))
        K_IF, ODT = steps(coef[..., H : 3 * H]), steps(o_dtanh)
    h = h0
    for s in range(T):
        # a = xw_s + W_hh h_{s-1}, then σ of all four blocks: (o, i, f, σ(2 a_g))
        A[s].addmm_(h, w_hh_t).sigmoid_()
        # g = 2 σ(2 a_g) − 1 = tanh(a_g)
        g = torch.add(minus_one, G_[s], alpha=2, out=G_[s])
        # c_s = f ⊙ c_{s-1} + i ⊙ g
        c = torch.mul(F[s], C[s], out=C[s + 1]).addcmul_(I[s], g)
        # h_s = o ⊙ tanh(c_s)
        tc = torch.tanh(c, out=TC[s])
        h = torch.mul(O[s], tc, out=HS[s])
        if factors is not None:  # the same factors as _local_factors, for this step
            torch.addcmul(h, h, O[s], value=-1, out=K_O[s])
            torch.addcmul(IF[s], IF[s], IF[s], value=-1, out=K_IF[s])
            K_I[s].mul_(g)
            K_F[s].mul_(C[s])
            torch.addcmul(minus_one, g, g, out=K_G[s])
            torch.addcmul(zero, K_G[s], I[s], value=-0.5, out=K_G[s])
            K_C[s].copy_(F[s])
            torch.addcmul(O[s], h, tc, value=-1, out=ODT[s])


def _backward_steps(
    da: Tensor, coef: Tensor, o_dtanh: Tensor, w_hh: Tensor, d_cT: Tensor, reverse: bool
) -> None:
    """The backward recursion, in place on ``da (T, N, 5H)``; per-step views stay local.

    On entry ``da``'s first block holds ``dout`` (plus ``d_hT`` at the last processed step);
    on exit its blocks hold ``(da_o, da_i, da_f, da_g, dc_{s-1})`` of every step.
    """
    T, H = da.shape[0], da.shape[2] // 5
    back = not reverse  # the backward pass visits the steps in the opposite order

    steps = partial(step_views, reverse=back)

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


def _local_factors(
    gates: Tensor, cs: Tensor, tcs: Tensor, hs: Tensor, coef: Tensor, o_dtanh: Tensor, reverse: bool
) -> None:
    """Write the factors of every step that do not depend on the recursion, all at once.

    ``coef (T, N, 5H)`` gets ``(h (1 − o), g σ'(i), c_{s-1} σ'(f), i (1 − g²) / 2, f)`` and
    ``o_dtanh (T, N, H)`` gets ``∂h/∂c = o (1 − tanh² c) = o − h tanh(c)``.
    """
    H = hs.shape[2]
    o, i, f, g = gates.split(H, dim=2)  # each (T, N, H), time order
    c_prev = cs[1:] if reverse else cs[:-1]  # c_{s-1} of every step, time order
    coef_o, coef_i, coef_f, coef_g, coef_c = coef.split(H, dim=2)
    torch.addcmul(hs, hs, o, value=-1, out=coef_o)  # h (1 − o) = tanh(c) σ'(o)
    if_ = gates[..., H : 3 * H]
    torch.addcmul(if_, if_, if_, value=-1, out=coef[..., H : 3 * H])  # σ'(i), σ'(f)
    coef_i.mul_(g)
    coef_f.mul_(c_prev)
    # the loop's g block is a'_g = 2 a_g, and ∂g/∂a'_g = (1 − g²) / 2
    zero, minus_one = (hs.new_full((), v) for v in (0.0, -1.0))
    torch.addcmul(minus_one, g, g, out=coef_g)  # g² − 1
    torch.addcmul(zero, coef_g, i, value=-0.5, out=coef_g)  # i (1 − g²) / 2
    coef_c.copy_(f)  # dc_{s-1} = dc ⊙ f
    torch.addcmul(o, hs, tcs, value=-1, out=o_dtanh)


class LSTMLoop(torch.autograd.Function):
    """``(xw, h0, c0, w_hh, reverse, backward)`` → ``(out, h_T, c_T)`` in the loop's layout.

    Shapes: ``xw (T, N, 4H)`` the input projections with both biases folded in, in time
    order; ``h0, c0 (N, H)``; ``w_hh (4H, H)``; ``out (T, N, H)`` in time order. The gate
    blocks of ``xw`` and ``w_hh`` are in the order o, i, f, g with the g block doubled, as
    :func:`to_oifg` makes them. ``backward`` says whether a gradient may be asked for; only
    then are the local factors computed and saved (:func:`lstm_loop` decides).
    """

    @staticmethod
    def forward(
        ctx: Any,
        xw: Tensor,
        h0: Tensor,
        c0: Tensor,
        w_hh: Tensor,
        reverse: bool,
        backward: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        T, N, G = xw.shape
        H = G // 4
        gates = xw.clone()  # each step adds W_hh h_{s-1}, then activates in place
        cs = xw.new_empty(T + 1, N, H)  # the cell before and after every step, time order
        tcs = xw.new_empty(T, N, H)  # tanh(c_s)
        hs = xw.new_empty(T, N, H)  # h_s, the output
        first_c, last_c = (T, 0) if reverse else (0, T)
        # the backward pass needs only the local factors: computed here, while the
        # activations are still in the cache, and only when a gradient will be asked for
        # (the buffers are made outside inference mode, so that they can be saved)
        if backward:
            factors = xw.new_empty(T, N, 6 * H)
            coef, o_dtanh = factors.split([5 * H, H], dim=2)
        # the loop reads and writes these buffers only: no autograd bookkeeping at all
        with loop_context():
            cs[first_c].copy_(c0)
            per_step = backward and N * H >= PER_STEP_FACTORS
            _forward_steps(
                gates, cs, tcs, hs, h0, w_hh, reverse, (coef, o_dtanh) if per_step else None
            )
            if backward and not per_step:
                _local_factors(gates, cs, tcs, hs, coef, o_dtanh, reverse)
        ctx.reverse = reverse
        if backward:
            ctx.save_for_backward(coef, o_dtanh, hs, h0, w_hh)
        last = 0 if reverse else T - 1
        return hs, hs[last].clone(), cs[last_c].clone()

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, d_out: Tensor, d_hT: Tensor, d_cT: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, None, None]:
        coef, o_dtanh, hs, h0, w_hh = ctx.saved_tensors
        reverse = ctx.reverse
        T, N, H = hs.shape
        G = 4 * H
        da = coef.new_empty(T, N, 5 * H)
        first, last = (T - 1, 0) if reverse else (0, T - 1)  # in processing order
        with loop_context():
            # da holds (dh, dc, dc, dc, dc) until multiplied by coef, which leaves
            # (da_o, da_i, da_f, da_g) and dc_{s-1} in place; dh starts as dout
            da[..., :H].copy_(d_out)
            da[last, :, :H].add_(d_hT)
            # ∂h/∂c seen four times: for i, f, g and dc_{s-1}
            o_dtanh4 = o_dtanh.unsqueeze(2).expand(T, N, 4, H)
            _backward_steps(da, coef, o_dtanh4, w_hh, d_cT, reverse)
        d_xw = da[..., :G]
        # dW_hh = Σ_s da_s h_{s-1}ᵀ: h_{s-1} is h0 for the first processed step and the
        # neighbouring output otherwise, so two products cover all steps without a copy
        # (the rows of da are evenly spaced, so its first four blocks are a matrix view)
        rest = slice(0, (T - 1) * N) if reverse else slice(N, T * N)
        dh0 = d_xw[first] @ w_hh
        h_prev_rest = hs[1:] if reverse else hs[:-1]
        dw_hh = d_xw[first].t() @ h0
        if T > 1:
            da_rest = da.view(T * N, 5 * H)[rest, :G]  # ((T − 1) N, 4H)
            dw_hh.addmm_(da_rest.t(), h_prev_rest.reshape(-1, H))
        return d_xw, dh0, da[first, :, G:].clone(), dw_hh, None, None


def lstm_loop(
    xw: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, reverse: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Run :class:`LSTMLoop`; all tensors with gates in o, i, f, g order (see the module)."""
    # inside the function's forward grad mode is always off: decide here whether autograd
    # records the call, so that a forward pass without gradients skips the local factors
    backward = torch.is_grad_enabled() and any(t.requires_grad for t in (xw, h0, c0, w_hh))
    return LSTMLoop.apply(xw, h0, c0, w_hh, reverse, backward)
