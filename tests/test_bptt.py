"""Hand-written BPTT equals autograd; truncated BPTT carries the state and cuts the gradient."""

from __future__ import annotations

import pytest
import torch

import rnn_course.bptt
from rnn_course.bptt import (
    detach_state,
    tanh_rnn_backward,
    tanh_rnn_forward,
    truncated_bptt,
    truncated_gradient_norms,
)

SHAPES = [(1, 1, 1), (5, 3, 4), (7, 1, 6), (3, 5, 2)]  # T, D, H


def rnn_inputs(T: int, D: int, H: int, seed: int, device) -> list[torch.Tensor]:
    """x (T, D), h0 (H,), W_x (H, D), W_h (H, H), b (H,) in float64, requiring gradients."""
    gen = torch.Generator().manual_seed(seed)

    def r(*shape: int, scale: float = 1.0) -> torch.Tensor:
        t = scale * torch.randn(*shape, generator=gen, dtype=torch.float64)
        return t.to(device).requires_grad_()

    return [r(T, D), r(H), r(H, D, scale=0.7), r(H, H, scale=0.7), r(H, scale=0.3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_tanh_rnn_forward_matches_torch_rnn(shape, device) -> None:
    """Column vectors: W_x and W_h are torch.nn's weight_ih_l0 and weight_hh_l0 as they are."""
    T, D, H = shape
    x, h0, W_x, W_h, b = rnn_inputs(T, D, H, seed=1, device=device)
    layer = torch.nn.RNN(D, H).double().to(device)
    with torch.no_grad():
        layer.weight_ih_l0.copy_(W_x)
        layer.weight_hh_l0.copy_(W_h)
        layer.bias_ih_l0.copy_(b)
        layer.bias_hh_l0.zero_()
    expected, _ = layer(x[:, None], h0[None, None])  # time-major, batch of one
    h, cache = tanh_rnn_forward(x, h0, W_x, W_h, b)
    assert h.shape == (T, H)
    torch.testing.assert_close(h, expected[:, 0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(cache.h, h)


@pytest.mark.parametrize("shape", SHAPES)
def test_tanh_rnn_backward_matches_autograd(shape, device) -> None:
    inputs = rnn_inputs(*shape, seed=2, device=device)
    h, cache = tanh_rnn_forward(*inputs)
    gen = torch.Generator().manual_seed(3)
    dh = torch.randn(h.shape, generator=gen, dtype=torch.float64).to(device)
    expected = torch.autograd.grad(h, inputs, dh)
    grads = tanh_rnn_backward(dh, cache)
    assert list(grads._fields) == ["dx", "dh0", "dW_x", "dW_h", "db"]
    for ours, theirs, inp in zip(grads, expected, inputs, strict=True):
        assert ours.shape == inp.shape
        assert not ours.requires_grad
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_tanh_rnn_backward_only_last_step(device) -> None:
    """With a loss on the last state only, everything comes through the recurrence."""
    inputs = rnn_inputs(6, 3, 4, seed=4, device=device)
    h, cache = tanh_rnn_forward(*inputs)
    dh = torch.zeros_like(h)
    dh[-1] = 1.0
    expected = torch.autograd.grad(h[-1].sum(), inputs)
    for ours, theirs in zip(tanh_rnn_backward(dh, cache), expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_tanh_rnn_finite_differences() -> None:
    """Centered differences on a tiny case agree with the manual gradient of every input."""
    inputs = [t.detach() for t in rnn_inputs(3, 2, 2, seed=5, device="cpu")]
    gen = torch.Generator().manual_seed(6)
    dh = torch.randn(3, 2, generator=gen, dtype=torch.float64)

    def loss(*args: torch.Tensor) -> float:
        return (tanh_rnn_forward(*args)[0] * dh).sum().item()

    _, cache = tanh_rnn_forward(*inputs)
    grads = tanh_rnn_backward(dh, cache)
    eps = 1e-6
    for k, grad in enumerate(grads):
        numeric = torch.zeros_like(grad)
        for idx in range(grad.numel()):
            plus = [t.clone() for t in inputs]
            minus = [t.clone() for t in inputs]
            plus[k].view(-1)[idx] += eps
            minus[k].view(-1)[idx] -= eps
            numeric.view(-1)[idx] = (loss(*plus) - loss(*minus)) / (2 * eps)
        torch.testing.assert_close(grad, numeric, rtol=1e-7, atol=1e-8)


def test_no_assignment_layout_cells() -> None:
    """The reader package carries no batch-first LSTM forward or backward pass."""
    assert not hasattr(rnn_course.bptt, "lstm_forward")
    assert not hasattr(rnn_course.bptt, "lstm_backward")


def test_forward_validation() -> None:
    x, h0, W_x, W_h, b = (t.detach() for t in rnn_inputs(3, 4, 5, seed=12, device="cpu"))
    with pytest.raises(ValueError, match=r"W_x must have shape \(H, D\) = \(5, 4\), got \(5, 5\)"):
        tanh_rnn_forward(x, h0, W_h, W_h, b)
    with pytest.raises(ValueError, match=r"x must have shape \(T, D\)"):
        tanh_rnn_forward(x[None], h0, W_x, W_h, b)
    with pytest.raises(ValueError, match=r"h0 must have shape \(H,\)"):
        tanh_rnn_forward(x, h0[None], W_x, W_h, b)
    with pytest.raises(TypeError, match=r"b has dtype torch\.float32"):
        tanh_rnn_forward(x, h0, W_x, W_h, b.float())
    with pytest.raises(TypeError, match=r"W_h must be a torch\.Tensor, got list"):
        tanh_rnn_forward(x, h0, W_x, W_h.tolist(), b)
    with pytest.raises(TypeError, match="floating-point"):
        tanh_rnn_forward(x.long(), h0, W_x, W_h, b)
    with pytest.raises(ValueError, match="at least one time step"):
        tanh_rnn_forward(x[:0], h0, W_x, W_h, b)
    _, cache = tanh_rnn_forward(x, h0, W_x, W_h, b)
    with pytest.raises(ValueError, match=r"dh must have shape \(T, H\)"):
        tanh_rnn_backward(torch.zeros(3, 4, dtype=torch.float64), cache)


# ---------------------------------------------------------------------------------------------
# Truncated BPTT
# ---------------------------------------------------------------------------------------------


class StepModel(torch.nn.Module):
    """``model(x_chunk, state) -> (prediction, state)`` around a torch.nn layer."""

    def __init__(self, layer: torch.nn.Module, out: int) -> None:
        super().__init__()
        self.layer = layer
        self.head = torch.nn.Linear(layer.hidden_size, out).double()
        self.states: list = []

    def forward(self, x, state):
        y, state = self.layer(x, state)
        self.states.append(state)
        return self.head(y), state


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("k", [1, 3, 4, 10])
def test_truncated_bptt_carries_state(kind: str, k: int) -> None:
    torch.manual_seed(0)
    layer = getattr(torch.nn, kind)(2, 3, batch_first=True).double()
    model = StepModel(layer, 1)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 10, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 10, 1, generator=gen, dtype=torch.float64)
    # a zero learning rate keeps the weights, so the carried state must equal the full run
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    losses = truncated_bptt(model, x, y, torch.nn.functional.mse_loss, k, opt)
    assert len(losses) == -(-10 // k)
    assert all(isinstance(v, float) for v in losses)
    _, full_state = layer(x)
    final = model.states[-1]
    if kind == "LSTM":
        torch.testing.assert_close(final[0], full_state[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(final[1], full_state[1], rtol=1e-12, atol=1e-12)
    else:
        torch.testing.assert_close(final, full_state, rtol=1e-12, atol=1e-12)
    # every chunk's loss equals the loss of that slice of the untruncated output
    full_pred = model.head(layer(x)[0])
    for j, loss in enumerate(losses):
        s = slice(j * k, (j + 1) * k)
        expected = torch.nn.functional.mse_loss(full_pred[:, s], y[:, s]).item()
        assert loss == pytest.approx(expected, rel=1e-10)


def test_truncated_bptt_gradient_stops_at_chunk() -> None:
    """The first chunk's input gets no gradient from the second chunk's loss."""
    torch.manual_seed(0)
    layer = torch.nn.RNN(2, 3, batch_first=True).double()
    model = StepModel(layer, 1)
    x = torch.randn(1, 6, 2, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(1, 6, 1, dtype=torch.float64)
    grads_seen = []

    class Recorder(torch.optim.SGD):
        def step(self, closure=None):
            grads_seen.append(None if x.grad is None else x.grad.clone())
            x.grad = None
            return super().step(closure)

    opt = Recorder(model.parameters(), lr=0.0)
    truncated_bptt(model, x, y, torch.nn.functional.mse_loss, 3, opt)
    first, second = grads_seen
    assert first[0, :3].abs().sum() > 0 and (first[0, 3:] == 0).all()
    assert (second[0, :3] == 0).all() and second[0, 3:].abs().sum() > 0


def test_truncated_bptt_learns() -> None:
    torch.manual_seed(0)
    model = StepModel(torch.nn.GRU(1, 8, batch_first=True).double(), 1)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 400, 1, generator=gen, dtype=torch.float64)
    y = torch.roll(x, 1, dims=1)  # repeat the previous input: a dependency of one step
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = truncated_bptt(model, x, y, torch.nn.functional.mse_loss, 5, opt)
    assert len(losses) == 80
    assert sum(losses[-10:]) / 10 < 0.25 * sum(losses[:10]) / 10


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_truncated_gradient_norms_zero_beyond_cut(kind: str, k: int) -> None:
    torch.manual_seed(0)
    layer = getattr(torch.nn, kind)(3, 4, num_layers=2, batch_first=True).double()
    x = torch.randn(2, 11, 3, dtype=torch.float64)
    norms = truncated_gradient_norms(layer, x, k)
    assert norms.shape == (11,)
    last_cut = ((11 - 1) // k) * k  # the first step of the last chunk
    assert (norms[:last_cut] == 0).all()
    assert (norms[last_cut:] > 0).all()
    assert norms[-1].item() == pytest.approx(1.0, rel=1e-12)


def test_truncated_gradient_norms_without_cut_equal_full() -> None:
    from rnn_course.gradient_flow import hidden_gradient_norms

    torch.manual_seed(0)
    layer = torch.nn.LSTM(3, 4, batch_first=True).double()
    x = torch.randn(2, 8, 3, dtype=torch.float64)
    torch.testing.assert_close(
        truncated_gradient_norms(layer, x, 8), hidden_gradient_norms(layer, x), rtol=0, atol=0
    )


def test_detach_state() -> None:
    a = torch.ones(2, requires_grad=True) * 2
    assert detach_state(None) is None
    assert not detach_state(a).requires_grad
    out = detach_state((a, a))
    assert isinstance(out, tuple) and not any(t.requires_grad for t in out)
    with pytest.raises(TypeError, match="state must be None, a tensor or a tuple"):
        detach_state(3)


def test_truncated_bptt_validation() -> None:
    layer = torch.nn.RNN(2, 3, batch_first=True)
    model = StepModel(layer, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.zeros(1, 4, 2)
    with pytest.raises(ValueError, match="k must be positive, got 0"):
        truncated_bptt(model, x, torch.zeros(1, 4, 1), torch.nn.functional.mse_loss, 0, opt)
    with pytest.raises(ValueError, match=r"same \(N, T\)"):
        truncated_bptt(model, x, torch.zeros(1, 5, 1), torch.nn.functional.mse_loss, 2, opt)
