"""Multi-layer, optionally bidirectional RNN, LSTM and GRU layers with :mod:`torch.nn`'s API.

The decomposition follows ``torch/nn/modules/rnn.py``: the cell equations run in a
one-direction time loop (``_direction``, one per class), two loops make a bidirectional
layer (``_RNNBase._layer``) and layers stack (``_RNNBase._stack``); ``forward`` checks the
arguments once. Arguments, returns, parameter names and shapes equal
:class:`torch.nn.RNN`, :class:`torch.nn.LSTM` and :class:`torch.nn.GRU`, so state dicts
load both ways.

What is the same as :mod:`torch.nn`, exactly:

* the arguments of the constructors (in :mod:`torch.nn`'s positional order, with
  ``nonlinearity`` fourth for the RNN), parameter names, shapes, initialization and state
  dicts, ``all_weights`` and ``flatten_parameters()``;
* the inputs and returns of ``forward``: padded tensors, batched or not, ``batch_first``,
  and :class:`torch.nn.utils.rnn.PackedSequence` in and out (``enforce_sorted`` true or
  false: an initial state is read in the caller's order and the final states are returned
  in it), with ``dropout`` between layers and ``h_n`` of shape ``(D·num_layers, N, H)``;
* outputs, final states and every gradient, to rounding error (checked in float64 to
  1e-10), and the exception types of the misuses in ``tests/test_layers.py`` (the messages
  are this package's; see :mod:`rnn_course.validation`).

What is not supported: ``proj_size > 0`` (LSTM projections); cuDNN's flattened weight
buffer (``flatten_parameters()`` does nothing); autocast. What is added: ``skip``
connections between stacked layers (:func:`combine_skip`), the lecture's GRU
(``reset_after=False``) and :meth:`_RNNBase.compile_time_loop`.

Every direction runs over a :class:`~rnn_course.schedule.Schedule`: the rows of all time
steps one after the other, ``(P, ·)`` with ``P = T·N`` for a padded batch and ``P = Σ_t
b_t`` for a packed one, where step ``t`` runs only the ``b_t`` sequences that have not
ended. The time loop is written for speed (measured by ``python -m rnn_course.bench``):

* the input projection of all steps is one matrix product with both biases folded in,
  ``addmm(b_ih + b_hh, X (P, H_in), W_ihᵀ)`` (two for the GRU's loop: r and z, then n);
  inside the loop one ``addmm`` per step adds the recurrent product to the precomputed
  rows;
* the loops take their per-step views once per call (for the autograd loops one ``split``,
  one backward node for all steps: indexing ``xw[t]`` would make each step's backward
  write a full-size zero gradient) and concatenate the outputs once;
* there is no validation or host synchronization per step: arguments are checked once per
  call, at the public boundary, and nothing in the loops reads a tensor's value on the
  host (``tests/test_host_sync.py`` makes every such read raise; a packed batch's
  ``batch_sizes`` live on the host by :mod:`torch.nn`'s contract);
* the LSTM and the GRU (``reset_after=True``, :mod:`torch.nn`'s cell) go further: their
  loops (:class:`rnn_course.lstm_loop.LSTMLoop`, :class:`rnn_course.gru_loop.GRULoop`)
  project the inputs and run the steps in one function, write into buffers allocated once
  per call, apply each nonlinearity to all the gates that share it in one call, and
  backpropagate through time by hand, with the weight gradients as a few matrix products
  after the loop instead of autograd's nodes per step. The GRU does about three quarters
  of the LSTM's arithmetic.

Optional connections between stacked layers, ``skip="residual" | "highway" | "dense"``, are
described in :func:`combine_skip`. With the default ``skip=None`` the state dict equals
:mod:`torch.nn`'s.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnn_course.cells import init_uniform_
from rnn_course.gru_loop import GRULoop, gru_steps_autograd
from rnn_course.lstm_loop import lstm_direction, lstm_steps_autograd
from rnn_course.schedule import Schedule, run_steps
from rnn_course.validation import (
    DtypeError,
    NotATensorError,
    ShapeError,
    StateStructureError,
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
        states: the layer's outputs ``(…, D·H)``, one row per sequence and step.
        inputs: what the layer read, ``(…, D·H)`` (``(…, H_u)`` for ``"dense"``).
        weight, bias: the highway gate's ``(D·H, D·H)`` and ``(D·H,)``.

    Returns:
        ``(…, D·H)``, or ``(…, H_u + D·H)`` for ``"dense"``.

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
    """``W_ih x_t + bias`` for every row in one matrix product: ``(P, H_in) → (P, G·H)``."""
    # X W_ihᵀ + b, one GEMM for all P rows
    return torch.mm(x, w_ih.t()) if bias is None else torch.addmm(bias, x, w_ih.t())


def fold_biases(b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
    """``b_ih + b_hh``, or ``None`` without biases: where only their sum matters."""
    return None if b_ih is None else b_ih + b_hh


class _Batch(NamedTuple):
    """The input as every direction reads it, and what ``forward`` needs to answer."""

    data: Tensor  # (P, H_in): the rows of every step, time order
    batch_sizes: tuple[int, ...]  # b_t, the rows of step t
    packed: PackedSequence | None  # the input, if it was packed
    unbatched: bool  # the input was (L, H_in)
    batch_first: bool  # the output goes back batch-first


class _RNNBase(nn.Module):
    """Parameters, argument checks, bidirectional and stacked structure for the three layers.

    The constructor's arguments are :class:`torch.nn.RNNBase`'s, in its order, plus the
    keyword ``skip`` (see :func:`combine_skip`). ``proj_size`` must be 0.
    """

    num_gates: int = 1
    # the options of compile_time_loop; None: the eager loops (class default for old pickles)
    _compile_options: dict[str, Any] | None = None

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
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        skip: str | None = None,
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
        if proj_size != 0:
            raise ValueError(f"proj_size is not supported: expected 0, got {proj_size!r}")
        if dtype is not None and not dtype.is_floating_point:
            raise DtypeError(f"dtype must be a floating-point dtype, got {dtype}")
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

    # --- compilation, a stored option -----------------------------------------------------

    def compile_time_loop(self, **options: Any) -> _RNNBase:
        """Run the one-direction time loops compiled by :func:`torch.compile` (opt-in).

        ``options`` go to :func:`torch.compile` and are stored on the layer: they survive
        :func:`torch.save` and :func:`torch.load`, :func:`copy.deepcopy` (the copy compiles
        its own loops) and state-dict round trips (the state dict is unchanged, and loading
        one keeps the option). The compiled function itself is made on the first call and
        never pickled or copied. Under compilation the LSTM and GRU run their cell
        equations as plain autograd operations, which the compiler captures and
        differentiates, instead of the hand-written loops (their in-place writes into
        strided buffers break the compiled graph). Compilation unrolls the loop and takes
        seconds to minutes per sequence length and batch sizes. On the CPU it paid little:
        an LSTM layer compiled for T=100, N=16, H=64 (97 s) took 0.89 times the eager
        layer's time for forward and backward, 1.69 against 1.90 times
        :class:`torch.nn.LSTM`'s in the same run. Returns ``self``.
        """
        self._compile_options = dict(options)
        self.__dict__.pop("_compiled_loop", None)
        return self

    def __getstate__(self) -> dict[str, Any]:
        # the compiled function is neither picklable nor meant to be shared by a copy
        state = self.__dict__.copy()
        state.pop("_compiled_loop", None)
        return state

    def _time_loop(self) -> Callable[..., tuple[Tensor, Any]]:
        """The function that runs one direction: compiled, capturable or eager."""
        if self._compile_options is not None:
            compiled = self.__dict__.get("_compiled_loop")
            if compiled is None:
                compiled = torch.compile(self._autograd_direction, **self._compile_options)
                self.__dict__["_compiled_loop"] = compiled
            return compiled
        if torch.compiler.is_compiling():  # inside a caller's compiled model
            return self._autograd_direction
        return self._direction

    # --- the three parts every subclass shares ------------------------------------------

    def _direction(
        self, x: Tensor, state: Any, weights: tuple[Tensor | None, ...], schedule: Schedule
    ) -> tuple[Tensor, Any]:
        """Run one direction of one layer over ``x (P, H_u)``; return outputs and state."""
        raise NotImplementedError

    def _autograd_direction(
        self, x: Tensor, state: Any, weights: tuple[Tensor | None, ...], schedule: Schedule
    ) -> tuple[Tensor, Any]:
        """:meth:`_direction` in plain autograd operations, which :func:`torch.compile`
        captures; the same function unless a subclass has a hand-written loop."""
        return self._direction(x, state, weights, schedule)

    def _layer(
        self, k: int, u: Tensor, states: list[Any], batch_sizes: tuple[int, ...]
    ) -> tuple[Tensor, list[Any]]:
        """Layer ``k`` in both directions: ``u (P, H_u)`` → ``(P, D·H)`` and final states.

        ``u`` holds the rows of every time step one after the other (``P = T·N`` for a
        padded batch; see :mod:`rnn_course.schedule`), ``batch_sizes`` how many each step has.
        """
        outs, finals = [], []
        run = self._time_loop()
        for d, suffix in enumerate(("", "_reverse")[: self.num_directions]):
            weights = tuple(
                getattr(self, f"{name}_l{k}{suffix}", None)
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            )
            out, final = run(u, states[d], weights, Schedule(batch_sizes, reverse=d == 1))
            outs.append(out)
            finals.append(final)
        return (outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)), finals

    def _stack(
        self, x: Tensor, states: list[Any], batch_sizes: tuple[int, ...]
    ) -> tuple[Tensor, list[Any]]:
        """All layers, with dropout and skip connections between them: ``x (P, H_in)``."""
        D = self.num_directions
        dropout = self.dropout if self.training else 0.0
        u = x
        finals: list[Any] = []
        for k in range(self.num_layers):
            h, final = self._layer(k, u, states[k * D : (k + 1) * D], batch_sizes)  # (P, D·H)
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

    def _check_input(self, input: object) -> _Batch:
        """Validate ``input``; return its rows ``(P, H_in)`` in time order and how to answer."""
        if isinstance(input, PackedSequence):
            data = expect_tensor("input.data", input.data)
            expect_floating("input.data", data)
            expect_shape("input.data", data, (None, self.input_size), "(P, H_in)")
            expect_same_device_and_dtype(weight_ih_l0=self.weight_ih_l0, input=data)
            # batch_sizes live on the host (torch.nn's contract): reading them waits for
            # no device
            sizes = tuple(input.batch_sizes.tolist())
            return _Batch(data, sizes, input, False, False)
        if not isinstance(input, Tensor):
            raise NotATensorError(
                f"input must be a torch.Tensor or a PackedSequence, got {type(input).__name__}"
            )
        x = input
        expect_floating("input", x)
        layout = "(N, L, H_in)" if self.batch_first else "(L, N, H_in)"
        if x.dim() == 2:
            expect_shape("input", x, (None, self.input_size), "(L, H_in)")
            x, unbatched = x.unsqueeze(1), True
        elif x.dim() == 3:
            expect_shape("input", x, (None, None, self.input_size), layout)
            x, unbatched = (x.transpose(0, 1) if self.batch_first else x), False
        else:
            raise ShapeError(
                f"input must have shape {layout} or (L, H_in) with H_in={self.input_size}, "
                f"got {tuple(x.shape)}"
            )
        T, N = x.shape[0], x.shape[1]
        if T == 0:
            raise ShapeError("input must contain at least one time step, got L=0")
        expect_same_device_and_dtype(weight_ih_l0=self.weight_ih_l0, input=x)
        data = x.reshape(T * N, self.input_size)  # time-major rows, copied if batch_first
        return _Batch(data, (N,) * T, None, unbatched, self.batch_first and not unbatched)

    def _check_state(self, name: str, s: object, batch: _Batch) -> list[Tensor]:
        """Validate one initial state; return its ``D·num_layers`` rows of ``(N, H)``.

        For a packed input the state is given in the caller's order of the sequences and
        put in the input's (sorted) order here.
        """
        DL, N, H = self.num_directions * self.num_layers, batch.batch_sizes[0], self.hidden_size
        x = batch.data
        if s is None:
            return list(x.new_zeros(DL, N, H).unbind(0))
        s = expect_tensor(name, s)
        if batch.unbatched:
            expect_shape(name, s, (DL, H), "(D·num_layers, H)")
            s = s.unsqueeze(1)
        else:
            expect_shape(name, s, (DL, N, H), "(D·num_layers, N, H)")
        expect_same_device_and_dtype(input=x, **{name: s})
        if batch.packed is not None and batch.packed.sorted_indices is not None:
            s = s.index_select(1, batch.packed.sorted_indices)
        return list(s.unbind(0))

    @staticmethod
    def _finish(out: Tensor, batch: _Batch) -> Tensor | PackedSequence:
        """The output in the input's form: packed, ``(L, N, D·H)``, batch-first or unbatched."""
        if batch.packed is not None:
            p = batch.packed
            return PackedSequence(out, p.batch_sizes, p.sorted_indices, p.unsorted_indices)
        out = out.view(len(batch.batch_sizes), batch.batch_sizes[0], -1)  # (L, N, D·H)
        if batch.unbatched:
            return out.squeeze(1)  # (L, D·H)
        return out.transpose(0, 1) if batch.batch_first else out

    @staticmethod
    def _final(rows: list[Tensor], batch: _Batch) -> Tensor:
        """``(D·num_layers, N, H)`` in the caller's order of the sequences."""
        h_n = torch.stack(rows)
        if batch.packed is not None and batch.packed.unsorted_indices is not None:
            h_n = h_n.index_select(1, batch.packed.unsorted_indices)
        return h_n.squeeze(1) if batch.unbatched else h_n


