r"""G independent models computed as one: the book's way of training ten seeds at once.

A conclusion drawn from training has to hold across seeds, and a small recurrent model
spends most of its time in per-step bookkeeping rather than arithmetic. Ten models of the
same shape, each with its own weights, can share that bookkeeping: stack their weights
along a leading *group* axis ``G`` and replace every matrix product by a batched one
(:func:`torch.baddbmm`). Group ``g`` then computes exactly what model ``g`` computes alone.
Nothing is shared between groups except the loop: no weight, no gradient, no statistic.

The layers here mirror the package's (:class:`rnn_course.RNN`, :class:`rnn_course.LSTM`,
:class:`rnn_course.GRU` with :mod:`torch.nn`'s gate order and reset-after GRU) and the
models mirror :class:`rnn_course.models.SequenceModel`,
:class:`rnn_course.language.models.TokenClassifier` and
:class:`rnn_course.language.models.CharLM`, with the same parameter names. ``from_models``
stacks models built one per seed, so group ``g`` starts from the weights that
``torch.manual_seed(seed_g)`` gives the ordinary model, and ``model(g)`` gives an ordinary
model back.

Shapes carry the group axis first: a batch-first input ``(N, T, D)`` of one model becomes
``(G, N, T, D)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rnn_course.language.models import CharLM, TokenClassifier
from rnn_course.models import SequenceModel
from rnn_course.validation import expect_choice, expect_positive_int

GATES: dict[str, int] = {"rnn": 1, "lstm": 4, "gru": 3}


def _stack_parameters(target: nn.Module, models: Sequence[nn.Module]) -> None:
    """Copy ``models[g]``'s parameter of every name into group ``g`` of ``target``'s."""
    sources = [dict(m.named_parameters()) for m in models]
    with torch.no_grad():
        for name, p in target.named_parameters():
            p.copy_(torch.stack([s[name].detach() for s in sources]))


def _unstack_parameters(target: nn.Module, grouped: nn.Module, g: int) -> nn.Module:
    """Load group ``g`` of ``grouped`` into the ordinary model ``target``."""
    params = dict(grouped.named_parameters())
    with torch.no_grad():
        for name, p in target.named_parameters():
            p.copy_(params[name][g])
    return target


class GroupedLinear(nn.Module):
    """``G`` independent :class:`torch.nn.Linear` layers: ``(G, ..., in)`` → ``(G, ..., out)``."""

    def __init__(self, groups: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.groups = expect_positive_int("groups", groups)
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.zeros(groups, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(groups, out_features))

    def forward(self, x: Tensor) -> Tensor:
        G, *middle, D = x.shape
        # y = W x + b for every row of every group, one batched product
        y = torch.baddbmm(self.bias.unsqueeze(1), x.reshape(G, -1, D), self.weight.transpose(1, 2))
        return y.view(G, *middle, self.out_features)


class GroupedEmbedding(nn.Module):
    """``G`` independent embeddings with padding id 0: ``(G, N, T)`` → ``(G, N, T, E)``."""

    def __init__(self, groups: int, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.groups = expect_positive_int("groups", groups)
        self.weight = nn.Parameter(torch.zeros(groups, num_embeddings, embedding_dim))

    def forward(self, tokens: Tensor) -> Tensor:
        G = tokens.shape[0]
        rows = torch.arange(G, device=tokens.device).view(G, *([1] * (tokens.dim() - 1)))
        # padding (id 0) embeds to zero and receives no gradient, as with padding_idx=0
        return self.weight[rows, tokens] * (tokens != 0).unsqueeze(-1).to(self.weight.dtype)


def _order(T: int, reverse: bool) -> range:
    """The time steps in processing order."""
    return range(T - 1, -1, -1) if reverse else range(T)


def _previous_states(hs: Tensor, h0: Tensor, order: list[int]) -> Tensor:
    """The state every step read, in time order: ``h0`` for the first processed step."""
    h_prev = torch.empty_like(hs)
    h_prev[:, order[0]] = h0
    for k in range(1, len(order)):
        h_prev[:, order[k]] = hs[:, order[k - 1]]
    return h_prev


class RNNRecurrence(torch.autograd.Function):
    r"""The tanh RNN's time loop for ``G`` groups, with the backward pass of chapter 2.

    Per step :math:`\mathbf{h} = \tanh(\mathbf{a})` with
    :math:`\mathbf{a} = W_{hh}\mathbf{h}_{prev} + \mathbf{x}_w`; backward,
    :math:`\boldsymbol{\delta} = (1 - \mathbf{h}^2) \odot \bar{\mathbf{h}}` and
    :math:`\bar{\mathbf{h}}_{prev} = W_{hh}^\top \boldsymbol{\delta}`.

    Shape:
        ``xw (G, T, N, H)`` (input projections with both biases), ``w_hh (G, H, H)``,
        ``h0 (G, N, H)`` → ``hs (G, T, N, H)`` in time order; ``reverse`` processes the
        steps from ``T`` down to 1.
    """

    @staticmethod
    def forward(ctx: Any, xw: Tensor, w_hh: Tensor, h0: Tensor, reverse: bool) -> Tensor:
        """Run the loop without recording; keep the states."""
        G, T, N, H = xw.shape
        w_t = w_hh.transpose(1, 2).contiguous()
        hs = xw.new_empty(G, T, N, H)
        h = h0
        for t in _order(T, reverse):
            # h^(t) = tanh(W_x x^(t) + b + W_h h^(t-1))
            h = torch.tanh(torch.baddbmm(xw[:, t], h, w_t))
            hs[:, t] = h
        ctx.reverse = reverse
        ctx.save_for_backward(hs, h0, w_hh)
        return hs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dhs: Tensor) -> Any:
        """Backpropagate through time, from the last processed step to the first."""
        hs, h0, w_hh = ctx.saved_tensors
        G, T, N, H = hs.shape
        order = list(_order(T, ctx.reverse))
        dxw = hs.new_empty(G, T, N, H)
        dh = torch.zeros_like(h0)
        for k in range(T - 1, -1, -1):
            t = order[k]
            h = hs[:, t]
            # δ^(t) = (1 − h^(t)²) ⊙ h̄^(t)
            delta = (dh + dhs[:, t]) * (1 - h * h)
            dxw[:, t] = delta
            dh = torch.bmm(delta, w_hh)  # W_hᵀ δ, row by row
        h_prev = _previous_states(hs, h0, order)
        dw = torch.bmm(dxw.view(G, T * N, H).transpose(1, 2), h_prev.view(G, T * N, H))
        return dxw, dw, dh, None


class LSTMRecurrence(torch.autograd.Function):
    r"""The LSTM's time loop for ``G`` groups, with its backward pass written out.

    Autograd would record about ten operations per step; at the book's sizes their
    bookkeeping costs as much as the arithmetic. This function runs the loop without
    recording and backpropagates by the recursion of chapter 5: per step,

    .. math::

        \begin{aligned}
        \bar{\mathbf{c}} &\mathrel{+}= \bar{\mathbf{h}} \odot \mathbf{o} \odot
        (1 - \tanh^2 \mathbf{c}),\\
        \boldsymbol{\delta} &= (\bar{\mathbf{c}} \odot \mathbf{g} \odot \mathbf{i}',\
        \bar{\mathbf{c}} \odot \mathbf{c}_{prev} \odot \mathbf{f}',\\
        &\qquad \bar{\mathbf{c}} \odot \mathbf{i} \odot \mathbf{g}',\
        \bar{\mathbf{h}} \odot \tanh \mathbf{c} \odot \mathbf{o}'),
        \end{aligned}

    then :math:`\bar{\mathbf{h}}_{prev} = W_{hh}^\top \boldsymbol{\delta}` and
    :math:`\bar{\mathbf{c}}_{prev} = \mathbf{f} \odot \bar{\mathbf{c}}`, with the
    derivatives of the gates' nonlinearities written with a prime. The recurrent weights'
    gradient is one batched product after the loop.

    Shape:
        ``xw (G, T, N, 4H)`` (input projections with both biases), ``w_hh (G, 4H, H)``,
        ``h0``, ``c0 (G, N, H)`` → ``hs (G, T, N, H)`` in time order and the last cell
        ``(G, N, H)``; ``reverse`` processes the steps from ``T`` down to 1.
    """

    @staticmethod
    def forward(ctx: Any, xw: Tensor, w_hh: Tensor, h0: Tensor, c0: Tensor, reverse: bool) -> Any:
        """Run the loop without recording; keep what the backward pass needs."""
        G, T, N, H4 = xw.shape
        H = H4 // 4
        w_t = w_hh.transpose(1, 2).contiguous()
        sig = xw.new_empty(T, G, N, H4)  # σ of every block (the g block unused)
        gs = xw.new_empty(T, G, N, H)  # the candidate g = tanh(·)
        cs = xw.new_empty(T, G, N, H)
        tcs = xw.new_empty(T, G, N, H)  # tanh(c)
        hs = xw.new_empty(G, T, N, H)
        h, c = h0, c0
        for t in _order(T, reverse):
            a = torch.baddbmm(xw[:, t], h, w_t)
            i, f, _, o = torch.sigmoid(a, out=sig[t]).chunk(4, dim=-1)
            g = torch.tanh(a[..., 2 * H : 3 * H], out=gs[t])
            # c = f ⊙ c_prev + i ⊙ g, h = o ⊙ tanh(c)
            c = torch.addcmul(f * c, i, g, out=cs[t])
            h = o * torch.tanh(c, out=tcs[t])
            hs[:, t] = h
        ctx.reverse = reverse
        ctx.save_for_backward(sig, gs, cs, tcs, hs, h0, c0, w_hh)
        return hs, c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dhs: Tensor | None, dc_last: Tensor | None) -> Any:
        """Backpropagate through the loop by the recursion of the class docstring."""
        sig, gs, cs, tcs, hs, h0, c0, w_hh = ctx.saved_tensors
        T, G, N, H4 = sig.shape
        order = list(_order(T, ctx.reverse))
        dxw = sig.new_empty(G, T, N, H4)
        dh = torch.zeros_like(h0)
        dc = torch.zeros_like(c0) if dc_last is None else dc_last.clone()
        for k in range(T - 1, -1, -1):
            t = order[k]
            i, f, _, o = sig[t].chunk(4, dim=-1)
            g, tc = gs[t], tcs[t]
            c_prev = cs[order[k - 1]] if k > 0 else c0
            if dhs is not None:
                dh = dh + dhs[:, t]
            # two paths into the cell: from the next cell, and through h
            dc = torch.addcmul(dc, dh * o, 1 - tc * tc)
            di = dc * g * i * (1 - i)
            df = dc * c_prev * f * (1 - f)
            dg = dc * i * (1 - g * g)
            do = dh * tc * o * (1 - o)
            da = torch.cat([di, df, dg, do], dim=-1)
            dxw[:, t] = da
            dh = torch.bmm(da, w_hh)
            dc = dc * f
        h_prev = _previous_states(hs, h0, order)
        dw = torch.bmm(dxw.view(G, T * N, H4).transpose(1, 2), h_prev.view(G, T * N, -1))
        return dxw, dw, dh, dc, None


class GRURecurrence(torch.autograd.Function):
    r"""The GRU's time loop (reset gate after the recurrent product) for ``G`` groups,
    with its backward pass written out, as :class:`LSTMRecurrence` does for the LSTM.

    Per step, with :math:`\mathbf{m} = W_{hh}\mathbf{h} + \mathbf{b}_{hh}` split into
    the blocks r, z, n, the forward pass is :math:`\mathbf{r}, \mathbf{z} =
    \sigma(\cdot)`, :math:`\mathbf{n} = \tanh(\mathbf{a}_n + \mathbf{r} \odot
    \mathbf{m}_n)` and :math:`\mathbf{h}' = (1 - \mathbf{z}) \odot \mathbf{n} +
    \mathbf{z} \odot \mathbf{h}`.

    Shape:
        ``xw (G, T, N, 3H)`` (input projections with ``b_ih``), ``w_hh (G, 3H, H)``,
        ``b_hh (G, 3H)``, ``h0 (G, N, H)`` → ``hs (G, T, N, H)`` in time order;
        ``reverse`` processes the steps from ``T`` down to 1.
    """

    @staticmethod
    def forward(
        ctx: Any, xw: Tensor, w_hh: Tensor, b_hh: Tensor, h0: Tensor, reverse: bool
    ) -> Tensor:
        """Run the loop without recording; keep what the backward pass needs."""
        G, T, N, H3 = xw.shape
        H = H3 // 3
        w_t, bias = w_hh.transpose(1, 2).contiguous(), b_hh.unsqueeze(1)
        rzs = xw.new_empty(T, G, N, 2 * H)  # r, z
        ns = xw.new_empty(T, G, N, H)  # the candidate n
        m_n = xw.new_empty(T, G, N, H)  # W_hn h + b_hn, which the reset gate scales
        hs = xw.new_empty(G, T, N, H)
        h = h0
        for t in _order(T, reverse):
            m = torch.baddbmm(bias, h, w_t)  # (G, N, 3H)
            x_t = xw[:, t]
            rz = torch.sigmoid(x_t[..., : 2 * H] + m[..., : 2 * H], out=rzs[t])
            r, z = rz.chunk(2, dim=-1)
            m_n[t] = m[..., 2 * H :]
            n = torch.tanh(torch.addcmul(x_t[..., 2 * H :], r, m_n[t]), out=ns[t])
            # h = (1 − z) ⊙ n + z ⊙ h_prev
            h = torch.lerp(n, h, z)
            hs[:, t] = h
        ctx.reverse = reverse
        ctx.save_for_backward(rzs, ns, m_n, hs, h0, w_hh)
        return hs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, dhs: Tensor) -> Any:
        """Backpropagate through the loop, one step at a time from the last."""
        rzs, ns, m_n, hs, h0, w_hh = ctx.saved_tensors
        T, G, N, H = ns.shape
        order = list(_order(T, ctx.reverse))
        dxw = ns.new_empty(G, T, N, 3 * H)
        dm = ns.new_empty(G, T, N, 3 * H)  # gradient of W_hh h + b_hh
        h_prev = _previous_states(hs, h0, order)
        dh = torch.zeros_like(h0)
        for k in range(T - 1, -1, -1):
            t = order[k]
            r, z = rzs[t].chunk(2, dim=-1)
            n = ns[t]
            dh = dh + dhs[:, t]
            da_n = dh * (1 - z) * (1 - n * n)
            da_r = da_n * m_n[t] * r * (1 - r)
            da_z = dh * (h_prev[:, t] - n) * z * (1 - z)
            dxw[:, t] = torch.cat([da_r, da_z, da_n], dim=-1)
            dm_t = torch.cat([da_r, da_z, da_n * r], dim=-1)
            dm[:, t] = dm_t
            dh = torch.baddbmm(dh * z, dm_t, w_hh)
        dm_flat = dm.view(G, T * N, 3 * H)
        dw = torch.bmm(dm_flat.transpose(1, 2), h_prev.view(G, T * N, -1))
        return dxw, dw, dm_flat.sum(dim=1), dh, None


def grouped_direction(
    cell: str,
    x: Tensor,
    state: Any,
    weights: tuple[Tensor, Tensor, Tensor, Tensor],
    *,
    reverse: bool = False,
) -> tuple[Tensor, Any]:
    """One direction of one recurrent layer for ``G`` groups: ``rnn`` (tanh), ``lstm``, ``gru``.

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"`` (reset gate after the recurrent product).
        x: inputs ``(G, N, T, D)``, or int64 ids ``(G, N, T)`` that stand for one-hot
            vectors of length ``D``: then the input projection reads the ids' columns of
            ``weight_ih`` instead of multiplying by the one-hot vectors, the same numbers
            without the products with zero.
        state: ``(G, N, H)`` (a pair ``(h, c)`` for the LSTM), or ``None`` for zeros.
        weights: ``weight_ih (G, k·H, D)``, ``weight_hh (G, k·H, H)``, ``bias_ih`` and
            ``bias_hh (G, k·H)``, gate blocks in :mod:`torch.nn`'s order.
        reverse: read the sequence from the last step to the first.

    Returns:
        The outputs ``(G, N, T, H)`` in time order and the final state.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    G, N, T = x.shape[:3]
    H = w_hh.shape[2]
    bias = b_ih if cell == "gru" else b_ih + b_hh
    # the steps in time-major order within each group: (G, T, N, ...)
    x_tm = x.transpose(1, 2).contiguous()
    if x.is_floating_point():
        # the input projection of every step in one batched product: (G, T·N, k·H)
        xw = torch.baddbmm(bias.unsqueeze(1), x_tm.view(G, T * N, -1), w_ih.transpose(1, 2))
    else:
        # one-hot inputs: W_ih e_id is column id of W_ih
        rows = torch.arange(G, device=x.device).view(G, 1)
        xw = w_ih.transpose(1, 2)[rows, x_tm.view(G, T * N)] + bias.unsqueeze(1)
    xw = xw.view(G, T, N, -1)
    if state is None:
        zeros = w_hh.new_zeros(G, N, H)
        state = (zeros, zeros) if cell == "lstm" else zeros
    if cell == "lstm":
        hs, c = LSTMRecurrence.apply(xw, w_hh, state[0], state[1], reverse)
        h = hs[:, 0] if reverse else hs[:, -1]
        return hs.transpose(1, 2), (h, c)
    if cell == "gru":
        hs = GRURecurrence.apply(xw, w_hh, b_hh, state, reverse)
        return hs.transpose(1, 2), hs[:, 0] if reverse else hs[:, -1]
    hs = RNNRecurrence.apply(xw, w_hh, state, reverse)
    return hs.transpose(1, 2), hs[:, 0] if reverse else hs[:, -1]


