r"""The LSTM time loop as one autograd function with a hand-written backward pass.

Autograd records about ten nodes per time step of an LSTM; at small sizes their
bookkeeping, not the arithmetic, dominates the time. :class:`LSTMLoop` runs the loop
without recording, keeps the gate activations, and backpropagates through time with the
explicit recursion below, five tensor operations per step. The products that do not
depend on the recursion (``dW_hh``) are one matrix product after the loop; ``dW_ih``,
the biases and the input's gradient flow through the projection ``xw`` that the caller
computed outside the loop (autograd handles that single ``addmm``).

The gate blocks are in the order **o, i, f, g** (not :mod:`torch.nn`'s i, f, g, o): the
three sigmoid gates are contiguous for one ``sigmoid_`` in the forward pass, and the three
gates whose gradient scales with ``dc`` are contiguous for one product in the backward
pass. :func:`to_oifg` reorders a weight or bias.

Forward, per step (``s`` is the processing order, reversed for the backward direction):

.. math::
    \begin{aligned}
    (o, i, f, g) &= (\sigma, \sigma, \sigma, \tanh)(xw_s + W_{hh} h_{s-1}) \\
    c_s &= f \odot c_{s-1} + i \odot g, \qquad h_s = o \odot \tanh(c_s)
    \end{aligned}

Backward, with ``dh_s = dout_s + W_{hh}^T da_{s+1}`` (``da`` the pre-activation gradient):

.. math::
    \begin{aligned}
    dc &\mathrel{+}= dh_s \odot o \odot (1 - \tanh^2 c_s) \\
    da_o &= dh_s \odot \tanh(c_s) \odot o(1-o), \quad
    da_i = dc \odot g \odot i(1-i), \\
    da_f &= dc \odot c_{s-1} \odot f(1-f), \quad
    da_g = dc \odot i \odot (1-g^2), \qquad dc_{s-1} = dc \odot f
    \end{aligned}
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
        gates = torch.empty_like(xw)  # activations, processing order
        cs = xw.new_empty(T + 1, N, H)  # cs[s] = c_{s-1}: cs[0] = c0
        tcs = xw.new_empty(T, N, H)  # tanh(c_s)
        hs = xw.new_empty(T, N, H)  # h_s, processing order
        cs[0] = c0
        w_hh_t = w_hh.t()
        # per-step views, made once (unbind is one call for all T steps)
        xs = xw.unbind(0)[::-1] if reverse else xw.unbind(0)
        A, SIG, TANH = (v.unbind(0) for v in (gates, gates[..., : 3 * H], gates[..., 3 * H :]))
        O, I, F, G_ = (v.unbind(0) for v in gates.split(H, dim=2))
        C, TC, HS = cs.unbind(0), tcs.unbind(0), hs.unbind(0)
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
        out = hs.flip(0) if reverse else hs.clone()
        return out, hs[T - 1].clone(), cs[T].clone()

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, d_out: Tensor, d_hT: Tensor, d_cT: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, None]:
        gates, cs, tcs, hs, h0, w_hh = ctx.saved_tensors
        reverse = ctx.reverse
        T, N, G = gates.shape
        H = G // 4
        d_out = d_out.flip(0) if reverse else d_out  # processing order
        o, i, f, g = gates.split(H, dim=2)  # each (T, N, H)
        sig = gates[..., : 3 * H]
        # local factors of every step at once: the gradient of each pre-activation is
        # dh ⊙ coef_o (o) or dc ⊙ coef_ifg (i, f, g)
        dsig = sig * (1 - sig)  # σ' for o, i, f
        coef = torch.empty_like(gates)
        coef[..., :H] = tcs * dsig[..., :H]  # tanh(c) σ'(o)
        coef[..., H : 2 * H] = g * dsig[..., H : 2 * H]  # g σ'(i)
        coef[..., 2 * H : 3 * H] = cs[:-1] * dsig[..., 2 * H :]  # c_{s-1} σ'(f)
        coef[..., 3 * H :] = i * (1 - g * g)  # i tanh'(g)
        o_dtanh = o * (1 - tcs * tcs)  # ∂h/∂c = o ⊙ (1 − tanh² c)
        coef_o, coef_ifg = coef[..., :H], coef[..., H:].unflatten(-1, (3, H))  # (T, N, 3, H)
        da = torch.empty_like(gates)
        DA, DA_O = da.unbind(0), da[..., :H].unbind(0)
        DA_IFG = da[..., H:].unflatten(-1, (3, H)).unbind(0)
        COEF_O, COEF_IFG = coef_o.unbind(0), coef_ifg.unbind(0)
        ODT, F_, DOUT = o_dtanh.unsqueeze(2).unbind(0), f.unsqueeze(2).unbind(0), d_out.unbind(0)
        dh = DOUT[T - 1] + d_hT
        dc = d_cT.unsqueeze(1)  # (N, 1, H), broadcasts over the three gates i, f, g
        for s in range(T - 1, -1, -1):
            if s < T - 1:
                # dh_s = dout_s + W_hhᵀ da_{s+1}
                dh = torch.addmm(DOUT[s], DA[s + 1], w_hh)
            # dc += dh ⊙ o ⊙ (1 − tanh² c_s)
            dc = torch.addcmul(dc, dh.unsqueeze(1), ODT[s])
            # da_o = dh ⊙ tanh(c_s) ⊙ σ'(o)
            torch.mul(dh, COEF_O[s], out=DA_O[s])
            # (da_i, da_f, da_g) = dc ⊙ (g σ'(i), c_{s-1} σ'(f), i tanh'(g))
            torch.mul(dc, COEF_IFG[s], out=DA_IFG[s])
            # dc_{s-1} = dc ⊙ f
            dc = dc * F_[s]
        dc = dc.squeeze(1)
        dh0 = da[0] @ w_hh
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]])  # (T, N, H)
        # dW_hh = Σ_s da_s h_{s-1}ᵀ, one matrix product over all steps
        dw_hh = da.view(T * N, G).t() @ h_prev.view(T * N, H)
        d_xw = da.flip(0) if reverse else da
        return d_xw, dh0, dc, dw_hh, None


def lstm_loop(
    xw: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, reverse: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Run :class:`LSTMLoop`; all tensors with gates in o, i, f, g order (see the module)."""
    return LSTMLoop.apply(xw, h0, c0, w_hh, reverse)
