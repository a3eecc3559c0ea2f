"""A recurrent layer with a linear readout: the model behind the book's experiments."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnn_course.layers import GRU, LSTM, RNN
from rnn_course.validation import expect_choice, expect_positive_int

LAYERS: dict[str, type[nn.Module]] = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


class SequenceModel(nn.Module):
    """An rnn_course ``RNN``/``LSTM``/``GRU`` layer (``batch_first=True``) and a linear readout.

    Args:
        cell: ``"rnn"`` (tanh), ``"lstm"`` or ``"gru"`` (case-insensitive).
        input_size: D, features per step.
        hidden_size: H, per direction.
        output_size: outputs per prediction (classes, or 1 for a regression).
        num_layers: stacked layers.
        bidirectional: run a second layer from right to left and concatenate.
        skip: ``None``, ``"residual"``, ``"highway"`` or ``"dense"`` connections between
            stacked layers (passed to the layer).
        readout: ``"last"`` predicts once per sequence, ``"all"`` once per step.
        layer_kwargs: further keyword arguments for the layer (``dropout``,
            ``nonlinearity``, ``reset_after``, …).
        device, dtype: where and in which precision to create the parameters.

    Shape:
        - input: ``(N, T, D)``
        - output: ``(N, output_size)`` for ``readout="last"``, ``(N, T, output_size)`` for
          ``"all"``.

    Notes:
        For ``readout="last"`` with ``bidirectional=True`` the summary of the sequence is
        the book's :math:`[\\overrightarrow{\\mathbf{h}}^{(T)}; \\overleftarrow{\\mathbf{h}}^{(1)}]`
        = ``[output[:, -1, :H]; output[:, 0, H:]]``: the forward direction has read
        everything at the last step, the backward direction at the first
        (``output[:, -1, H:]`` would be the backward state after reading one token only).
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        num_layers: int = 1,
        bidirectional: bool = False,
        skip: str | None = None,
        readout: str = "last",
        layer_kwargs: dict[str, Any] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(cell, str):
            raise TypeError(f"cell must be a str, got {type(cell).__name__}")
        expect_choice("cell", cell.lower(), tuple(LAYERS))
        expect_positive_int("input_size", input_size)
        expect_positive_int("hidden_size", hidden_size)
        expect_positive_int("output_size", output_size)
        expect_positive_int("num_layers", num_layers)
        expect_choice("readout", readout, ("last", "all"))
        expect_choice("skip", skip, (None, "residual", "highway", "dense"))
        self.cell = cell.lower()
        self.hidden_size = hidden_size
        self.bidirectional = bool(bidirectional)
        self.readout = readout
        kwargs: dict[str, Any] = dict(layer_kwargs or {})
        if skip is not None:
            kwargs["skip"] = skip
        self.rnn = LAYERS[self.cell](
            input_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=self.bidirectional,
            device=device,
            dtype=dtype,
            **kwargs,
        )
        num_directions = 2 if self.bidirectional else 1
        self.head = nn.Linear(num_directions * hidden_size, output_size, device=device, dtype=dtype)

    def forward(self, x: Tensor, hx: Any = None) -> Tensor:
        """Predict from ``x (N, T, D)``; ``hx`` is the layer's initial state (default zeros)."""
        out, _ = self.rnn(x, hx)  # (N, T, num_directions·H)
        if self.readout == "all":
            return self.head(out)  # (N, T, output_size)
        H = self.hidden_size
        if self.bidirectional:
            # forward direction done at step T (index -1), backward direction at step 1 (index 0)
            summary = torch.cat([out[:, -1, :H], out[:, 0, H:]], dim=1)  # (N, 2H)
        else:
            summary = out[:, -1]  # (N, H)
        return self.head(summary)  # (N, output_size)