class GroupedStack(nn.Module):
    """A stack of recurrent layers, ``G`` times, named and connected like the package's.

    Layer ``k`` of the forward direction has the parameters ``weight_ih_l{k}``,
    ``weight_hh_l{k}``, ``bias_ih_l{k}`` and ``bias_hh_l{k}``, each with a group axis in
    front (``weight_ih_l0`` is ``(G, k·H, D)``); the backward direction adds the suffix
    ``_reverse``: the names of :class:`rnn_course.RNN` and :mod:`torch.nn`. With
    ``skip="residual"`` layers ``k > 0`` pass up their states plus their inputs, as
    :func:`rnn_course.layers.combine_skip`.

    Shape:
        - x: ``(G, N, T, D)``; state: a list with one initial state per layer and
          direction, or ``None`` for zeros
        - output: ``(G, N, T, directions·H)`` and the list of final states
    """

    def __init__(
        self,
        cell: str,
        groups: int,
        input_size: int,
        hidden_size: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        skip: str | None = None,
    ) -> None:
        super().__init__()
        expect_choice("cell", cell, tuple(GATES))
        expect_choice("skip", skip, (None, "residual"))
        expect_positive_int("groups", groups)
        self.cell, self.num_layers, self.skip = cell, num_layers, skip
        self.input_size, self.hidden_size = input_size, hidden_size
        self.directions = 2 if bidirectional else 1
        rows = GATES[cell] * hidden_size
        for k in range(num_layers):
            width = input_size if k == 0 else self.directions * hidden_size
            for suffix in self._suffixes():
                shapes = {"weight_ih": (rows, width), "weight_hh": (rows, hidden_size)}
                shapes |= {"bias_ih": (rows,), "bias_hh": (rows,)}
                for name, shape in shapes.items():
                    param = nn.Parameter(torch.zeros(groups, *shape))
                    self.register_parameter(f"{name}_l{k}{suffix}", param)

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse")[: self.directions]

    def forward(self, x: Tensor, state: list[Any] | None = None) -> tuple[Tensor, list[Any]]:
        states = state if state is not None else [None] * (self.num_layers * self.directions)
        finals: list[Any] = []
        u = x
        for k in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes()):
                weights = tuple(
                    getattr(self, f"{name}_l{k}{suffix}")
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                )
                i = k * self.directions + d
                out, final = grouped_direction(self.cell, u, states[i], weights, reverse=d == 1)
                outs.append(out)
                finals.append(final)
            h = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
            # y = h + u between stacked layers
            u = h + u if self.skip == "residual" and k > 0 else h
        return u, finals