class _SingleStateBase(_RNNBase):
    """The forward pass of layers whose state is one tensor (RNN, GRU)."""

    def forward(
        self, input: Tensor | PackedSequence, hx: Tensor | None = None
    ) -> tuple[Tensor | PackedSequence, Tensor]:
        """Return ``output (L, N, D·H)`` (``(N, L, D·H)`` if batch_first) and ``h_n``.

        ``h_n`` is ``(D·num_layers, N, H)`` even with ``batch_first``; an unbatched input
        ``(L, H_in)`` gives ``(L, D·H)`` and ``(D·num_layers, H)``; a
        :class:`~torch.nn.utils.rnn.PackedSequence` gives a packed ``output`` and the
        final state of every sequence, at its own last step.
        """
        batch = self._check_input(input)
        states = self._check_state("hx", hx, batch)
        out, finals = self._stack(batch.data, states, batch.batch_sizes)
        return self._finish(out, batch), self._final(finals, batch)


class RNN(_SingleStateBase):
    r"""A stack of Elman RNN layers, :class:`torch.nn.RNN`'s arguments and returns.

    The arguments ``input_size``, ``hidden_size``, ``num_layers``, ``bias``, ``batch_first``,
    ``dropout``, ``bidirectional``, ``device`` and ``dtype`` are those of
    :class:`torch.nn.RNN`.

    Args:
        nonlinearity: ``"tanh"`` (default) or ``"relu"``.
        skip: connections between stacked layers, ``None`` (default), ``"residual"``,
            ``"highway"`` or ``"dense"`` (see :func:`combine_skip`); keyword only.

    Shape:
        input ``(L, N, H_in)`` (``(N, L, H_in)`` with batch_first), ``(L, H_in)`` or a
        :class:`~torch.nn.utils.rnn.PackedSequence`; hx ``(D·num_layers, N, H)``; output
        ``(L, N, D·H)`` (packed for a packed input); h_n ``(D·num_layers, N, H)``.

    .. math::
        h_t = \phi(W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh})
    """

    num_gates = 1

    def __init__(self, *args: Any, nonlinearity: str = "tanh", **kwargs: Any) -> None:
        if len(args) > 3:  # torch.nn.RNN's order: input_size, hidden_size, num_layers, nonlinearity
            nonlinearity, args = args[3], args[:3] + args[4:]
        expect_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__(*args, **kwargs)
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"

    def _direction(
        self, x: Tensor, h: Tensor, weights: tuple[Tensor | None, ...], schedule: Schedule
    ) -> tuple[Tensor, Tensor]:
        """One direction: ``x (P, H_u)`` (all steps' rows), ``h (N, H)`` → ``(P, H)``, ``h_T``."""
        w_ih, w_hh, b_ih, b_hh = weights
        # W_ih x_t + b_ih + b_hh for all t in one matrix product
        xw = project_inputs(x, w_ih, fold_biases(b_ih, b_hh))  # (P, H)
        w_hh_t = w_hh.t()
        phi = torch.tanh if self.nonlinearity == "tanh" else torch.relu

        def step(xw_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor]:
            # h_t = φ(W_ih x_t + b_ih + b_hh + W_hh h_{t-1})
            return (phi(torch.addmm(xw_t, state[0], w_hh_t)),)

        out, (h,) = run_steps(step, xw, (h,), schedule)  # the steps, in the schedule's order
        return out, h


