r"""The LSTM time loop as one autograd function with a hand-written backward pass.

Autograd records about ten nodes per time step of an LSTM; at small sizes their
bookkeeping, not the arithmetic, dominates the time. :class:`LSTMLoop` runs the loop
without recording, keeps the gate activations, and backpropagates through time with the
explicit recursion below, three tensor operations per step. Everything that does not depend
on the recursion is computed for all steps at once: the local derivatives of the gates
before the loop, ``dW_hh`` as one matrix product after it; ``dW_ih``, the biases and the
input's gradient flow through the projection ``xw`` that the caller computed outside the
loop (autograd handles that single ``addmm``).

The gate blocks are in the order **o, i, f, g** (not :mod:`torch.nn`'s i, f, g, o): the
three sigmoid gates are contiguous for one ``sigmoid_`` in the forward pass, and the three
gates whose gradient scales with ``dc`` are contiguous in the backward pass.
:func:`to_oifg` reorders a weight or bias.

All buffers are in time order; the backward direction (``reverse=True``) only visits the
steps from last to first, so that nothing is flipped.

Forward, per step (``s`` is the processing order):

.. math::
    \begin{aligned}
    (o, i, f, g) &= (\sigma, \sigma, \sigma, \tanh)(xw_s + W_{hh} h_{s-1}) \\
    c_s &= f \odot c_{s-1} + i \odot g, \qquad h_s = o \odot \tanh(c_s)
    \end{aligned}

Backward, with ``dh_s = dout_s + W_{hh}^T da_{s+1}`` (``da`` the pre-activation gradient):

.. math::
    \begin{aligned}
    dc &\mathrel{+}= dh_s \odot o \odot (1 - \tanh^2 c_s) \\
    (da_o, da_i, da_f, da_g) &= (dh_s, dc, dc, dc) \odot
        (h_s (1-o),\; g\, i(1-i),\; c_{s-1} f(1-f),\; i (1-g^2)) \\
    dc_{s-1} &= dc \odot f
    \end{aligned}

(``h_s (1 − o) = tanh(c_s) σ'(o)`` because ``h_s = o tanh(c_s)``.)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def to_oifg(w: Tensor) -> Tensor:
    """Reorder the gate blocks of a weight ``(4H, ·)`` or bias ``(4H,)`` from i, f, g, o."""
    i, f, g, o = w.chunk(4, dim=0)
    return torch.cat([o, i, f, g])


def _order(steps: tuple[Tensor, ...], reverse: bool) -> tuple[Tensor, ...]:
    """Per-step views in processing order."""
    return steps[::-1] if reverse else steps


class LSTMLoop(torch.autograd.Function):
    """``(xw, h0, c0, w_hh, reverse)`` → ``(out, h_T, c_T)`` with gates in o, i, f, g order.

    Shapes: ``xw (T, N, 4H)`` the input projections with both biases folded in, in time
    order; ``h0, c0 (N, H)``; ``w_hh (4H, H)``; ``out (T, N, H)`` in time order.
    """

    @staticmethod
    def forward(
        ctx: Any, xw: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, reverse: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        T, N, G = xw.shape
        H = G // 4
        gates = torch.empty_like(xw)  # activations (o, i, f, g)
        cs = xw.new_empty(T + 1, N, H)  # the cell before and after every step
        tcs = xw.new_empty(T, N, H)  # tanh(c_s)
        hs = xw.new_empty(T, N, H)  # h_s, the output
        # the loop reads and writes these buffers only: no autograd bookkeeping at all
        with torch.inference_mode():
            w_hh_t = w_hh.t()
            # per-step views in processing order, made once (unbind is one call for T steps);
            # C[s] is the cell before step s and C[s + 1] the cell after it
            xs = _order(xw.unbind(0), reverse)
            A, SIG, TANH = (
                _order(v.unbind(0), reverse)
                for v in (gates, gates[..., : 3 * H], gates[..., 3 * H :])
            )
            O, I, F, G_ = (_order(v.unbind(0), reverse) for v in gates.split(H, dim=2))
            C = _order(cs.unbind(0), reverse)
            TC, HS = _order(tcs.unbind(0), reverse), _order(hs.unbind(0), reverse)
            C[0].copy_(c0)
            h = h0
            for s in range(T):
                # a = xw_t + W_hh h_{s-1}
                torch.addmm(xs[s], h, w_hh_t, out=A[s])
                # o, i, f = σ(a_oif); g = tanh(a_g)
                SIG[s].sigmoid_()
                TANH[s].tanh_()
                # c_s = f ⊙ c_{s-1} + i ⊙ g
                c = torch.mul(F[s], C[s], out=C[s + 1]).addcmul_(I[s], G_[s])
                # h_s = o ⊙ tanh(c_s)
                h = torch.mul(O[s], torch.tanh(c, out=TC[s]), out=HS[s])
        ctx.reverse = reverse
        ctx.save_for_backward(gates, cs, tcs, hs, h0, w_hh)
        last = 0 if reverse else T - 1
        return hs, hs[last].clone(), cs[0 if reverse else T].clone()

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, d_out: Tensor, d_hT: Tensor, d_cT: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, None]:
        gates, cs, tcs, hs, h0, w_hh = ctx.saved_tensors
        reverse = ctx.reverse
        T, N, G = gates.shape
        H = G // 4
        coef = gates.new_empty(T, N, 5 * H)
        da = torch.empty_like(coef)
        with torch.inference_mode():
            o, i, f, g = gates.split(H, dim=2)  # each (T, N, H), time order
            c_prev = cs[1:] if reverse else cs[:-1]  # c_{s-1} of every step, time order
            # local factors of every step at once, in one buffer of five blocks:
            # (h (1 − o), g σ'(i), c_{s-1} σ'(f), i (1 − g²), f)
            coef_o, coef_i, coef_f, coef_g, coef_c = coef.split(H, dim=2)
            torch.addcmul(hs, hs, o, value=-1, out=coef_o)  # h (1 − o) = tanh(c) σ'(o)
            if_ = gates[..., H : 3 * H]
            torch.addcmul(if_, if_, if_, value=-1, out=coef[..., H : 3 * H])  # σ'(i), σ'(f)
            coef_i.mul_(g)
            coef_f.mul_(c_prev)
            torch.addcmul(i, i * g, g, value=-1, out=coef_g)  # i (1 − g²)
            coef_c.copy_(f)  # dc_{s-1} = dc ⊙ f
            # ∂h/∂c = o (1 − tanh² c) = o − h tanh(c), seen four times: for i, f, g and dc_{s-1}
            o_dtanh = torch.addcmul(o, hs, tcs, value=-1).unsqueeze(2).expand(T, N, 4, H)
            # da holds (dh, dc, dc, dc, dc) until multiplied by coef, which leaves
            # (da_o, da_i, da_f, da_g) and dc_{s-1} in place
            back = not reverse  # the backward pass visits the steps in the opposite order

            def steps(v: Tensor) -> tuple[Tensor, ...]:
                return _order(v.unbind(0), back)

            DA, DA4, DOUT = steps(da), steps(da[..., : 4 * H]), steps(d_out)
            DH, DH1 = steps(da[..., :H]), steps(da[..., :H].unsqueeze(2))
            DC, DC4 = steps(da[..., 4 * H :].unsqueeze(2)), steps(da[..., H:].unflatten(-1, (4, H)))
            COEF, ODT = steps(coef), steps(o_dtanh)
            torch.add(DOUT[0], d_hT, out=DH[0])
            dc = d_cT.unsqueeze(1)  # (N, 1, H)
            for k in range(T):  # k counts back from the last processed step
                if k > 0:
                    # dh_s = dout_s + W_hhᵀ da_{s+1}, written into the first block
                    torch.addmm(DOUT[k], DA4[k - 1], w_hh, out=DH[k])
                    dc = DC[k - 1]
                # dc += dh ⊙ o ⊙ (1 − tanh² c_s), written into the other four blocks
                torch.addcmul(dc, DH1[k], ODT[k], out=DC4[k])
                # (da_o, da_i, da_f, da_g, dc_{s-1}) = (dh, dc, dc, dc, dc) ⊙ coef
                DA[k].mul_(COEF[k])
        d_xw = da[..., : 4 * H]
        # dW_hh = Σ_s da_s h_{s-1}ᵀ: h_{s-1} is h0 for the first processed step and the
        # neighbouring output otherwise, so two products cover all steps without a copy
        first, rest = (T - 1, slice(0, T - 1)) if reverse else (0, slice(1, T))
        dh0 = d_xw[first] @ w_hh
        h_prev_rest = hs[1:] if reverse else hs[:-1]
        dw_hh = d_xw[first].t() @ h0
        if T > 1:
            dw_hh.addmm_(d_xw[rest].reshape(-1, G).t(), h_prev_rest.reshape(-1, H))
        return d_xw, dh0, da[first, :, 4 * H :].clone(), dw_hh, None


def lstm_loop(
    xw: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, reverse: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Run :class:`LSTMLoop`; all tensors with gates in o, i, f, g order (see the module)."""
    return LSTMLoop.apply(xw, h0, c0, w_hh, reverse)
