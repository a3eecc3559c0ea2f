"""One time step of the Elman RNN, the LSTM and the GRU, with :mod:`torch.nn`'s layout.

Each cell has the parameters ``weight_ih (G·H, H_in)``, ``weight_hh (G·H, H)``,
``bias_ih (G·H,)`` and ``bias_hh (G·H,)`` with G = 1 (RNN), 4 (LSTM, gates i, f, g, o)
or 3 (GRU, gates r, z, n) stacked along the first dimension, exactly as in
:class:`torch.nn.RNNCell`, :class:`torch.nn.LSTMCell` and :class:`torch.nn.GRUCell`, so a
state dict loads both ways. Every weight and bias starts as U(−1/√H, 1/√H).

The layers in :mod:`rnn_course.layers` do not call these modules step by step; they run
the same equations in a time loop with the input projection of all steps hoisted out.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnn_course.validation import (
    expect_choice,
    expect_floating,
    expect_positive_int,
    expect_same_device_and_dtype,
    expect_shape,
    expect_tensor,
)


def init_uniform_(parameters: list[Tensor], hidden_size: int) -> None:
    """Fill every tensor with U(−1/√H, 1/√H), :mod:`torch.nn`'s recurrent initialization."""
    bound = 1.0 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in parameters:
            p.uniform_(-bound, bound)