class LSTM(_RNNBase):
    r"""A stack of LSTM layers, :class:`torch.nn.LSTM`'s arguments and returns.

    The arguments ``input_size``, ``hidden_size``, ``num_layers``, ``bias``, ``batch_first``,
    ``dropout``, ``bidirectional``, ``device`` and ``dtype`` are those of
    :class:`torch.nn.LSTM`.

    Args:
        proj_size: only ``0`` (no projection) is supported.
        skip: connections between stacked layers (see :func:`combine_skip`); keyword only.

    Shape:
        input ``(L, N, H_in)`` (``(N, L, H_in)`` with batch_first), ``(L, H_in)`` or a
        :class:`~torch.nn.utils.rnn.PackedSequence`; hx a pair ``(h_0, c_0)`` of
        ``(D·num_layers, N, H)``; returns ``output (L, N, D·H)`` (packed for a packed
        input) and the pair ``(h_n, c_n)``.

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

    def forward(
        self, input: Tensor | PackedSequence, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor | PackedSequence, tuple[Tensor, Tensor]]:
        """Return ``output`` and ``(h_n, c_n)``, each ``(D·num_layers, N, H)``."""
        batch = self._check_input(input)
        if hx is not None and not (isinstance(hx, tuple | list) and len(hx) == 2):
            raise StateStructureError(
                f"hx must be a pair (h_0, c_0) of tensors or None, got {type(hx).__name__}"
            )
        h0, c0 = (None, None) if hx is None else hx
        hs = self._check_state("h_0", h0, batch)
        cs = self._check_state("c_0", c0, batch)
        out, finals = self._stack(batch.data, list(zip(hs, cs, strict=True)), batch.batch_sizes)
        h_n = self._final([h for h, _ in finals], batch)
        c_n = self._final([c for _, c in finals], batch)
        return self._finish(out, batch), (h_n, c_n)

    def _direction(
        self,
        x: Tensor,
        state: tuple[Tensor, Tensor],
        weights: tuple[Tensor | None, ...],
        schedule: Schedule,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One direction: ``x (P, H_u)``, ``(h, c)`` → outputs ``(P, H)``, ``(h_T, c_T)``.

        The loop itself is :class:`rnn_course.lstm_loop.LSTMLoop`, which runs the cell
        equations without recording each step and backpropagates through time by hand.
        """
        w_ih, w_hh, b_ih, b_hh = weights
        out, h, c = lstm_direction(x, state[0], state[1], w_ih, w_hh, b_ih, b_hh, schedule)
        return out, (h, c)

    def _autograd_direction(
        self,
        x: Tensor,
        state: tuple[Tensor, Tensor],
        weights: tuple[Tensor | None, ...],
        schedule: Schedule,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        w_ih, w_hh, b_ih, b_hh = weights
        xw = project_inputs(x, w_ih, fold_biases(b_ih, b_hh))  # (P, 4H), i, f, g, o
        return lstm_steps_autograd(xw, state[0], state[1], w_hh, schedule)


class GRU(_SingleStateBase):
    r"""A stack of GRU layers, :class:`torch.nn.GRU`'s arguments and returns.

    The arguments ``input_size``, ``hidden_size``, ``num_layers``, ``bias``, ``batch_first``,
    ``dropout``, ``bidirectional``, ``device`` and ``dtype`` are those of
    :class:`torch.nn.GRU`.

    Args:
        reset_after: ``True`` (default, equals :class:`torch.nn.GRU`) or ``False`` for the
            lecture's form with the reset gate inside the recurrent product (see
            :class:`rnn_course.cells.GRUCell`).
        skip: connections between stacked layers (see :func:`combine_skip`); keyword only.

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

    def __init__(self, *args: Any, reset_after: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reset_after = bool(reset_after)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.reset_after else text + ", reset_after=False"

    def _direction(
        self, x: Tensor, h: Tensor, weights: tuple[Tensor | None, ...], schedule: Schedule
    ) -> tuple[Tensor, Tensor]:
        """One direction: ``x (P, H_u)``, ``h (N, H)`` → outputs ``(P, H)`` and ``h_T``."""
        if not self.reset_after:
            return self._autograd_direction(x, h, weights, schedule)
        # the loop is rnn_course.gru_loop.GRULoop: the input projection and the time loop,
        # backpropagated through time by hand
        return GRULoop.apply(x, h, *weights, schedule)

    def _autograd_direction(
        self, x: Tensor, h: Tensor, weights: tuple[Tensor | None, ...], schedule: Schedule
    ) -> tuple[Tensor, Tensor]:
        w_ih, w_hh, b_ih, b_hh = weights
        if self.reset_after:
            return gru_steps_autograd(project_inputs(x, w_ih, b_ih), h, w_hh, b_hh, schedule)
        # reset_after=False: every bias sits outside a product with a gate, fold both
        H = h.shape[1]
        xw = project_inputs(x, w_ih, fold_biases(b_ih, b_hh))  # (P, 3H)
        w_hrz_t, w_hn_t = w_hh[: 2 * H].t(), w_hh[2 * H :].t()

        def step(xw_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor]:
            (h,) = state
            x_rz, x_n = xw_t.split([2 * H, H], dim=1)
            # r, z = σ(W_i· x + b_i· + W_h· h + b_h·) in one call
            r, z = torch.sigmoid(torch.addmm(x_rz, h, w_hrz_t)).chunk(2, dim=1)
            # n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)
            n = torch.tanh(torch.addmm(x_n, r * h, w_hn_t))
            # h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
            return (torch.lerp(n, h, z),)

        out, (h,) = run_steps(step, xw, (h,), schedule)
        return out, h
