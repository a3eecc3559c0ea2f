"""Reference implementations of every graded function of the three assignments.

The conventions are those of the assignment contract, not of ``torch.nn``: batch-first
inputs, weights that multiply from the right (``x @ Wx``, ``h @ Wh``), one bias per layer,
and the lecture GRU with gate blocks ``u, r, c`` (reset applied before the recurrent
product, ``u`` weighting the candidate). Forward functions are plain torch; every gradient
comes from ``torch.autograd`` on the reference forward, never from a hand-written backward,
so that the grader compares students' BPTT with an independent computation.

Shapes: N = batch, T = sequence length, D = input size, H = hidden size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from rnn_course.validation import expect_floating, expect_shape, expect_tensor

Params = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (Wx, Wh, b)


def _check_rnn_args(x: torch.Tensor, h0: torch.Tensor, Wx, Wh, b, *, gates: int) -> None:
    """Validate ``x (N, T, D)`` or ``(N, D)``, ``h0 (N, H)`` and stacked-gate weights."""
    for name, value in (("x", x), ("h0", h0), ("Wx", Wx), ("Wh", Wh), ("b", b)):
        expect_floating(name, expect_tensor(name, value))
    expect_shape("h0", h0, (x.shape[0] if x.dim() else None, None), "(N, H)")
    H = h0.shape[1]
    expect_shape("Wx", Wx, (x.shape[-1], gates * H), "(D, G*H)")
    expect_shape("Wh", Wh, (H, gates * H), "(H, G*H)")
    expect_shape("b", b, (gates * H,), "(G*H,)")


# --------------------------------------------------------------------------- vanilla RNN


def rnn_step_forward(
    x: torch.Tensor, h_prev: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """One step of the tanh RNN: ``x (N, D), h_prev (N, H)`` -> ``h_next (N, H)``."""
    # h_t = tanh(x_t Wx + h_{t-1} Wh + b)
    return torch.tanh(x @ Wx + h_prev @ Wh + b)


def rnn_forward(
    x: torch.Tensor, h0: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Run the tanh RNN over ``x (N, T, D)`` from ``h0 (N, H)``; return ``h (N, T, H)``.

    ``h[:, t]`` is the state after reading ``x[:, t]``; ``h0`` is not part of the output.
    """
    expect_shape("x", expect_tensor("x", x), (None, None, None), "(N, T, D)")
    _check_rnn_args(x, h0, Wx, Wh, b, gates=1)
    xw = torch.einsum("ntd,dh->tnh", x, Wx) + b  # (T, N, H), all input products at once
    h, states = h0, []
    for xw_t in xw.unbind(0):
        h = torch.tanh(xw_t + h @ Wh)  # (N, H)
        states.append(h)
    return torch.stack(states, dim=1)  # (N, T, H)


def clip_grad_norm(
    grads: Mapping[str, torch.Tensor], max_norm: float
) -> tuple[dict[str, torch.Tensor], float]:
    """Clip a dict of gradients by their global L2 norm; return ``(clipped, total_norm)``.

    ``total_norm`` is measured before clipping. Unlike ``torch.nn.utils.clip_grad_norm_``
    there is no ``1e-6`` in the denominator and arrays below the threshold are unchanged.
    """
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must be a dict of tensors, got {type(grads).__name__}")
    if max_norm <= 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    # ||g|| = sqrt(sum over all arrays of sum of squares)
    total = float(
        torch.sqrt(
            sum(
                ((g.double() ** 2).sum() for g in grads.values()),
                torch.zeros((), dtype=torch.float64),
            )
        )
    )
    scale = max_norm / total if total > max_norm else 1.0
    return {k: g * scale for k, g in grads.items()}, total


# --------------------------------------------------------------------------- gated cells


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """The logistic function ``1 / (1 + exp(-x))``, elementwise."""
    return torch.sigmoid(x)


