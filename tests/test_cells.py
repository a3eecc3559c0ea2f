"""rnn_course.RNNCell / LSTMCell / GRUCell against torch.nn and the lecture's GRU."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import rnn_course as rc

I, H, N = 3, 5, 4

# name → (ours, torch.nn, extra constructor arguments, number of gates)
KINDS = {
    "rnn_tanh": (rc.RNNCell, nn.RNNCell, {"nonlinearity": "tanh"}, 1),
    "rnn_relu": (rc.RNNCell, nn.RNNCell, {"nonlinearity": "relu"}, 1),
    "lstm": (rc.LSTMCell, nn.LSTMCell, {}, 4),
    "gru": (rc.GRUCell, nn.GRUCell, {}, 3),
}
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def raises(error: type[Exception], text: str):
    """``pytest.raises`` for a message that contains ``text`` literally."""
    return pytest.raises(error, match=re.escape(text))


def make_pair(kind, source, device, dtype, bias=True):
    ours_cls, ref_cls, extra, _ = KINDS[kind]
    torch.manual_seed(0)
    ref = ref_cls(I, H, bias=bias, device=device, dtype=dtype, **extra)
    ours = ours_cls(I, H, bias=bias, device=device, dtype=dtype, **extra)
    if source == "torch":
        ours.load_state_dict(ref.state_dict())
    else:
        ref.load_state_dict(ours.state_dict())
    return ours, ref


def as_list(result) -> list[torch.Tensor]:
    return list(result) if isinstance(result, tuple) else [result]


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("source", ["torch", "ours"])
@pytest.mark.parametrize(("bias", "with_hx", "batched"), [
    (True, True, True), (True, False, True), (False, True, True), (True, True, False),
    (False, False, False),
])  # fmt: skip
def test_parity_with_torch(kind, dtype, source, bias, with_hx, batched, device):
    ours, ref = make_pair(kind, source, device, dtype, bias)
    gen = torch.Generator().manual_seed(1)

    def randn(*shape: int) -> torch.Tensor:
        shape = shape if batched else shape[1:]
        return torch.randn(shape, generator=gen, dtype=dtype).to(device).requires_grad_()

    x = randn(N, I)
    hx = None
    if with_hx:
        hx = (randn(N, H), randn(N, H)) if kind == "lstm" else randn(N, H)
    leaves = [x] + ([] if hx is None else as_list(hx))
    weights = [randn(N, H), randn(N, H)]
    results = []
    for cell in (ours, ref):
        outs = as_list(cell(x, hx))
        loss = sum((o * w).sum() for o, w in zip(outs, weights, strict=False))
        params = list(cell.parameters())
        results.append((outs, torch.autograd.grad(loss, leaves + params)))
    (got, got_grads), (want, want_grads) = results
    assert [t.shape for t in got] == [t.shape for t in want]
    assert got[0].shape == ((N, H) if batched else (H,))
    tol = TOL[dtype]
    for a, b in zip(got + list(got_grads), want + list(want_grads), strict=True):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("kind", list(KINDS))
def test_parameter_names_shapes_and_init(kind):
    ours_cls, ref_cls, extra, G = KINDS[kind]
    torch.manual_seed(0)
    ours = ours_cls(I, 64, **extra)
    ref = ref_cls(I, 64, **extra)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items()
    }
    assert ours.weight_ih.shape == (G * 64, I)
    bound = 1 / 64**0.5
    values = torch.cat([p.detach().flatten() for p in ours.parameters()])
    assert values.abs().max() <= bound
    assert values.abs().max() > 0.95 * bound
    assert not ours_cls(I, 64, bias=False, **extra).state_dict().keys() & {"bias_ih", "bias_hh"}


def lecture_gru(x, h, cell):
    """The lecture's GRU with the reset gate inside the recurrent product, written out."""
    W_ir, W_iz, W_in = cell.weight_ih.chunk(3)
    W_hr, W_hz, W_hn = cell.weight_hh.chunk(3)
    b_ir, b_iz, b_in = cell.bias_ih.chunk(3)
    b_hr, b_hz, b_hn = cell.bias_hh.chunk(3)
    r = torch.sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    u = 1 - torch.sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)  # the lecture's update gate
    h_tilde = torch.tanh(x @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
    return u * h_tilde + (1 - u) * h


def test_gru_reset_before_matches_the_lecture_and_differs_from_torch():
    torch.manual_seed(0)
    before = rc.GRUCell(I, H, reset_after=False).double()
    x = torch.randn(N, I, dtype=torch.float64, requires_grad=True)
    h = torch.randn(N, H, dtype=torch.float64).tanh().requires_grad_()
    got = before(x, h)
    want = lecture_gru(x, h, before)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    dgot = torch.autograd.grad(got.sum(), [x, h, *before.parameters()])
    dwant = torch.autograd.grad(want.sum(), [x, h, *before.parameters()])
    for a, b in zip(dgot, dwant, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    reference = nn.GRUCell(I, H).double()
    reference.load_state_dict(before.state_dict())
    assert (reference(x, h) - got).abs().max() > 1e-2
    after = rc.GRUCell(I, H).double()
    after.load_state_dict(before.state_dict())
    torch.testing.assert_close(after(x, h), reference(x, h), atol=1e-12, rtol=0)


def test_lstm_cell_equations_by_hand():
    torch.manual_seed(0)
    cell = rc.LSTMCell(I, H).double()
    x = torch.randn(N, I, dtype=torch.float64)
    h, c = torch.randn(N, H, dtype=torch.float64), torch.randn(N, H, dtype=torch.float64)
    a = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = a.chunk(4, dim=1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_next = torch.sigmoid(o) * torch.tanh(c_next)
    got_h, got_c = cell(x, (h, c))
    torch.testing.assert_close(got_c, c_next, atol=1e-12, rtol=0)
    torch.testing.assert_close(got_h, h_next, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_arguments(kind):
    ours_cls, _, extra, _ = KINDS[kind]
    with raises(ValueError, "hidden_size must be positive, got -2"):
        ours_cls(I, -2, **extra)
    with raises(TypeError, "input_size must be an int, got str"):
        ours_cls("3", H, **extra)
    cell = ours_cls(I, H, **extra)
    with raises(ValueError, "input must have shape (N, H_in) = (?, 3), got (4, 2)"):
        cell(torch.zeros(N, 2))
    with raises(ValueError, "input must have shape (H_in,) = (3), got (2,)"):
        cell(torch.zeros(2))
    with raises(
        ValueError, "input must have shape (N, H_in) or (H_in,) with H_in=3, got (1, 4, 3)"
    ):
        cell(torch.zeros(1, N, I))
    with raises(TypeError, "input must have a floating-point dtype, got torch.int32"):
        cell(torch.zeros(N, I, dtype=torch.int32))
    with raises(TypeError, "input has dtype torch.float64 but weight_ih has dtype torch.float32"):
        cell(torch.zeros(N, I, dtype=torch.float64))
    name = "h" if kind == "lstm" else "hx"
    bad = torch.zeros(N + 1, H)
    with raises(ValueError, f"{name} must have shape (N, H) = (4, 5), got (5, 5)"):
        cell(torch.zeros(N, I), (bad, bad) if kind == "lstm" else bad)


def test_bad_cell_options():
    with raises(ValueError, "nonlinearity must be one of 'tanh', 'relu', got 'gelu'"):
        rc.RNNCell(I, H, nonlinearity="gelu")
    with raises(TypeError, "hx must be a pair (h, c) of tensors or None, got Tensor"):
        rc.LSTMCell(I, H)(torch.zeros(N, I), torch.zeros(N, H))
    with raises(TypeError, "dtype must be a floating-point dtype, got torch.int64"):
        rc.GRUCell(I, H, dtype=torch.int64)


def test_mixed_devices_are_rejected():
    cell = rc.GRUCell(I, H, device="meta")
    with raises(ValueError, "input is on cpu but weight_ih is on meta"):
        cell(torch.zeros(N, I))
