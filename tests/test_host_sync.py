"""The layers' forward and backward passes never wait for the device.

A host synchronization (``.item()``, ``.tolist()``, ``.cpu()``, NumPy conversion, or a
Python ``if`` on a tensor's value) inside a time loop stalls a GPU once per step. The
fixture below makes every such method raise while a layer runs, on every device; on CUDA,
PyTorch's own synchronization check is switched to raising as well.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import rnn_course as rc
import rnn_course.lstm_loop as lstm_loop_module

I, H, T, N = 3, 4, 5, 2

SYNCING = (
    "item",
    "tolist",
    "cpu",
    "numpy",
    "__array__",
    "__bool__",
    "__int__",
    "__float__",
    "__index__",
)


class HostSync(RuntimeError):
    """Raised when a tensor's value is read by the host."""


@contextlib.contextmanager
def no_host_sync(device: torch.device, allow: tuple[torch.Tensor, ...] = ()) -> Iterator[None]:
    """Make the methods in :data:`SYNCING` raise :class:`HostSync` within the block.

    ``allow`` names tensors that live on the host by contract, whose reading waits for no
    device: a packed batch's ``batch_sizes``.
    """
    saved = {name: torch.Tensor.__dict__.get(name) for name in SYNCING}
    original = {name: getattr(torch.Tensor, name) for name in SYNCING}

    def forbid(name: str):
        def raiser(self, *args, **kwargs):
            if any(self is t for t in allow) and self.device.type == "cpu":
                return original[name](self, *args, **kwargs)
            raise HostSync(f"Tensor.{name} called inside a layer")

        return raiser

    for name in SYNCING:
        setattr(torch.Tensor, name, forbid(name))
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode("default")
        for name, method in saved.items():
            if method is None:
                delattr(torch.Tensor, name)
            else:
                setattr(torch.Tensor, name, method)


def test_the_guard_catches_every_kind_of_synchronization():
    t = torch.ones(())
    attempts = [
        lambda: t.item(),
        lambda: t.tolist(),
        lambda: t.cpu(),
        lambda: t.numpy(),
        lambda: bool(t),
        lambda: int(t),
        lambda: float(t),
        lambda: [0, 1][t.long()],
        lambda: t if t > 0 else None,
    ]
    with no_host_sync(t.device):
        for attempt in attempts:
            with pytest.raises(HostSync):
                attempt()
    # and everything works again afterwards
    assert t.item() == 1.0 and bool(t) and t.cpu().tolist() == 1.0


# (class, constructor arguments); every layer type and cell variant
LAYERS = {
    "rnn_tanh": (rc.RNN, {}),
    "rnn_relu": (rc.RNN, {"nonlinearity": "relu"}),
    "lstm": (rc.LSTM, {}),
    "gru": (rc.GRU, {}),
    "gru_reset_before": (rc.GRU, {"reset_after": False}),
}
# (num_layers, bidirectional, batch_first, bias, dropout, with_hx, unbatched)
OPTIONS = [
    (1, False, False, True, 0.0, False, False),
    (1, True, True, False, 0.0, True, False),
    (2, False, True, True, 0.5, True, False),
    (2, True, False, True, 0.5, False, False),
    (3, True, False, False, 0.0, True, False),
    (2, True, False, True, 0.0, True, True),
]


def layer_cases() -> Iterator[object]:
    for (kind, _), skip, options in itertools.product(LAYERS.items(), rc.layers.SKIPS, OPTIONS):
        num_layers = options[0]
        if skip is not None and num_layers == 1:
            continue  # skip connections act between layers
        name = f"{kind}-{skip}-" + "-".join(str(o) for o in options)
        yield pytest.param(kind, skip, *options, id=name)


@pytest.mark.parametrize(
    ("kind", "skip", "num_layers", "bidirectional", "batch_first", "bias", "dropout", "with_hx",
     "unbatched"),
    list(layer_cases()),
)  # fmt: skip
def test_forward_and_backward_run_without_host_synchronization(
    kind, skip, num_layers, bidirectional, batch_first, bias, dropout, with_hx, unbatched, device
):
    cls, extra = LAYERS[kind]
    torch.manual_seed(0)
    width = H * (2 if bidirectional else 1)
    # a residual stack needs equal input and output sizes
    input_size = width if skip == "residual" else I
    layer = cls(
        input_size, H, num_layers=num_layers, bias=bias, batch_first=batch_first,
        dropout=dropout, bidirectional=bidirectional, skip=skip, device=device, **extra,
    )  # fmt: skip
    layer.train(dropout > 0)
    D = 2 if bidirectional else 1
    shape = (
        (T, input_size) if unbatched else (N, T, input_size) if batch_first else (T, N, input_size)
    )
    x = torch.randn(shape, device=device, requires_grad=True)
    state_shape = (D * num_layers, H) if unbatched else (D * num_layers, N, H)
    hx = None
    if with_hx:
        h0 = torch.randn(state_shape, device=device, requires_grad=True)
        hx = (h0, torch.randn(state_shape, device=device)) if kind == "lstm" else h0
    with no_host_sync(device):
        out, state = layer(x, hx)
        final = state[0] if kind == "lstm" else state
        (out.sum() + final.square().sum()).backward()
    assert out.shape[-1] == width
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in layer.named_parameters():
        assert p.grad is not None, name


@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_per_step_factors_run_without_host_synchronization(monkeypatch, bidirectional, device):
    """The LSTM's paths for large steps (factors per step, tanh by a sigmoid) are checked
    too: the sizes above are small enough for the other paths."""
    monkeypatch.setattr(lstm_loop_module, "PER_STEP_FACTORS", 0)
    monkeypatch.setattr(lstm_loop_module, "TANH_BY_SIGMOID", 0)
    torch.manual_seed(0)
    layer = rc.LSTM(I, H, num_layers=2, bidirectional=bidirectional, device=device)
    x = torch.randn(T, N, I, device=device, requires_grad=True)
    with no_host_sync(device):
        out, (h, c) = layer(x)
        (out.sum() + h.square().sum() + c.sum()).backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("kind", list(LAYERS))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("enforce_sorted", [False, True])
def test_packed_sequences_run_without_host_synchronization(
    kind, bidirectional, enforce_sorted, device
):
    """A packed batch's batch_sizes are read (they live on the host); nothing else is."""
    cls, extra = LAYERS[kind]
    torch.manual_seed(0)
    layer = cls(I, H, num_layers=2, bidirectional=bidirectional, device=device, **extra)
    lengths = [5, 3, 5, 1] if not enforce_sorted else [5, 5, 3, 1]
    x = torch.randn(max(lengths), len(lengths), I, device=device, requires_grad=True)
    packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=enforce_sorted)
    D = 2 if bidirectional else 1
    h0 = torch.randn(2 * D, len(lengths), H, device=device, requires_grad=True)
    hx = (h0, torch.randn_like(h0)) if kind == "lstm" else h0
    with no_host_sync(device, allow=(packed.batch_sizes,)):
        out, state = layer(packed, hx)
        final = state[0] if kind == "lstm" else state
        (out.data.sum() + final.square().sum()).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(h0.grad).all()
    for name, p in layer.named_parameters():
        assert p.grad is not None, name


def test_the_guard_allows_only_the_named_host_tensors():
    allowed, other = torch.tensor([3, 2]), torch.tensor([3, 2])
    with no_host_sync(torch.device("cpu"), allow=(allowed,)):
        assert allowed.tolist() == [3, 2]
        with pytest.raises(HostSync):
            other.tolist()