def lstm_step_forward(
    x: torch.Tensor,
    h_prev: torch.Tensor,
    c_prev: torch.Tensor,
    Wx: torch.Tensor,
    Wh: torch.Tensor,
    b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step with gate blocks ``i, f, g, o``; return ``(h_next, c_next)``, each (N, H)."""
    H = h_prev.shape[1]
    a = x @ Wx + h_prev @ Wh + b  # (N, 4H)
    i, f, o = (torch.sigmoid(a[:, k * H : (k + 1) * H]) for k in (0, 1, 3))
    g = torch.tanh(a[:, 2 * H : 3 * H])
    # c_t = f ⊙ c_{t-1} + i ⊙ g
    c_next = f * c_prev + i * g
    # h_t = o ⊙ tanh(c_t)
    h_next = o * torch.tanh(c_next)
    return h_next, c_next


def lstm_forward(
    x: torch.Tensor, h0: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Run the LSTM over ``x (N, T, D)`` from ``h0`` and a zero cell state; ``h (N, T, H)``."""
    expect_shape("x", expect_tensor("x", x), (None, None, None), "(N, T, D)")
    _check_rnn_args(x, h0, Wx, Wh, b, gates=4)
    h, c, states = h0, torch.zeros_like(h0), []
    for t in range(x.shape[1]):
        h, c = lstm_step_forward(x[:, t], h, c, Wx, Wh, b)
        states.append(h)
    return torch.stack(states, dim=1)


def gru_step_forward(
    x: torch.Tensor, h_prev: torch.Tensor, Wx: torch.Tensor, Wh: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """One step of the lecture GRU (blocks ``u, r, c``); return ``h_next (N, H)``.

    The reset gate multiplies ``h_prev`` *before* the recurrent product and ``u`` weights
    the candidate, so this is not ``torch.nn.GRU`` (which resets after the product and
    weights ``h_prev`` with its update gate ``z = 1 - u``).
    """
    H = h_prev.shape[1]
    xw = x @ Wx + b  # (N, 3H)
    hw = h_prev @ Wh[:, : 2 * H]  # (N, 2H), the u and r blocks
    # u = σ(x Wx_u + h Wh_u + b_u), r = σ(x Wx_r + h Wh_r + b_r)
    u = torch.sigmoid(xw[:, :H] + hw[:, :H])
    r = torch.sigmoid(xw[:, H : 2 * H] + hw[:, H:])
    # h̃ = tanh(x Wx_c + (r ⊙ h) Wh_c + b_c)
    cand = torch.tanh(xw[:, 2 * H :] + (r * h_prev) @ Wh[:, 2 * H :])
    # h_t = (1 - u) ⊙ h_{t-1} + u ⊙ h̃
    return (1 - u) * h_prev + u * cand


# --------------------------------------------------------------------------- deep and bidirectional


def birnn_forward(
    x: torch.Tensor,
    h0_fwd: torch.Tensor,
    h0_bwd: torch.Tensor,
    params_fwd: Params,
    params_bwd: Params,
) -> torch.Tensor:
    """Bidirectional tanh RNN: ``h (N, T, 2H)``, forward states then backward states.

    ``h[:, t, H:]`` is the backward RNN's state after reading ``x[:, T-1], ..., x[:, t]``.
    """
    h_f = rnn_forward(x, h0_fwd, *params_fwd)  # (N, T, H)
    h_b = rnn_forward(x.flip(1), h0_bwd, *params_bwd).flip(1)  # (N, T, H), back in time order
    return torch.cat([h_f, h_b], dim=2)


def stacked_rnn_forward(
    x: torch.Tensor,
    h0s: Sequence[torch.Tensor],
    layers: Sequence[Params],
    residual: bool = False,
) -> torch.Tensor:
    """Stack tanh RNN layers; return the top layer's output ``(N, T, H_L)``.

    With ``residual=True`` every layer above the first adds its input to its states.
    """
    if len(h0s) != len(layers) or not layers:
        raise ValueError(
            f"h0s and layers must be non-empty and of equal length, got {len(h0s)} and "
            f"{len(layers)}"
        )
    out = x
    for l, (h0, params) in enumerate(zip(h0s, layers, strict=True)):
        h = rnn_forward(out, h0, *params)  # (N, T, H_l)
        if residual and l > 0:
            if h.shape != out.shape:
                raise ValueError(
                    f"a residual layer needs equal input and output sizes, layer {l} maps "
                    f"{out.shape[-1]} to {h.shape[-1]}"
                )
            h = h + out
        out = h
    return out


def highway_forward(
    x: torch.Tensor, W_h: torch.Tensor, b_h: torch.Tensor, W_t: torch.Tensor, b_t: torch.Tensor
) -> torch.Tensor:
    """Highway layer on ``x (N, D)``: ``y = t ⊙ tanh(x W_h + b_h) + (1 - t) ⊙ x``."""
    # t = σ(x W_t + b_t)
    t = torch.sigmoid(x @ W_t + b_t)
    return t * torch.tanh(x @ W_h + b_h) + (1 - t) * x


# --------------------------------------------------------------------------- gradients by autograd


def _vjp(
    forward: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]],
    inputs: dict[str, torch.Tensor],
    upstream: Sequence[torch.Tensor],
    prefix: str = "d",
) -> dict[str, torch.Tensor]:
    """Gradients of ``sum_k <upstream_k, output_k>`` w.r.t. every input, named ``d<input>``."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items()}
    with torch.enable_grad():
        out = forward(*leaves.values())
        outs = out if isinstance(out, tuple) else (out,)
        grads = torch.autograd.grad(
            outs, list(leaves.values()), grad_outputs=list(upstream), allow_unused=True
        )
    return {
        prefix + k: (torch.zeros_like(v) if g is None else g)
        for (k, v), g in zip(leaves.items(), grads, strict=True)
    }


def rnn_step_backward_reference(
    dh_next: torch.Tensor,
    x: torch.Tensor,
    h_prev: torch.Tensor,
    Wx: torch.Tensor,
    Wh: torch.Tensor,
    b: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """``dx, dh_prev, dWx, dWh, db`` of one RNN step for upstream ``dh_next (N, H)``."""
    args = {"x": x, "h_prev": h_prev, "Wx": Wx, "Wh": Wh, "b": b}
    return _vjp(rnn_step_forward, args, [dh_next])


def rnn_backward_reference(
    dh: torch.Tensor,
    x: torch.Tensor,
    h0: torch.Tensor,
    Wx: torch.Tensor,
    Wh: torch.Tensor,
    b: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Full BPTT for upstream ``dh (N, T, H)``: ``dx (N, T, D), dh0, dWx, dWh, db``."""
    return _vjp(rnn_forward, {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b}, [dh])