def _last_real_step(out: Tensor, lengths: Tensor) -> Tensor:
    """``out[g, n, lengths[g, n] - 1]``: ``(G, N, T, F)`` → ``(G, N, F)``."""
    index = (lengths - 1).clamp(min=0)[..., None, None].expand(-1, -1, 1, out.shape[-1])
    return out.gather(2, index).squeeze(2)


class GroupedSequenceModel(nn.Module):
    """``G`` copies of :class:`rnn_course.models.SequenceModel` (one layer) with their own weights.

    Shape:
        - x: ``(G, N, T, D)``
        - output: ``(G, N, K)`` for ``readout="last"``, ``(G, N, T, K)`` for ``"all"``
    """

    def __init__(
        self,
        cell: str,
        groups: int,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        bidirectional: bool = False,
        readout: str = "last",
    ) -> None:
        super().__init__()
        expect_choice("readout", readout, ("last", "all"))
        self.cell, self.hidden_size, self.readout = cell, hidden_size, readout
        self.bidirectional = bidirectional
        self.rnn = GroupedStack(cell, groups, input_size, hidden_size, bidirectional=bidirectional)
        width = (2 if bidirectional else 1) * hidden_size
        self.head = GroupedLinear(groups, width, output_size)

    @classmethod
    def from_models(cls, models: Sequence[SequenceModel]) -> GroupedSequenceModel:
        """Stack one-layer :class:`~rnn_course.models.SequenceModel` instances, one per group."""
        first = models[0]
        grouped = cls(
            first.cell,
            len(models),
            first.rnn.input_size,
            first.hidden_size,
            first.head.out_features,
            bidirectional=first.bidirectional,
            readout=first.readout,
        )
        _stack_parameters(grouped, models)
        return grouped

    def model(self, g: int) -> SequenceModel:
        """Group ``g`` as an ordinary :class:`~rnn_course.models.SequenceModel`."""
        target = SequenceModel(
            self.cell,
            self.rnn.input_size,
            self.hidden_size,
            self.head.out_features,
            bidirectional=self.bidirectional,
            readout=self.readout,
        )
        return _unstack_parameters(target, self, g)

    def run(self, x: Tensor, state: list[Any] | None = None) -> tuple[Tensor, list[Any]]:
        """A tagger's step through a chunk: per-step outputs and the state to carry on.

        Only for ``readout="all"``; ``state`` is what the previous call returned.
        """
        if self.readout != "all":
            raise ValueError("run() carries the state of a tagger: readout must be 'all'")
        out, state = self.rnn(x, state)
        return self.head(out), state

    def forward(self, x: Tensor, state: list[Any] | None = None) -> Tensor:
        out, _ = self.rnn(x, state)  # (G, N, T, directions·H)
        if self.readout == "all":
            return self.head(out)
        H = self.hidden_size
        if self.bidirectional:
            # forward direction done at the last step, backward direction at the first
            summary = torch.cat([out[:, :, -1, :H], out[:, :, 0, H:]], dim=-1)
        else:
            summary = out[:, :, -1]
        return self.head(summary)  # (G, N, K)


