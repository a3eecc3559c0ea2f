"""What the benchmark times beside the package: LSTM loops people write, and the GEMM floor.

Three pure-PyTorch LSTM layers (one layer, one direction, ``(L, N, H_in)`` in,
``output, (h_n, c_n)`` out, as :class:`torch.nn.LSTM`), each loading
:class:`torch.nn.LSTM`'s state dict so that all compute the same function:

* :class:`ScratchLSTM`, the "from scratch" loop of d2l (Zhang et al., *Dive into Deep
  Learning*, section "Long Short-Term Memory"): one pair of matrix products per gate and
  step, inputs included;
* :class:`CellLoopLSTM`, a Python loop over :class:`torch.nn.LSTMCell`;
* :class:`ScriptLSTM`, the TorchScript layer of PyTorch's ``benchmarks/fastrnns``
  (``custom_lstms.py``): a scripted cell, one input and one recurrent product per step,
  and a scripted loop over the steps.

:class:`GemmFloor` is the time of the matrix products that this algorithm cannot avoid,
and nothing else: the input projection of all steps as one product, one recurrent product
per step forward and one per step backward, and the gradients of ``W_ih``, ``W_hh`` and
the input as three products over all steps. No implementation of this algorithm can be
faster than the floor (with the same matrix library); how far one stays above it is the
time it spends on everything else.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn


def _gates(w: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:mod:`torch.nn`'s i, f, g, o blocks of a ``(4H, ·)`` weight or ``(4H,)`` bias."""
    i, f, g, o = w.chunk(4, dim=0)
    return i, f, g, o