def grad_norms_through_time_reference(
    dh_last: torch.Tensor,
    x: torch.Tensor,
    h0: torch.Tensor,
    Wx: torch.Tensor,
    Wh: torch.Tensor,
    b: torch.Tensor,
) -> torch.Tensor:
    """``norms (T,)``: Frobenius norm of dJ/dh[:, t] when J depends on the last state only."""
    T = x.shape[1]
    with torch.enable_grad():
        # h0 as a leaf that requires grad makes every state part of the graph
        h = h0.detach().clone().requires_grad_(True)
        xw = x.detach() @ Wx.detach() + b.detach()  # (N, T, H)
        states = []
        for t in range(T):
            h = torch.tanh(xw[:, t] + h @ Wh.detach())
            states.append(h)
        grads = torch.autograd.grad(states[-1], states, grad_outputs=dh_last)
    # torch.linalg.norm over the whole (N, H) array is the Frobenius norm over the batch
    return torch.stack([torch.linalg.norm(g) for g in grads])


def lstm_step_backward_reference(
    dh_next: torch.Tensor,
    dc_next: torch.Tensor,
    x: torch.Tensor,
    h_prev: torch.Tensor,
    c_prev: torch.Tensor,
    Wx: torch.Tensor,
    Wh: torch.Tensor,
    b: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """``dx, dh_prev, dc_prev, dWx, dWh, db`` of one LSTM step."""
    args = {"x": x, "h_prev": h_prev, "c_prev": c_prev, "Wx": Wx, "Wh": Wh, "b": b}
    return _vjp(lstm_step_forward, args, [dh_next, dc_next])


def lstm_backward_reference(
    dh: torch.Tensor,
    x: torch.Tensor,
    h0: torch.Tensor,
    Wx: torch.Tensor,
    Wh: torch.Tensor,
    b: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """BPTT through the LSTM: ``dx (N, T, D), dh0, dWx, dWh, db``."""
    return _vjp(lstm_forward, {"x": x, "h0": h0, "Wx": Wx, "Wh": Wh, "b": b}, [dh])


def gru_step_backward_reference(
    dh_next: torch.Tensor,
    x: torch.Tensor,
    h_prev: torch.Tensor,
    Wx: torch.Tensor,
    Wh: torch.Tensor,
    b: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """``dx, dh_prev, dWx, dWh, db`` of one lecture-GRU step."""
    args = {"x": x, "h_prev": h_prev, "Wx": Wx, "Wh": Wh, "b": b}
    return _vjp(gru_step_forward, args, [dh_next])