class GroupedTokenClassifier(nn.Module):
    """``G`` copies of :class:`rnn_course.language.models.TokenClassifier`.

    Shape:
        - tokens: ``(G, N, T)`` int64, right-padded with 0
        - output: ``(G, N, K)``, read from the top layer at each sequence's last real word
    """

    def __init__(
        self,
        cell: str,
        groups: int,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        num_classes: int = 2,
        *,
        num_layers: int = 1,
        skip: str | None = None,
    ) -> None:
        super().__init__()
        self.cell, self.embed_size, self.hidden_size = cell, embed_size, hidden_size
        self.embed = GroupedEmbedding(groups, vocab_size, embed_size)
        self.rnn = GroupedStack(
            cell, groups, embed_size, hidden_size, num_layers=num_layers, skip=skip
        )
        self.head = GroupedLinear(groups, hidden_size, num_classes)

    @classmethod
    def from_models(cls, models: Sequence[TokenClassifier]) -> GroupedTokenClassifier:
        """Stack :class:`~rnn_course.language.models.TokenClassifier` instances, one per group."""
        first = models[0]
        grouped = cls(
            type(first.rnn).__name__.lower(),
            len(models),
            first.embed.num_embeddings,
            first.embed.embedding_dim,
            first.rnn.hidden_size,
            first.head.out_features,
            num_layers=first.rnn.num_layers,
            skip=first.rnn.skip,
        )
        _stack_parameters(grouped, models)
        return grouped

    def forward(self, tokens: Tensor) -> Tensor:
        lengths = (tokens != 0).sum(dim=-1)  # (G, N)
        out, _ = self.rnn(self.embed(tokens))  # (G, N, T, H)
        return self.head(_last_real_step(out, lengths))  # (G, N, K)