class _CellBase(nn.Module):
    """Parameters, initialization and argument checks shared by the three cells."""

    num_gates: int = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        super().__init__()
        expect_positive_int("input_size", input_size)
        expect_positive_int("hidden_size", hidden_size)
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bool(bias)
        G, H = self.num_gates, hidden_size
        kw = {"device": device, "dtype": dtype}
        self.weight_ih = nn.Parameter(torch.empty(G * H, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(G * H, H, **kw))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(G * H, **kw))
            self.bias_hh = nn.Parameter(torch.empty(G * H, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every weight and bias from U(−1/√H, 1/√H)."""
        init_uniform_(list(self.parameters()), self.hidden_size)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        return text if self.bias else text + ", bias=False"

    def _check(
        self, input: object, states: tuple[object, ...], names: tuple[str, ...]
    ) -> tuple[Tensor, list[Tensor], bool]:
        """Validate ``input`` and the states; return them batched, and whether to unbatch.

        ``states`` holds ``None`` (zeros) or tensors of shape ``(N, H)`` (``(H,)`` for an
        unbatched input).
        """
        x = expect_tensor("input", input)
        expect_floating("input", x)
        if x.dim() not in (1, 2):
            raise ValueError(
                f"input must have shape (N, H_in) or (H_in,) with H_in={self.input_size}, "
                f"got {tuple(x.shape)}"
            )
        unbatched = x.dim() == 1
        if unbatched:
            expect_shape("input", x, (self.input_size,), "(H_in,)")
            x = x.unsqueeze(0)
        else:
            expect_shape("input", x, (None, self.input_size), "(N, H_in)")
        expect_same_device_and_dtype(weight_ih=self.weight_ih, input=x)
        N, H = x.shape[0], self.hidden_size
        out = []
        for name, s in zip(names, states, strict=True):
            if s is None:
                out.append(x.new_zeros(N, H))
                continue
            s = expect_tensor(name, s)
            if unbatched:
                expect_shape(name, s, (H,), "(H,)")
                s = s.unsqueeze(0)
            else:
                expect_shape(name, s, (N, H), "(N, H)")
            expect_same_device_and_dtype(input=x, **{name: s})
            out.append(s)
        return x, out, unbatched

    def _project(self, x: Tensor) -> Tensor:
        """W_ih x + b_ih + W_hh·0 + b_hh folded: ``x (N, H_in)`` → ``(N, G·H)``."""
        if self.bias_ih is None:
            return x @ self.weight_ih.t()
        return torch.addmm(self.bias_ih + self.bias_hh, x, self.weight_ih.t())


class RNNCell(_CellBase):
    r"""The Elman cell, one step: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``.

    Args:
        input_size: features of the input ``H_in``.
        hidden_size: features of the state ``H``.
        bias: learn ``bias_ih`` and ``bias_hh`` (default ``True``).
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.
        device, dtype: where and in which precision the parameters are created.

    Shape:
        input ``(N, H_in)`` or ``(H_in,)``; hx ``(N, H)`` or ``(H,)``, default zeros;
        output ``(N, H)`` or ``(H,)``.

    .. math::
        h' = \phi(W_{ih} x + b_{ih} + W_{hh} h + b_{hh}), \qquad \phi \in \{\tanh, \mathrm{relu}\}
    """

    num_gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        expect_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__(input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.nonlinearity == "tanh" else text + ", nonlinearity='relu'"

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """Return the next state ``h'`` (same batching as ``input``)."""
        x, (h,), unbatched = self._check(input, (hx,), ("hx",))
        # a = W_ih x + b_ih + W_hh h + b_hh
        a = torch.addmm(self._project(x), h, self.weight_hh.t())  # (N, H)
        # h' = φ(a)
        h = torch.tanh(a) if self.nonlinearity == "tanh" else torch.relu(a)
        return h.squeeze(0) if unbatched else h


class LSTMCell(_CellBase):
    r"""The LSTM cell, one step, gates in :mod:`torch.nn`'s order i, f, g, o.

    Args:
        input_size: features of the input ``H_in``.
        hidden_size: features of the state and cell ``H``.
        bias: learn ``bias_ih`` and ``bias_hh`` (default ``True``; only their sum matters).
        device, dtype: where and in which precision the parameters are created.

    Shape:
        input ``(N, H_in)`` or ``(H_in,)``; hx a pair ``(h, c)`` of ``(N, H)`` or ``(H,)``,
        default zeros; returns the pair ``(h', c')`` with the same shapes.

    .. math::
        \begin{aligned}
        i &= \sigma(W_{ii} x + b_{ii} + W_{hi} h + b_{hi}) \\
        f &= \sigma(W_{if} x + b_{if} + W_{hf} h + b_{hf}) \\
        g &= \tanh(W_{ig} x + b_{ig} + W_{hg} h + b_{hg}) \\
        o &= \sigma(W_{io} x + b_{io} + W_{ho} h + b_{ho}) \\
        c' &= f \odot c + i \odot g \\
        h' &= o \odot \tanh(c')
        \end{aligned}
    """

    num_gates = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Return ``(h', c')`` (same batching as ``input``)."""
        if hx is not None and not (isinstance(hx, tuple | list) and len(hx) == 2):
            raise TypeError(f"hx must be a pair (h, c) of tensors or None, got {type(hx).__name__}")
        h0, c0 = (None, None) if hx is None else hx
        x, (h, c), unbatched = self._check(input, (h0, c0), ("h", "c"))
        # all four gates' pre-activations at once: W_ih x + b_ih + W_hh h + b_hh
        gates = torch.addmm(self._project(x), h, self.weight_hh.t())  # (N, 4H)
        i, f, g, o = gates.chunk(4, dim=1)  # each (N, H)
        # i = σ(·), f = σ(·), o = σ(·): input, forget and output gates
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        # g = tanh(·): the candidate cell
        g = torch.tanh(g)
        # c' = f ⊙ c + i ⊙ g
        c = f * c + i * g
        # h' = o ⊙ tanh(c')
        h = o * torch.tanh(c)
        if unbatched:
            return h.squeeze(0), c.squeeze(0)
        return h, c


class GRUCell(_CellBase):
    r"""The GRU cell, one step, gates in :mod:`torch.nn`'s order r, z, n.

    Args:
        input_size: features of the input ``H_in``.
        hidden_size: features of the state ``H``.
        bias: learn ``bias_ih`` and ``bias_hh`` (default ``True``).
        reset_after: ``True`` (default) applies the reset gate after the recurrent product,
            as :class:`torch.nn.GRUCell` and cuDNN (Cho et al. 2014 v1); ``False`` applies it
            before, as in the lecture and Cho et al. (2014 v3). Same parameters, different
            functions.
        device, dtype: where and in which precision the parameters are created.

    Shape:
        input ``(N, H_in)`` or ``(H_in,)``; hx ``(N, H)`` or ``(H,)``, default zeros;
        output ``(N, H)`` or ``(H,)``.

    .. math::
        \begin{aligned}
        r &= \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}) \\
        z &= \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz}) \\
        n &= \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn}))
             &&\text{(reset after)} \\
        n &= \tanh(W_{in} x + b_{in} + W_{hn} (r \odot h) + b_{hn})
             &&\text{(reset before)} \\
        h' &= (1 - z) \odot n + z \odot h
        \end{aligned}

    Note:
        The lecture's GRU names its mixing gate the update gate ``u`` and lets it weight
        the candidate, ``h' = (1 − u) ⊙ h + u ⊙ n``; this cell keeps
        :class:`torch.nn.GRUCell`'s ``z``, which weights the previous state.
    """

    num_gates = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        reset_after: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype)
        self.reset_after = bool(reset_after)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.reset_after else text + ", reset_after=False"

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        """Return the next state ``h'`` (same batching as ``input``)."""
        x, (h,), unbatched = self._check(input, (hx,), ("hx",))
        w_ir, w_iz, w_in = self.weight_ih.chunk(3, dim=0)  # each (H, H_in)
        w_hr, w_hz, w_hn = self.weight_hh.chunk(3, dim=0)  # each (H, H)
        b_ir, b_iz, b_in = self.bias_ih.chunk(3) if self.bias else (0.0, 0.0, 0.0)
        b_hr, b_hz, b_hn = self.bias_hh.chunk(3) if self.bias else (0.0, 0.0, 0.0)
        # r = σ(W_ir x + b_ir + W_hr h + b_hr)
        r = torch.sigmoid(x @ w_ir.t() + b_ir + h @ w_hr.t() + b_hr)  # (N, H)
        # z = σ(W_iz x + b_iz + W_hz h + b_hz)
        z = torch.sigmoid(x @ w_iz.t() + b_iz + h @ w_hz.t() + b_hz)  # (N, H)
        if self.reset_after:
            # n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
            n = torch.tanh(x @ w_in.t() + b_in + r * (h @ w_hn.t() + b_hn))
        else:
            # n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)
            n = torch.tanh(x @ w_in.t() + b_in + (r * h) @ w_hn.t() + b_hn)
        # h' = (1 − z) ⊙ n + z ⊙ h
        h = (1 - z) * n + z * h
        return h.squeeze(0) if unbatched else h