class ScratchLSTM(nn.Module):
    """d2l's LSTM from scratch: twelve parameters, eight matrix products per step.

    Parameters ``W_x·`` are ``(H_in, H)``, ``W_h·`` ``(H, H)`` and ``b_·`` ``(H,)`` for the
    gates ``i, f, o`` and the candidate ``c``; :meth:`load_torch_state_dict` fills them from
    a :class:`torch.nn.LSTM` (the two biases summed).
    """

    def __init__(self, input_size: int, hidden_size: int, device: torch.device | None = None):
        super().__init__()
        self.hidden_size = hidden_size
        for gate in "ifoc":
            self.register_parameter(
                f"W_x{gate}", nn.Parameter(torch.empty(input_size, hidden_size, device=device))
            )
            self.register_parameter(
                f"W_h{gate}", nn.Parameter(torch.empty(hidden_size, hidden_size, device=device))
            )
            self.register_parameter(
                f"b_{gate}", nn.Parameter(torch.empty(hidden_size, device=device))
            )

    @torch.no_grad()
    def load_torch_state_dict(self, state: dict[str, Tensor]) -> None:
        blocks = {
            "x": _gates(state["weight_ih_l0"]),
            "h": _gates(state["weight_hh_l0"]),
            "b": _gates(state["bias_ih_l0"] + state["bias_hh_l0"]),
        }
        for gate, j in zip("ifco", range(4), strict=True):
            getattr(self, f"W_x{gate}").copy_(blocks["x"][j].t())
            getattr(self, f"W_h{gate}").copy_(blocks["h"][j].t())
            getattr(self, f"b_{gate}").copy_(blocks["b"][j])

    def forward(self, inputs: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        N, H = inputs.shape[1], self.hidden_size
        Hs = C = inputs.new_zeros(N, H)
        outputs = []
        for X in inputs:
            I = torch.sigmoid(torch.matmul(X, self.W_xi) + torch.matmul(Hs, self.W_hi) + self.b_i)
            F = torch.sigmoid(torch.matmul(X, self.W_xf) + torch.matmul(Hs, self.W_hf) + self.b_f)
            O = torch.sigmoid(torch.matmul(X, self.W_xo) + torch.matmul(Hs, self.W_ho) + self.b_o)
            C_tilde = torch.tanh(
                torch.matmul(X, self.W_xc) + torch.matmul(Hs, self.W_hc) + self.b_c
            )
            C = F * C + I * C_tilde
            Hs = O * torch.tanh(C)
            outputs.append(Hs)
        return torch.stack(outputs), (Hs.unsqueeze(0), C.unsqueeze(0))


class CellLoopLSTM(nn.Module):
    """A Python loop over :class:`torch.nn.LSTMCell`; its state dict is the cell's."""

    def __init__(self, input_size: int, hidden_size: int, device: torch.device | None = None):
        super().__init__()
        self.cell = nn.LSTMCell(input_size, hidden_size, device=device)

    def load_torch_state_dict(self, state: dict[str, Tensor]) -> None:
        self.cell.load_state_dict({k.removesuffix("_l0"): v for k, v in state.items()})

    def forward(self, inputs: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        N, H = inputs.shape[1], self.cell.hidden_size
        h = c = inputs.new_zeros(N, H)
        outputs = []
        for x_t in inputs.unbind(0):
            h, c = self.cell(x_t, (h, c))
            outputs.append(h)
        return torch.stack(outputs), (h.unsqueeze(0), c.unsqueeze(0))


class _ScriptCell(nn.Module):
    """fastrnns' ``LSTMCell``: ``:mod:`torch.nn`'s parameters, one ``mm`` each per step."""

    def __init__(self, input_size: int, hidden_size: int, device: torch.device | None) -> None:
        super().__init__()
        G = 4 * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G, input_size, device=device))
        self.weight_hh = nn.Parameter(torch.empty(G, hidden_size, device=device))
        self.bias_ih = nn.Parameter(torch.empty(G, device=device))
        self.bias_hh = nn.Parameter(torch.empty(G, device=device))

    def forward(
        self, input: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        hx, cx = state
        gates = (
            torch.mm(input, self.weight_ih.t())
            + self.bias_ih
            + torch.mm(hx, self.weight_hh.t())
            + self.bias_hh
        )
        ingate, forgetgate, cellgate, outgate = gates.chunk(4, 1)
        ingate = torch.sigmoid(ingate)
        forgetgate = torch.sigmoid(forgetgate)
        cellgate = torch.tanh(cellgate)
        outgate = torch.sigmoid(outgate)
        cy = (forgetgate * cx) + (ingate * cellgate)
        hy = outgate * torch.tanh(cy)
        return hy, (hy, cy)


class _ScriptLayer(nn.Module):
    """fastrnns' ``LSTMLayer``: the scripted cell in a scripted loop over ``unbind(0)``."""

    def __init__(self, input_size: int, hidden_size: int, device: torch.device | None) -> None:
        super().__init__()
        self.cell = _ScriptCell(input_size, hidden_size, device)

    def forward(
        self, input: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        inputs = input.unbind(0)
        outputs: list[Tensor] = []
        for i in range(len(inputs)):
            out, state = self.cell(inputs[i], state)
            outputs += [out]
        return torch.stack(outputs), state


class ScriptLSTM(nn.Module):
    """fastrnns' TorchScript LSTM layer (see the module), scripted once when built.

    :func:`torch.jit.script` is deprecated in favour of :func:`torch.compile`; it still runs,
    and this is the loop PyTorch's own benchmark used to judge custom LSTMs.
    """

    def __init__(self, input_size: int, hidden_size: int, device: torch.device | None = None):
        super().__init__()
        self.hidden_size = hidden_size
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", "`torch.jit.script` is deprecated", DeprecationWarning
            )
            self.layer = torch.jit.script(_ScriptLayer(input_size, hidden_size, device))

    @torch.no_grad()
    def load_torch_state_dict(self, state: dict[str, Tensor]) -> None:
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(self.layer.cell, name).copy_(state[f"{name}_l0"])

    def forward(self, inputs: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        zeros = inputs.new_zeros(inputs.shape[1], self.hidden_size)
        out, (h, c) = self.layer(inputs, (zeros, zeros))
        return out, (h.unsqueeze(0), c.unsqueeze(0))


# name → class of the LSTM loops timed beside the package
LOOP_PEERS: dict[str, type[nn.Module]] = {
    "d2l": ScratchLSTM,
    "cell loop": CellLoopLSTM,
    "script": ScriptLSTM,
}


class GemmFloor:
    """The matrix products of one call of a gated layer, and nothing else (see the module).

    Args:
        seq_len, batch, input_size, hidden_size: T, N, H_in, H.
        gates: G, gate blocks per unit (4 for the LSTM, 3 for the GRU).
        backward: whether to include the backward pass's products.
        input_grad: whether to include the input's gradient (needs ``backward``).

    Calling the object runs the products into buffers allocated once: forward, one
    ``(T·N, H_in) × (H_in, G·H)`` product and ``T`` products ``(N, H) × (H, G·H)``;
    backward, ``T`` products ``(N, G·H) × (G·H, H)``, then ``(G·H, T·N) × (T·N, H_in)``,
    ``(G·H, T·N) × (T·N, H)`` and, for the input's gradient, ``(T·N, G·H) × (G·H, H_in)``.
    Nothing waits for the device: the caller synchronizes.
    """

    def __init__(
        self,
        seq_len: int,
        batch: int,
        input_size: int,
        hidden_size: int,
        gates: int = 4,
        *,
        backward: bool = True,
        input_grad: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ) -> None:
        T, N, I, H = seq_len, batch, input_size, hidden_size
        G = gates * H
        gen = torch.Generator().manual_seed(seed)

        def randn(*shape: int) -> Tensor:
            return torch.randn(shape, generator=gen, dtype=dtype).to(device)

        self.backward, self.input_grad = backward, backward and input_grad
        self.x, self.w_ih, self.w_hh = randn(T * N, I), randn(G, I), randn(G, H)
        self.hs, self.da = randn(T * N, H), randn(T * N, G)  # states and gate gradients
        self.xw, self.step_out = randn(T * N, G), randn(N, G)
        self.dh = randn(N, H)
        self.dw_ih, self.dw_hh, self.dx = randn(G, I), randn(G, H), randn(T * N, I)
        # views made once, outside the timed call
        self.h_steps = self.hs.split(N)
        self.da_steps = self.da.split(N)
        self.w_ih_t, self.w_hh_t = self.w_ih.t(), self.w_hh.t()

    def __call__(self) -> None:
        torch.mm(self.x, self.w_ih_t, out=self.xw)  # X W_ihᵀ, all steps
        for h in self.h_steps:  # W_hh h_{t-1}, one step at a time
            torch.mm(h, self.w_hh_t, out=self.step_out)
        if not self.backward:
            return
        for da in self.da_steps:  # W_hhᵀ da_t, one step at a time
            torch.mm(da, self.w_hh, out=self.dh)
        da_t = self.da.t()
        torch.mm(da_t, self.x, out=self.dw_ih)  # dW_ih = Σ_t da_t x_tᵀ
        torch.mm(da_t, self.hs, out=self.dw_hh)  # dW_hh = Σ_t da_t h_{t-1}ᵀ
        if self.input_grad:
            torch.mm(self.da, self.w_ih, out=self.dx)  # dX = dA W_ih