class GroupedCharLM(nn.Module):
    """``G`` copies of :class:`rnn_course.language.models.CharLM` (one layer).

    Shape:
        - ids: ``(G, N, T)`` int64, or ``(N, T)`` shared by every group
        - output: logits ``(G, N, T, V)`` and the state list (carried between calls)
    """

    def __init__(
        self,
        cell: str,
        groups: int,
        vocab_size: int,
        hidden_size: int,
        *,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.cell, self.groups, self.vocab_size = cell, groups, vocab_size
        self.hidden_size, self.bidirectional = hidden_size, bidirectional
        self.rnn = GroupedStack(cell, groups, vocab_size, hidden_size, bidirectional=bidirectional)
        self.head = GroupedLinear(groups, (2 if bidirectional else 1) * hidden_size, vocab_size)

    @classmethod
    def from_models(cls, models: Sequence[CharLM]) -> GroupedCharLM:
        """Stack one-layer :class:`~rnn_course.language.models.CharLM` instances, one per group."""
        first = models[0]
        grouped = cls(
            first.cell,
            len(models),
            first.vocab_size,
            first.rnn.hidden_size,
            bidirectional=first.rnn.bidirectional,
        )
        _stack_parameters(grouped, models)
        return grouped

    def model(self, g: int) -> CharLM:
        """Group ``g`` as an ordinary :class:`~rnn_course.language.models.CharLM`."""
        target = CharLM(
            self.cell, self.vocab_size, self.hidden_size, bidirectional=self.bidirectional
        )
        return _unstack_parameters(target, self, g)

    def forward(self, ids: Tensor, state: list[Any] | None = None) -> tuple[Tensor, list[Any]]:
        if ids.dim() == 2:
            ids = ids.expand(self.groups, *ids.shape)
        out, state = self.rnn(ids, state)  # ids stand for one-hot inputs
        return self.head(out), state
