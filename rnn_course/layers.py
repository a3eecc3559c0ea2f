"""Multi-layer, optionally bidirectional RNN, LSTM and GRU layers with :mod:`torch.nn`'s API.

The decomposition follows ``torch/nn/modules/rnn.py``: the cell equations run in a
one-direction time loop (``_direction``, one per class), two loops make a bidirectional
layer (``_RNNBase._layer``) and layers stack (``_RNNBase._stack``); ``forward`` checks the
arguments once. Arguments, returns,
parameter names and shapes equal :class:`torch.nn.RNN`, :class:`torch.nn.LSTM` and
:class:`torch.nn.GRU`, so state dicts load both ways.

The time loop is written for speed (measured by ``python -m rnn_course.bench``):

* the input projection of all T steps is one matrix product with both biases folded in,
  ``addmm(b_ih + b_hh, X (T·N, H_in), W_ihᵀ)``; inside the loop one ``addmm`` per step adds
  the recurrent product to the precomputed slice;
* the loop iterates ``xw.unbind(0)`` (one backward node for all steps; indexing ``xw[t]``
  would make each step's backward write a full-size zero gradient), appends to a list and
  stacks once;
* there is no validation or host synchronization per step: arguments are checked once per
  call, at the public boundary, and nothing in the loops reads a tensor's value on the
  host (``tests/test_host_sync.py`` makes every such read raise);
* the LSTM and the GRU (``reset_after=True``, :mod:`torch.nn`'s cell) go further: their
  loops (:class:`rnn_course.lstm_loop.LSTMLoop`, :class:`rnn_course.gru_loop.GRULoop`)
  write into buffers allocated once per call, apply each nonlinearity to all the gates
  that share it in one call, and backpropagate through time by hand, with the weight
  gradients as one matrix product after the loop instead of autograd's nodes per step.
  The GRU then does about three quarters of the LSTM's work, and takes about that share
  of its time.

Optional connections between stacked layers, ``skip="residual" | "highway" | "dense"``, are
described in :func:`combine_skip`. With the default ``skip=None`` the state dict equals
:mod:`torch.nn`'s.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnn_course.cells import init_uniform_
from rnn_course.gru_loop import double_n, gru_loop
from rnn_course.loop_context import step_views
from rnn_course.lstm_loop import lstm_loop, to_oifg
from rnn_course.validation import (
    expect_choice,
    expect_floating,
    expect_positive_int,
    expect_same_device_and_dtype,
    expect_shape,
    expect_tensor,
)

SKIPS = (None, "residual", "highway", "dense")


def combine_skip(
    skip: str | None,
    states: Tensor,
    inputs: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """What a stacked layer passes up, given its ``states`` and the ``inputs`` it read.

    Args:
        skip: ``None`` (the states only, as :mod:`torch.nn`), ``"residual"`` (states plus
            inputs, He et al. 2016), ``"highway"`` (a learned gate between states and
            inputs, Srivastava et al. 2015) or ``"dense"`` (inputs and states concatenated,
            so the next layer reads the stack's input and every earlier layer's output,
            Huang et al. 2017).
        states: the layer's outputs ``(L, N, D·H)``.
        inputs: what the layer read, ``(L, N, D·H)`` (``(L, N, H_u)`` for ``"dense"``).
        weight, bias: the highway gate's ``(D·H, D·H)`` and ``(D·H,)``.

    Returns:
        ``(L, N, D·H)``, or ``(L, N, H_u + D·H)`` for ``"dense"``.

    In a stack built with ``skip=...``:

    * ``"residual"`` and ``"highway"`` connect layers 1, 2, …: layer 0's input has
      ``H_in`` features, its output ``D·H``, so it passes its states up unchanged. Layer
      ``l > 0`` outputs ``h_l + u_l`` (residual) or ``t ⊙ h_l + (1 − t) ⊙ u_l`` with
      ``t = σ(W_t u_l + b_t)`` (highway), where ``u_l`` is what layer ``l`` read. The
      highway gate's parameters are ``highway_weight_l{l} (D·H, D·H)`` and
      ``highway_bias_l{l} (D·H,)``, the only keys added to :mod:`torch.nn`'s state dict.
    * ``"dense"``: layer ``l`` reads ``[x; y_0; …; y_{l-1}]``, so ``weight_ih_l{l}`` is
      ``(G·H, H_in + l·D·H)``; the stack's output is the top layer's states.
    * ``dropout`` (training mode) applies to what a layer passes up, except for the top
      layer; with ``"dense"`` it applies to each layer's new features only.
    * ``h_n`` (and ``c_n``) always hold the layers' own final states.
    """
    if skip == "residual":
        # y = h + u
        return states + inputs
    if skip == "highway":
        # t = σ(W_t u + b_t)
        t = torch.sigmoid(F.linear(inputs, weight, bias))
        # y = t ⊙ h + (1 − t) ⊙ u
        return torch.lerp(inputs, states, t)
    if skip == "dense":
        # y = [u; h]
        return torch.cat([inputs, states], dim=-1)
    return states


def project_inputs(x: Tensor, w_ih: Tensor, bias: Tensor | None) -> Tensor:
    """``W_ih x_t + bias`` for every step in one matrix product: ``(T, N, H_in) → (T, N, G·H)``."""
    T, N, H_in = x.shape
    x2 = x.reshape(T * N, H_in)
    # X W_ihᵀ + b, one GEMM for all T·N rows
    xw = torch.mm(x2, w_ih.t()) if bias is None else torch.addmm(bias, x2, w_ih.t())
    return xw.view(T, N, -1)


def _stack_outputs(outs: list[Tensor], reverse: bool) -> Tensor:
    if reverse:
        outs.reverse()
    return torch.stack(outs)  # (T, N, H)


def _lstm_direction_autograd(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    weights: tuple[Tensor | None, ...],
    reverse: bool,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One LSTM direction in plain autograd operations, for :func:`torch.compile`.

    ``x (T, N, H_u)``, ``h, c (N, H)``; weights in :mod:`torch.nn`'s order i, f, g, o.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    xw = project_inputs(x, w_ih, _fold_biases(b_ih, b_hh))  # (T, N, 4H)
    outs = []
    for xw_t in step_views(xw, reverse):
        i, f, g, o = torch.addmm(xw_t, h, w_hh.t()).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return _stack_outputs(outs, reverse), (h, c)


def _gru_direction_autograd(
    x: Tensor, h: Tensor, weights: tuple[Tensor | None, ...], reverse: bool
) -> tuple[Tensor, Tensor]:
    """One GRU direction (reset after) in plain autograd operations, for :func:`torch.compile`.

    ``x (T, N, H_u)``, ``h (N, H)``; weights in :mod:`torch.nn`'s order r, z, n.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    xw = project_inputs(x, w_ih, b_ih)  # (T, N, 3H)
    outs = []
    for xw_t in step_views(xw, reverse):
        hw = torch.mm(h, w_hh.t()) if b_hh is None else torch.addmm(b_hh, h, w_hh.t())
        x_r, x_z, x_n = xw_t.chunk(3, dim=1)
        h_r, h_z, h_n = hw.chunk(3, dim=1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = torch.lerp(n, h, z)  # (1 − z) ⊙ n + z ⊙ h_{t-1}
        outs.append(h)
    return _stack_outputs(outs, reverse), h


class _RNNBase(nn.Module):
    """Parameters, argument checks, bidirectional and stacked structure for the three layers."""

    num_gates: int = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        skip: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        expect_positive_int("input_size", input_size)
        expect_positive_int("hidden_size", hidden_size)
        expect_positive_int("num_layers", num_layers)
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, numbers.Number)
            or not 0 <= dropout <= 1
        ):
            raise ValueError(f"dropout must be a number in [0, 1], got {dropout!r}")
        expect_choice("skip", skip, SKIPS)
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=2,
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.skip = skip
        self.proj_size = 0
        D, G, H = self.num_directions, self.num_gates, hidden_size
        kw = {"device": device, "dtype": dtype}
        self._flat_weights_names: list[str] = []
        for k in range(num_layers):
            layer_input = self._layer_input_size(k)
            if skip == "residual" and k > 0 and layer_input != D * H:
                raise ValueError(
                    f"skip='residual' needs layer {k}'s input size to equal its output size "
                    f"D·H = {D * H}, got {layer_input}"
                )
            for suffix in ("", "_reverse")[:D]:
                shapes = {
                    f"weight_ih_l{k}{suffix}": (G * H, layer_input),
                    f"weight_hh_l{k}{suffix}": (G * H, H),
                }
                if self.bias:
                    shapes[f"bias_ih_l{k}{suffix}"] = (G * H,)
                    shapes[f"bias_hh_l{k}{suffix}"] = (G * H,)
                for name, shape in shapes.items():
                    setattr(self, name, nn.Parameter(torch.empty(shape, **kw)))
                    self._flat_weights_names.append(name)
            if skip == "highway" and k > 0:
                # t = σ(W_t u + b_t) gates layer k's states against its input u
                self.register_parameter(
                    f"highway_weight_l{k}", nn.Parameter(torch.empty(D * H, D * H, **kw))
                )
                self.register_parameter(
                    f"highway_bias_l{k}", nn.Parameter(torch.empty(D * H, **kw))
                )
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _layer_input_size(self, k: int) -> int:
        """Features read by layer ``k``: H_in, then D·H (plus all below for ``"dense"``)."""
        if k == 0:
            return self.input_size
        DH = self.num_directions * self.hidden_size
        return self.input_size + k * DH if self.skip == "dense" else DH

    def reset_parameters(self) -> None:
        """Recurrent weights and biases U(−1/√H, 1/√H); highway gates start carrying.

        A highway gate's weight is U(−1/√(D·H), 1/√(D·H)) and its bias −1, so that
        t ≈ σ(−1) ≈ 0.27 and a deep stack starts close to passing its input through
        (Srivastava et al. 2015 start with a negative gate bias).
        """
        init_uniform_([getattr(self, n) for n in self._flat_weights_names], self.hidden_size)
        DH = self.num_directions * self.hidden_size
        for k in range(1, self.num_layers):
            if self.skip == "highway":
                init_uniform_([getattr(self, f"highway_weight_l{k}")], DH)
                with torch.no_grad():
                    getattr(self, f"highway_bias_l{k}").fill_(-1.0)

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """The recurrent parameters per layer and direction, as :mod:`torch.nn` lists them."""
        per = 4 if self.bias else 2
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[i : i + per]] for i in range(0, len(names), per)]

    def flatten_parameters(self) -> None:
        """Nothing to do: kept for compatibility with :mod:`torch.nn` (cuDNN's flat buffer)."""

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        if self.skip is not None:
            text += f", skip={self.skip!r}"
        return text

    def compile_time_loop(self, **options: Any) -> _RNNBase:
        """Compile the one-direction time loop with :func:`torch.compile` (opt-in).

        ``options`` go to :func:`torch.compile`. Under compilation the LSTM and GRU run
        their cell equations as plain autograd operations, which the compiler captures and
        differentiates, instead of the hand-written loops (their in-place writes into
        strided buffers break the compiled graph). Compilation unrolls the loop and takes
        seconds to minutes per sequence length. On the CPU it paid little: an LSTM layer
        compiled for T=100, N=16, H=64 (97 s) took 0.89 times the eager layer's time for
        forward and backward, 1.69 against 1.90 times :class:`torch.nn.LSTM`'s in the same
        run. Returns ``self``.
        """
        self._direction = torch.compile(self._direction, **options)  # type: ignore[method-assign]
        return self

    # --- the three parts every subclass shares ------------------------------------------

    def _direction(
        self, x: Tensor, state: Any, weights: tuple[Tensor | None, ...], reverse: bool
    ) -> tuple[Tensor, Any]:
        """Run one direction of one layer over ``x (T, N, H_u)``; return outputs and state."""
        raise NotImplementedError

    def _layer(self, k: int, u: Tensor, states: list[Any]) -> tuple[Tensor, list[Any]]:
        """Layer ``k`` in both directions: ``u (T, N, H_u)`` → ``(T, N, D·H)`` and final states."""
        outs, finals = [], []
        for d, suffix in enumerate(("", "_reverse")[: self.num_directions]):
            weights = tuple(
                getattr(self, f"{name}_l{k}{suffix}", None)
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            )
            out, final = self._direction(u, states[d], weights, reverse=d == 1)
            outs.append(out)
            finals.append(final)
        return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)), finals

    def _stack(self, x: Tensor, states: list[Any]) -> tuple[Tensor, list[Any]]:
        """All layers, with dropout and skip connections between them: ``(T, N, H_in)``."""
        D = self.num_directions
        dropout = self.dropout if self.training else 0.0
        u = x
        finals: list[Any] = []
        for k in range(self.num_layers):
            h, final = self._layer(k, u, states[k * D : (k + 1) * D])  # (T, N, D·H)
            finals.extend(final)
            last = k == self.num_layers - 1
            if self.skip == "dense":
                if last:
                    return h, finals
                u = combine_skip("dense", F.dropout(h, dropout, True) if dropout else h, u)
                continue
            if k > 0 and self.skip is not None:
                h = combine_skip(
                    self.skip,
                    h,
                    u,
                    getattr(self, f"highway_weight_l{k}", None),
                    getattr(self, f"highway_bias_l{k}", None),
                )
            u = F.dropout(h, dropout, True) if dropout and not last else h
        return u, finals

    # --- the public boundary --------------------------------------------------------------

    def _check_input(self, input: object) -> tuple[Tensor, bool]:
        """Validate ``input``; return it time-major ``(T, N, H_in)`` and whether unbatched."""
        x = expect_tensor("input", input)
        expect_floating("input", x)
        layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
        if x.dim() == 2:
            expect_shape("input", x, (None, self.input_size), "(L, H_in)")
            x, unbatched = x.unsqueeze(1), True
        elif x.dim() == 3:
            expect_shape("input", x, (None, None, self.input_size), layout)
            x, unbatched = (x.transpose(0, 1) if self.batch_first else x), False
        else:
            raise ValueError(
                f"input must have shape {layout} or (L, H_in) with H_in={self.input_size}, "
                f"got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise ValueError("input must contain at least one time step, got L=0")
        expect_same_device_and_dtype(weight_ih_l0=self.weight_ih_l0, input=x)
        return x.contiguous(), unbatched

    def _check_state(self, name: str, s: object, x: Tensor, unbatched: bool) -> list[Tensor]:
        """Validate one initial state; return its ``D·num_layers`` rows of ``(N, H)``."""
        DL, N, H = self.num_directions * self.num_layers, x.shape[1], self.hidden_size
        if s is None:
            return list(x.new_zeros(DL, N, H).unbind(0))
        s = expect_tensor(name, s)
        if unbatched:
            expect_shape(name, s, (DL, H), "(D·num_layers, H)")
            s = s.unsqueeze(1)
        else:
            expect_shape(name, s, (DL, N, H), "(D·num_layers, N, H)")
        expect_same_device_and_dtype(input=x, **{name: s})
        return list(s.unbind(0))

    def _finish(self, out: Tensor, unbatched: bool) -> Tensor:
        if unbatched:
            return out.squeeze(1)  # (L, D·H)
        return out.transpose(0, 1) if self.batch_first else out

    @staticmethod
    def _final(rows: list[Tensor], unbatched: bool) -> Tensor:
        h_n = torch.stack(rows)  # (D·num_layers, N, H)
        return h_n.squeeze(1) if unbatched else h_n


class _SingleStateBase(_RNNBase):
    """The forward pass of layers whose state is one tensor (RNN, GRU)."""

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Return ``output (L, N, D·H)`` (``(N, L, D·H)`` if batch_first) and ``h_n``.

        ``h_n`` is ``(D·num_layers, N, H)`` even with ``batch_first``; an unbatched input
        ``(L, H_in)`` gives ``(L, D·H)`` and ``(D·num_layers, H)``.
        """
        x, unbatched = self._check_input(input)
        states = self._check_state("hx", hx, x, unbatched)
        out, finals = self._stack(x, states)
        return self._finish(out, unbatched), self._final(finals, unbatched)


def _fold_biases(b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
    return None if b_ih is None else b_ih + b_hh


class RNN(_SingleStateBase):
    r"""A stack of Elman RNN layers, :class:`torch.nn.RNN`'s arguments and returns.

    The arguments ``input_size``, ``hidden_size``, ``num_layers``, ``bias``, ``batch_first``,
    ``dropout``, ``bidirectional``, ``device`` and ``dtype`` are those of
    :class:`torch.nn.RNN`.

    Args:
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.
        skip: connections between stacked layers, ``None`` (default), ``"residual"``,
            ``"highway"`` or ``"dense"`` (see :func:`combine_skip`).

    Shape:
        input ``(L, N, H_in)`` (``(N, L, H_in)`` with batch_first) or ``(L, H_in)``;
        hx ``(D·num_layers, N, H)``; output ``(L, N, D·H)``; h_n ``(D·num_layers, N, H)``.

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})
    """

    num_gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        skip: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        expect_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            skip, device, dtype,
        )  # fmt: skip
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"

    def _direction(
        self, x: Tensor, h: Tensor, weights: tuple[Tensor | None, ...], reverse: bool
    ) -> tuple[Tensor, Tensor]:
        """One direction: ``x (T, N, H_u)``, ``h (N, H)`` → outputs ``(T, N, H)`` and ``h_T``."""
        w_ih, w_hh, b_ih, b_hh = weights
        # W_ih x_t + b_ih + b_hh for all t in one matrix product
        xw = project_inputs(x, w_ih, _fold_biases(b_ih, b_hh))  # (T, N, H)
        w_hh_t = w_hh.t()
        phi: Callable[[Tensor], Tensor] = torch.tanh if self.nonlinearity == "tanh" else torch.relu
        outs = []
        for xw_t in step_views(xw, reverse):
            # h_t = φ(W_ih x_t + b_ih + b_hh + W_hh h_{t-1})
            h = phi(torch.addmm(xw_t, h, w_hh_t))  # (N, H)
            outs.append(h)
        return _stack_outputs(outs, reverse), h


class LSTM(_RNNBase):
    r"""A stack of LSTM layers, :class:`torch.nn.LSTM`'s arguments and returns.

    The arguments ``input_size``, ``hidden_size``, ``num_layers``, ``bias``, ``batch_first``,
    ``dropout``, ``bidirectional``, ``device`` and ``dtype`` are those of
    :class:`torch.nn.LSTM`.

    Args:
        proj_size: only ``0`` (no projection) is supported.
        skip: connections between stacked layers (see :func:`combine_skip`).

    Shape:
        input ``(L, N, H_in)`` (``(N, L, H_in)`` with batch_first) or ``(L, H_in)``;
        hx a pair ``(h_0, c_0)`` of ``(D·num_layers, N, H)``; returns ``output (L, N, D·H)``
        and the pair ``(h_n, c_n)``.

    .. math::
        \begin{aligned}
        (i_t, f_t, g_t, o_t) &= (\sigma, \sigma, \tanh, \sigma)
            (W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t)
        \end{aligned}

    Note:
        The loop reorders the gate rows to o, i, f, g and doubles the g rows once per call,
        so that one sigmoid covers all four gates (``tanh(a) = 2 σ(2a) − 1``); the
        parameters keep :mod:`torch.nn`'s order i, f, g, o and scale.
    """

    num_gates = 4
    mode = "LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        skip: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if proj_size != 0:
            raise ValueError(f"proj_size is not supported: expected 0, got {proj_size!r}")
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            skip, device, dtype,
        )  # fmt: skip

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Return ``output`` and ``(h_n, c_n)``, each ``(D·num_layers, N, H)``."""
        x, unbatched = self._check_input(input)
        if hx is not None and not (isinstance(hx, tuple | list) and len(hx) == 2):
            raise TypeError(
                f"hx must be a pair (h_0, c_0) of tensors or None, got {type(hx).__name__}"
            )
        h0, c0 = (None, None) if hx is None else hx
        hs = self._check_state("h_0", h0, x, unbatched)
        cs = self._check_state("c_0", c0, x, unbatched)
        out, finals = self._stack(x, list(zip(hs, cs, strict=True)))
        h_n = self._final([h for h, _ in finals], unbatched)
        c_n = self._final([c for _, c in finals], unbatched)
        return self._finish(out, unbatched), (h_n, c_n)

    def _direction(
        self,
        x: Tensor,
        state: tuple[Tensor, Tensor],
        weights: tuple[Tensor | None, ...],
        reverse: bool,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One direction: ``x (T, N, H_u)``, ``(h, c)`` → outputs ``(T, N, H)``, ``(h_T, c_T)``.

        The loop itself is :class:`rnn_course.lstm_loop.LSTMLoop`, which runs the cell
        equations without recording each step and backpropagates through time by hand.
        Under :func:`torch.compile` (see :meth:`compile_time_loop`) the loop is the cell's
        equations in plain autograd operations instead, which the compiler can capture.
        """
        h, c = state
        if torch.compiler.is_compiling():
            return _lstm_direction_autograd(x, h, c, weights, reverse)
        w_ih, w_hh, b_ih, b_hh = (None if w is None else to_oifg(w) for w in weights)
        # W_ih x_t + b_ih + b_hh for all t, gate rows in the order o, i, f, g
        xw = project_inputs(x, w_ih, _fold_biases(b_ih, b_hh))  # (T, N, 4H)
        out, h, c = lstm_loop(xw, h, c, w_hh, reverse)  # (T, N, H), (N, H), (N, H)
        return out, (h, c)


class GRU(_SingleStateBase):
    r"""A stack of GRU layers, :class:`torch.nn.GRU`'s arguments and returns.

    The arguments ``input_size``, ``hidden_size``, ``num_layers``, ``bias``, ``batch_first``,
    ``dropout``, ``bidirectional``, ``device`` and ``dtype`` are those of
    :class:`torch.nn.GRU`.

    Args:
        reset_after: ``True`` (default, equals :class:`torch.nn.GRU`) or ``False`` for the
            lecture's form with the reset gate inside the recurrent product (see
            :class:`rnn_course.cells.GRUCell`).
        skip: connections between stacked layers (see :func:`combine_skip`).

    Shape:
        as :class:`RNN`.

    .. math::
        \begin{aligned}
        r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} h_{t-1} + b_{hr}) \\
        z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} h_{t-1} + b_{hz}) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn}))
            &&\text{(reset after)} \\
        n_t &= \tanh(W_{in} x_t + b_{in} + W_{hn} (r_t \odot h_{t-1}) + b_{hn})
            &&\text{(reset before)} \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}
        \end{aligned}
    """

    num_gates = 3
    mode = "GRU"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        reset_after: bool = True,
        skip: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            skip, device, dtype,
        )  # fmt: skip
        self.reset_after = bool(reset_after)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.reset_after else text + ", reset_after=False"

    def _direction(
        self, x: Tensor, h: Tensor, weights: tuple[Tensor | None, ...], reverse: bool
    ) -> tuple[Tensor, Tensor]:
        """One direction: ``x (T, N, H_u)``, ``h (N, H)`` → outputs ``(T, N, H)`` and ``h_T``."""
        w_ih, w_hh, b_ih, b_hh = weights
        H = h.shape[1]
        if self.reset_after and torch.compiler.is_compiling():
            # what torch.compile can capture (see compile_time_loop)
            return _gru_direction_autograd(x, h, weights, reverse)
        if self.reset_after:
            # W_ih x_t + b_ih for all t; b_hh is added to W_hh h inside the loop, because
            # r multiplies b_hn. The loop is rnn_course.gru_loop.GRULoop (hand-written BPTT).
            # The loop wants the n rows doubled (see rnn_course.gru_loop).
            w_ih, w_hh, b_ih, b_hh = (None if w is None else double_n(w) for w in weights)
            xw = project_inputs(x, w_ih, b_ih)  # (T, N, 3H)
            return gru_loop(xw, h, w_hh, b_hh, reverse)  # (T, N, H), (N, H)
        # reset_after=False: every bias sits outside a product with a gate, fold both
        xw = project_inputs(x, w_ih, _fold_biases(b_ih, b_hh))  # (T, N, 3H)
        w_hrz_t, w_hn_t = w_hh[: 2 * H].t(), w_hh[2 * H :].t()
        outs = []
        for xw_t in step_views(xw, reverse):
            x_rz, x_n = xw_t.split([2 * H, H], dim=1)
            # r, z = σ(W_i· x + b_i· + W_h· h + b_h·) in one call
            r, z = torch.sigmoid(torch.addmm(x_rz, h, w_hrz_t)).chunk(2, dim=1)
            # n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)
            n = torch.tanh(torch.addmm(x_n, r * h, w_hn_t))
            # h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
            h = torch.lerp(n, h, z)
            outs.append(h)
        return _stack_outputs(outs, reverse), h
