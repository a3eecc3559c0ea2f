"""rnn_course.RNN / LSTM / GRU against torch.nn, skip connections, dropout and argument checks."""

from __future__ import annotations

import copy
import itertools
import re
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnn_course as rc
import rnn_course.lstm_loop as lstm_loop_module
from rnn_course.gru_loop import gru_loop
from rnn_course.lstm_loop import lstm_loop

I, H, T, N = 3, 4, 5, 2

# name → (ours, torch.nn, extra constructor arguments)
KINDS = {
    "rnn_tanh": (rc.RNN, nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rc.RNN, nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rc.LSTM, nn.LSTM, {}),
    "gru": (rc.GRU, nn.GRU, {}),
}
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def make_pair(
    kind: str, source: str, device: torch.device, dtype: torch.dtype, **kwargs
) -> tuple[nn.Module, nn.Module]:
    """Both layers with the same weights, copied from ``source`` ("torch" or "ours")."""
    ours_cls, ref_cls, extra = KINDS[kind]
    torch.manual_seed(0)
    ref = ref_cls(I, H, device=device, dtype=dtype, **extra, **kwargs)
    ours = ours_cls(I, H, device=device, dtype=dtype, **extra, **kwargs)
    if source == "torch":
        ours.load_state_dict(ref.state_dict())
    else:
        ref.load_state_dict(ours.state_dict())
    return ours, ref


def random_state(kind: str, shape: tuple[int, ...], device, dtype, gen: torch.Generator):
    def one() -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=dtype).to(device).requires_grad_()

    return (one(), one()) if kind == "lstm" else one()


def run_and_grad(layer: nn.Module, x: torch.Tensor, hx, weights: list[torch.Tensor]):
    """Outputs, final states and the gradients of a fixed random loss."""
    out, state = layer(x, hx)
    states = list(state) if isinstance(state, tuple) else [state]
    loss = (out * weights[0]).sum() + sum(
        (s * w).sum() for s, w in zip(states, weights[1:], strict=True)
    )
    leaves = [x] + (list(hx) if isinstance(hx, tuple) else [] if hx is None else [hx])
    named = dict(layer.named_parameters())
    grads = torch.autograd.grad(loss, leaves + list(named.values()))
    return [out, *states], grads[: len(leaves)], dict(zip(named, grads[len(leaves) :], strict=True))


def assert_parity(ours, ref, x, hx, tol):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        out, state = ref(x, hx)
    shapes = [out.shape] + [s.shape for s in (state if isinstance(state, tuple) else [state])]
    weights = [torch.randn(s, generator=gen, dtype=x.dtype).to(x.device) for s in shapes]
    got, got_in, got_p = run_and_grad(ours, x, hx, weights)
    want, want_in, want_p = run_and_grad(ref, x, hx, weights)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)
    for a, b in zip(got_in, want_in, strict=True):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)
    assert got_p.keys() == want_p.keys()
    for name in want_p:
        torch.testing.assert_close(got_p[name], want_p[name], atol=tol, rtol=tol, msg=name)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize(("batch_first", "bias", "with_hx", "source"), [
    (False, True, False, "torch"),
    (True, True, True, "ours"),
    (False, False, True, "torch"),
    (True, False, False, "ours"),
])  # fmt: skip
def test_parity_float64(
    kind, num_layers, bidirectional, batch_first, bias, with_hx, source, device
):
    kwargs = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first)
    ours, ref = make_pair(kind, source, device, torch.float64, bias=bias, **kwargs)
    gen = torch.Generator().manual_seed(2)
    shape = (N, T, I) if batch_first else (T, N, I)
    x = torch.randn(shape, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    D = 2 if bidirectional else 1
    hx = random_state(kind, (D * num_layers, N, H), device, torch.float64, gen) if with_hx else None
    assert_parity(ours, ref, x, hx, TOL[torch.float64])


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(("num_layers", "bidirectional"), [(1, False), (2, True)])
@pytest.mark.parametrize("source", ["torch", "ours"])
def test_parity_float32(kind, num_layers, bidirectional, source, device):
    ours, ref = make_pair(
        kind, source, device, torch.float32, num_layers=num_layers, bidirectional=bidirectional
    )
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(T, N, I, generator=gen).to(device).requires_grad_()
    D = 2 if bidirectional else 1
    hx = random_state(kind, (D * num_layers, N, H), device, torch.float32, gen)
    assert_parity(ours, ref, x, hx, TOL[torch.float32])


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(
    ("num_layers", "bidirectional", "with_hx"),
    [(1, False, True), (2, True, False), (2, True, True)],
)
def test_parity_unbatched(kind, num_layers, bidirectional, with_hx, device):
    ours, ref = make_pair(
        kind, "torch", device, torch.float64, num_layers=num_layers, bidirectional=bidirectional
    )
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(T, I, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    D = 2 if bidirectional else 1
    hx = random_state(kind, (D * num_layers, H), device, torch.float64, gen) if with_hx else None
    out, _ = ours(x, hx)
    assert out.shape == (T, D * H)
    assert_parity(ours, ref, x, hx, TOL[torch.float64])


@pytest.mark.parametrize("kind", list(KINDS))
def test_state_dict_keys_and_shapes_equal_torch(kind):
    ours, ref = make_pair(kind, "torch", torch.device("cpu"), torch.float32, num_layers=3,
                          bidirectional=True)  # fmt: skip
    assert list(ours.state_dict()) == list(ref.state_dict())
    for name, value in ref.state_dict().items():
        assert ours.state_dict()[name].shape == value.shape


@pytest.mark.parametrize("kind", list(KINDS))
def test_h_n_is_layer_major_even_with_batch_first(kind):
    ours, _ = make_pair(kind, "torch", torch.device("cpu"), torch.float64, num_layers=2,
                        bidirectional=True, batch_first=True)  # fmt: skip
    x = torch.randn(N, T, I, dtype=torch.float64)
    out, state = ours(x)
    h_n = state[0] if kind == "lstm" else state
    assert out.shape == (N, T, 2 * H)
    assert h_n.shape == (4, N, H)
    # top layer: forward direction ends at the last step, backward direction at the first
    torch.testing.assert_close(h_n[2], out[:, -1, :H])
    torch.testing.assert_close(h_n[3], out[:, 0, H:])


@pytest.mark.parametrize("cls", [rc.RNN, rc.LSTM, rc.GRU])
def test_initialization_is_uniform_within_one_over_sqrt_h(cls):
    torch.manual_seed(0)
    layer = cls(I, 64, num_layers=2)
    bound = 1 / 64**0.5
    values = torch.cat([p.detach().flatten() for p in layer.parameters()])
    assert values.abs().max() <= bound
    assert values.abs().max() > 0.95 * bound  # the whole range is used
    assert abs(values.mean().item()) < 0.05 * bound


def test_gru_reset_before_differs_from_torch_and_matches_cells():
    torch.manual_seed(0)
    before = rc.GRU(I, H, reset_after=False).double()
    after = rc.GRU(I, H).double()
    after.load_state_dict(before.state_dict())
    x = torch.randn(T, N, I, dtype=torch.float64)
    out_before, _ = before(x)
    out_after, _ = after(x)
    assert (out_before - out_after).abs().max() > 1e-3
    cell = rc.GRUCell(I, H, reset_after=False).double()
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in before.state_dict().items()})
    h = torch.zeros(N, H, dtype=torch.float64)
    steps = []
    for x_t in x:
        h = cell(x_t, h)
        steps.append(h)
    torch.testing.assert_close(out_before, torch.stack(steps), atol=1e-12, rtol=0)


def test_lstm_gradients_match_autograd_of_the_cell_loop():
    """The hand-written backward of the LSTM loop agrees with autograd through LSTMCell."""
    torch.manual_seed(0)
    layer = rc.LSTM(I, H, bidirectional=True).double()
    cell = {d: rc.LSTMCell(I, H).double() for d in ("", "_reverse")}
    for d, c in cell.items():
        c.load_state_dict({k: layer.state_dict()[f"{k}_l0{d}"] for k in c.state_dict()})
    x = torch.randn(T, N, I, dtype=torch.float64, requires_grad=True)
    w = torch.randn(T, N, 2 * H, dtype=torch.float64)
    (layer(x)[0] * w).sum().backward()
    outs = {}
    for d, c in cell.items():
        h = cx = torch.zeros(N, H, dtype=torch.float64)
        steps = {}
        for t in reversed(range(T)) if d else range(T):
            h, cx = c(x[t], (h, cx))
            steps[t] = h
        outs[d] = torch.stack([steps[t] for t in range(T)])
    x_grad = x.grad.clone()
    x.grad = None
    (torch.cat([outs[""], outs["_reverse"]], dim=2) * w).sum().backward()
    torch.testing.assert_close(x_grad, x.grad, atol=1e-12, rtol=0)
    for d, c in cell.items():
        for k, p in c.named_parameters():
            torch.testing.assert_close(getattr(layer, f"{k}_l0{d}").grad, p.grad)


def lstm_weights(leaf, bias: bool = True) -> tuple[torch.Tensor, ...]:
    """``w_ih, w_hh`` and, with ``bias``, ``b_ih, b_hh`` in torch.nn's layout."""
    weights = (leaf(4 * H, I), leaf(4 * H, H))
    return (*weights, leaf(4 * H), leaf(4 * H)) if bias else weights


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("steps", "bias"), [(1, True), (4, True), (4, False)])
def test_lstm_loop_backward_passes_gradcheck(reverse, steps, bias):
    """The hand-written backward of the LSTM loop against finite differences."""
    gen = torch.Generator().manual_seed(5)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()

    args = (leaf(steps, N, I), leaf(N, H), leaf(N, H), *lstm_weights(leaf, bias))
    assert torch.autograd.gradcheck(lambda *a: lstm_loop(*a, reverse=reverse), args)


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_local_factors_per_step_equal_all_at_once(monkeypatch, reverse):
    """Large steps write the backward pass's factors inside the forward loop, small ones
    after it: both give the same outputs and gradients, and the per-step path passes
    gradcheck."""
    gen = torch.Generator().manual_seed(7)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()

    args = (leaf(5, N, I), leaf(N, H), leaf(N, H), *lstm_weights(leaf))
    results = []
    for threshold in (10**9, 0):  # all at once, then per step
        monkeypatch.setattr(lstm_loop_module, "PER_STEP_FACTORS", threshold)
        out, h, c = lstm_loop(*args, reverse=reverse)
        loss = (out**2).sum() + 0.3 * h.sum() + 0.7 * c.sum()
        results.append((out, h, c, *torch.autograd.grad(loss, args)))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-14, rtol=0)
    assert torch.autograd.gradcheck(lambda *a: lstm_loop(*a, reverse=reverse), args)


def test_lstm_forward_without_gradient_computes_no_factors(monkeypatch):
    """A forward pass that autograd does not record skips the backward pass's factors."""

    def refuse(*args: object) -> None:
        raise AssertionError("local factors computed")

    monkeypatch.setattr(lstm_loop_module, "_factors", refuse)
    layer = rc.LSTM(I, H)
    x = torch.randn(4, N, I)
    with torch.no_grad():
        layer(x)
    with torch.inference_mode():
        layer(x)
    layer.requires_grad_(False)
    layer(x)
    layer.requires_grad_(True)
    with pytest.raises(AssertionError, match="local factors computed"):
        layer(x)


def gru_weights(leaf, bias: bool = True) -> tuple[torch.Tensor, ...]:
    """``w_ih, w_hh`` and, with ``bias``, ``b_ih, b_hh`` in torch.nn's layout."""
    weights = (leaf(3 * H, I), leaf(3 * H, H))
    return (*weights, leaf(3 * H), leaf(3 * H)) if bias else weights


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("steps", "bias"), [(1, True), (4, True), (4, False)])
def test_gru_loop_backward_passes_gradcheck(reverse, steps, bias):
    """The hand-written backward of the GRU loop against finite differences."""
    gen = torch.Generator().manual_seed(6)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()

    args = (leaf(steps, N, I), leaf(N, H), *gru_weights(leaf, bias))
    assert torch.autograd.gradcheck(lambda *a: gru_loop(*a, reverse=reverse), args)


def test_gru_gradients_match_autograd_of_the_cell_loop():
    """The GRU layer's gradients agree with autograd through GRUCell, in both directions."""
    torch.manual_seed(0)
    layer = rc.GRU(I, H, bidirectional=True).double()
    cell = {d: rc.GRUCell(I, H).double() for d in ("", "_reverse")}
    for d, c in cell.items():
        c.load_state_dict({k: layer.state_dict()[f"{k}_l0{d}"] for k in c.state_dict()})
    x = torch.randn(T, N, I, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, N, H, dtype=torch.float64, requires_grad=True)
    w = torch.randn(T, N, 2 * H, dtype=torch.float64)
    out, h_n = layer(x, h0)
    ((out * w).sum() + h_n.sum()).backward()
    got = [x.grad.clone(), h0.grad.clone()]
    x.grad = h0.grad = None
    outs, finals = {}, []
    for j, (d, c) in enumerate(cell.items()):
        h = h0[j]
        steps = {}
        for t in reversed(range(T)) if d else range(T):
            h = c(x[t], h)
            steps[t] = h
        outs[d] = torch.stack([steps[t] for t in range(T)])
        finals.append(h)
    ((torch.cat([outs[""], outs["_reverse"]], dim=2) * w).sum() + sum(finals).sum()).backward()
    torch.testing.assert_close(got[0], x.grad, atol=1e-12, rtol=0)
    torch.testing.assert_close(got[1], h0.grad, atol=1e-12, rtol=0)
    for d, c in cell.items():
        for k, p in c.named_parameters():
            torch.testing.assert_close(getattr(layer, f"{k}_l0{d}").grad, p.grad)


@pytest.mark.parametrize("kind", list(KINDS))
def test_inference_mode_gives_the_no_grad_outputs(kind):
    ours, _ = make_pair(kind, "torch", torch.device("cpu"), torch.float64, num_layers=2,
                        bidirectional=True)  # fmt: skip
    x = torch.randn(T, N, I, dtype=torch.float64)
    with torch.no_grad():
        want, _ = ours(x)
    with torch.inference_mode():
        got, _ = ours(x)
    torch.testing.assert_close(got, want, atol=0, rtol=0)


# --- skip connections -----------------------------------------------------------------------


def single_layers(stack: nn.Module, kind: str) -> list[nn.Module]:
    """One torch.nn layer per stacked layer, holding that layer's weights."""
    layers = []
    for k in range(stack.num_layers):
        in_size = stack.weight_ih_l0.shape[1] if k == 0 else stack._layer_input_size(k)
        ref = KINDS[kind][1](in_size, H, dtype=torch.float64)
        ref.load_state_dict({
            name.replace(f"_l{k}", "_l0"): value
            for name, value in stack.state_dict().items()
            if name.endswith(f"_l{k}") and not name.startswith("highway")
        })  # fmt: skip
        layers.append(ref)
    return layers


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_residual_output_is_states_plus_input(kind):
    torch.manual_seed(0)
    stack = KINDS[kind][0](H, H, num_layers=3, skip="residual", dtype=torch.float64)
    assert list(stack.state_dict()) == list(KINDS[kind][1](H, H, num_layers=3).state_dict())
    x = torch.randn(T, N, H, dtype=torch.float64)
    out, _ = stack(x)
    u = x
    for k, layer in enumerate(single_layers(stack, kind)):
        states, _ = layer(u)
        u = states if k == 0 else states + u
    torch.testing.assert_close(out, u, atol=1e-12, rtol=0)


def test_highway_output_by_hand_shapes_and_gradient_flow():
    torch.manual_seed(0)
    stack = rc.GRU(I, H, num_layers=3, bidirectional=True, skip="highway", dtype=torch.float64)
    names = [n for n, _ in stack.named_parameters() if n.startswith("highway")]
    assert names == ["highway_weight_l1", "highway_bias_l1", "highway_weight_l2", "highway_bias_l2"]
    assert stack.highway_weight_l1.shape == (2 * H, 2 * H)
    assert stack.highway_bias_l2.shape == (2 * H,)
    x = torch.randn(T, N, I, dtype=torch.float64)
    out, h_n = stack(x)
    assert out.shape == (T, N, 2 * H) and h_n.shape == (6, N, H)
    # by hand, on the two bottom layers: layer 1's output = t ⊙ states + (1 − t) ⊙ input
    two = rc.GRU(I, H, num_layers=2, bidirectional=True, skip="highway", dtype=torch.float64)
    two.load_state_dict({k: v for k, v in stack.state_dict().items() if "_l2" not in k})
    plain = rc.GRU(I, H, num_layers=2, bidirectional=True, dtype=torch.float64)
    plain.load_state_dict({k: v for k, v in two.state_dict().items() if "highway" not in k})
    below = rc.GRU(I, H, bidirectional=True, dtype=torch.float64)
    below.load_state_dict({k: v for k, v in plain.state_dict().items() if "_l0" in k})
    u, _ = below(x)  # (T, N, 2H)
    states, _ = plain(x)
    gate = torch.sigmoid(u @ two.highway_weight_l1.T + two.highway_bias_l1)
    expected = gate * states + (1 - gate) * u
    got, _ = two(x)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)
    out.pow(2).sum().backward()
    for name, p in stack.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_dense_layers_read_all_earlier_outputs():
    torch.manual_seed(0)
    stack = rc.LSTM(I, H, num_layers=3, skip="dense", dtype=torch.float64)
    assert stack.weight_ih_l0.shape == (4 * H, I)
    assert stack.weight_ih_l1.shape == (4 * H, I + H)
    assert stack.weight_ih_l2.shape == (4 * H, I + 2 * H)
    x = torch.randn(T, N, I, dtype=torch.float64, requires_grad=True)
    out, (h_n, c_n) = stack(x)
    assert out.shape == (T, N, H) and h_n.shape == c_n.shape == (3, N, H)
    u = x
    for layer in single_layers(stack, "lstm"):
        states, _ = layer(u)
        u = torch.cat([u, states], dim=2)
    torch.testing.assert_close(out, states, atol=1e-12, rtol=0)
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    for name, p in stack.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# --- dropout --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_dropout_parity_in_eval_mode(kind):
    ours, ref = make_pair(kind, "torch", torch.device("cpu"), torch.float64, num_layers=2,
                          dropout=0.5)  # fmt: skip
    ours.eval()
    ref.eval()
    x = torch.randn(T, N, I, dtype=torch.float64, requires_grad=True)
    assert_parity(ours, ref, x, None, TOL[torch.float64])


@pytest.mark.parametrize("kind", list(KINDS))
def test_training_dropout_acts_between_layers_only(kind):
    torch.manual_seed(0)
    stack = KINDS[kind][0](I, H, num_layers=2, dropout=0.5, dtype=torch.float64)
    x = torch.randn(T, N, I, dtype=torch.float64)
    stack.eval()
    out_eval, state_eval = stack(x)
    stack.train()
    torch.manual_seed(1)
    out_train, state_train = stack(x)
    h_eval = state_eval[0] if kind == "lstm" else state_eval
    h_train = state_train[0] if kind == "lstm" else state_train
    # the bottom layer is untouched: no dropout on its input nor along time
    torch.testing.assert_close(h_train[0], h_eval[0])
    assert (h_train[1] - h_eval[1]).abs().max() > 1e-3
    assert (out_train - out_eval).abs().max() > 1e-3


def test_dropout_with_one_layer_warns_and_does_nothing():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        layer = rc.LSTM(I, H, dropout=0.5)
    x = torch.randn(T, N, I)
    layer.train()
    out_train, _ = layer(x)
    layer.eval()
    out_eval, _ = layer(x)
    torch.testing.assert_close(out_train, out_eval)


def test_no_warning_without_dropout():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc.GRU(I, H, num_layers=1)


# --- argument checks ------------------------------------------------------------------------


def raises(error: type[Exception], text: str):
    """``pytest.raises`` for a message that contains ``text`` literally."""
    return pytest.raises(error, match=re.escape(text))


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"input_size": -1}, ValueError, "input_size must be positive, got -1"),
        ({"hidden_size": 0}, ValueError, "hidden_size must be positive, got 0"),
        ({"num_layers": 2.0}, TypeError, "num_layers must be an int, got float"),
        ({"dropout": 1.5}, ValueError, "dropout must be a number in [0, 1], got 1.5"),
        ({"dropout": -0.1}, ValueError, "dropout must be a number in [0, 1], got -0.1"),
        ({"skip": "ladder"}, ValueError, "'residual', 'highway', 'dense', got 'ladder'"),
        ({"dtype": torch.int64}, TypeError, "must be a floating-point dtype, got torch.int64"),
    ],
)
@pytest.mark.parametrize("cls", [rc.RNN, rc.LSTM, rc.GRU])
def test_bad_constructor_arguments(cls, kwargs, error, text):
    args = {"input_size": I, "hidden_size": H, **kwargs}
    with raises(error, text):
        cls(**args)


def test_bad_nonlinearity_and_proj_size():
    with raises(ValueError, "nonlinearity must be one of 'tanh', 'relu', got 'sigmoid'"):
        rc.RNN(I, H, nonlinearity="sigmoid")
    with raises(ValueError, "proj_size is not supported: expected 0, got 2"):
        rc.LSTM(I, H, proj_size=2)


@pytest.mark.parametrize("cls", [rc.RNN, rc.LSTM, rc.GRU])
def test_bad_inputs(cls):
    layer = cls(I, H, num_layers=2)
    with raises(TypeError, "input must be a torch.Tensor or a PackedSequence, got list"):
        layer([[0.0] * I])
    with raises(TypeError, "input must have a floating-point dtype, got torch.int64"):
        layer(torch.zeros(T, N, I, dtype=torch.int64))
    with raises(ValueError, "input must have shape (L, N, H_in) = (?, ?, 3), got (5, 2, 7)"):
        layer(torch.zeros(T, N, 7))
    with raises(ValueError, "or (L, H_in) with H_in=3, got (1, 5, 2, 3)"):
        layer(torch.zeros(1, T, N, I))
    with raises(ValueError, "input must contain at least one time step, got L=0"):
        layer(torch.zeros(0, N, I))
    with raises(
        TypeError, "input has dtype torch.float64 but weight_ih_l0 has dtype torch.float32"
    ):
        layer(torch.zeros(T, N, I, dtype=torch.float64))


def test_batch_first_layout_named_in_message():
    layer = rc.GRU(I, H, batch_first=True)
    with raises(ValueError, "input must have shape (N, L, H_in) = (?, ?, 3), got (2, 5, 4)"):
        layer(torch.zeros(N, T, I + 1))


@pytest.mark.parametrize("cls", [rc.RNN, rc.GRU])
def test_bad_hx(cls):
    layer = cls(I, H, num_layers=2)
    x = torch.zeros(T, N, I)
    with raises(ValueError, "hx must have shape (D·num_layers, N, H) = (2, 2, 4), got (1, 2, 4)"):
        layer(x, torch.zeros(1, N, H))
    with raises(ValueError, "hx must have shape (D·num_layers, H) = (2, 4), got (2, 2, 4)"):
        layer(x[:, 0], torch.zeros(2, N, H))
    with raises(TypeError, "hx has dtype torch.float64 but input has dtype torch.float32"):
        layer(x, torch.zeros(2, N, H, dtype=torch.float64))
    with raises(TypeError, "hx must be a torch.Tensor, got tuple"):
        layer(x, (torch.zeros(2, N, H),))


def test_bad_lstm_state():
    layer = rc.LSTM(I, H)
    x = torch.zeros(T, N, I)
    with raises(TypeError, "hx must be a pair (h_0, c_0) of tensors or None, got Tensor"):
        layer(x, torch.zeros(1, N, H))
    with raises(ValueError, "c_0 must have shape (D·num_layers, N, H) = (1, 2, 4), got (1, 3, 4)"):
        layer(x, (torch.zeros(1, N, H), torch.zeros(1, 3, H)))


def test_mixed_devices_are_rejected():
    layer = rc.LSTM(I, H, device="meta")
    with raises(ValueError, "input is on cpu but weight_ih_l0 is on meta"):
        layer(torch.zeros(T, N, I))


@pytest.mark.parametrize("kind", list(KINDS))
def test_runs_on_the_device_of_its_parameters(kind, device):
    ours, _ = make_pair(kind, "torch", device, torch.float32, num_layers=2, bidirectional=True)
    out, state = ours(torch.randn(T, N, I, device=device))
    for t in itertools.chain([out], state if isinstance(state, tuple) else [state]):
        assert t.device.type == device.type


@pytest.mark.slow  # dynamo traces the unrolled loop: a few seconds
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_compiled_time_loop_matches_eager(kind):
    """Outputs and gradients through torch.compile's graph capture and autograd
    (``aot_eager``: the compiler's tracing and differentiation, without code generation)."""
    torch.manual_seed(0)
    layer = KINDS[kind][0](I, H, bidirectional=True)
    x = torch.randn(3, N, I, requires_grad=True)
    expected, _ = layer(x)
    expected.square().sum().backward()
    expected_grads = [x.grad.clone()] + [p.grad.clone() for p in layer.parameters()]
    x.grad = None
    layer.zero_grad()
    got, _ = layer.compile_time_loop(backend="aot_eager")(x)
    got.square().sum().backward()
    torch.testing.assert_close(got, expected)
    for a, b in zip([x.grad] + [p.grad for p in layer.parameters()], expected_grads, strict=True):
        torch.testing.assert_close(a, b)


# --- packed sequences -----------------------------------------------------------------------

# lengths with ties, a sequence of one step, and (unsorted) an order pack must change
LENGTHS = {True: [5, 5, 4, 2, 1], False: [2, 5, 1, 4, 5]}


def packed_input(lengths, batch_first, enforce_sorted, device, dtype=torch.float64, seed=8):
    """A padded batch with random values on its padding too, and its packed version."""
    gen = torch.Generator().manual_seed(seed)
    T, B = max(lengths), len(lengths)
    shape = (B, T, I) if batch_first else (T, B, I)
    x = torch.randn(shape, generator=gen, dtype=dtype).to(device).requires_grad_()
    packed = pack_padded_sequence(
        x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=enforce_sorted
    )
    return x, packed


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize(("batch_first", "with_hx", "bias"), [
    (False, True, True),
    (True, False, False),
])  # fmt: skip
def test_packed_parity_float64(
    kind, num_layers, bidirectional, enforce_sorted, batch_first, with_hx, bias, device
):
    """PackedSequence in, PackedSequence out: outputs, final states and the gradients of
    the padded input, the initial state and every parameter equal torch.nn's."""
    ours, ref = make_pair(
        kind, "torch", device, torch.float64, num_layers=num_layers,
        bidirectional=bidirectional, batch_first=batch_first, bias=bias,
    )  # fmt: skip
    lengths = LENGTHS[enforce_sorted]
    gen = torch.Generator().manual_seed(9)
    D, B = 2 if bidirectional else 1, len(lengths)
    hx = random_state(kind, (D * num_layers, B, H), device, torch.float64, gen) if with_hx else None
    results = []
    for layer in (ours, ref):
        x, packed = packed_input(lengths, batch_first, enforce_sorted, device)
        out, state = layer(packed, hx)
        assert isinstance(out, PackedSequence)
        assert torch.equal(out.batch_sizes, packed.batch_sizes)
        states = list(state) if isinstance(state, tuple) else [state]
        weights = [
            torch.randn(t.shape, generator=torch.Generator().manual_seed(10 + j),
                        dtype=torch.float64).to(device)
            for j, t in enumerate([out.data, *states])
        ]  # fmt: skip
        loss = sum((t * w).sum() for t, w in zip([out.data, *states], weights, strict=True))
        leaves = [x] + (list(hx) if isinstance(hx, tuple) else [] if hx is None else [hx])
        grads = torch.autograd.grad(loss, leaves + list(layer.parameters()))
        results.append([out.data, *states, *grads])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kind", [*KINDS, "gru_reset_before"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_steps_neither_update_the_state_nor_receive_gradient(kind, bidirectional):
    """Each sequence of a packed batch gives what it gives alone, unpadded, and the
    padding of the input gets a gradient of exactly zero."""
    cls, extra = (
        (rc.GRU, {"reset_after": False})
        if kind == "gru_reset_before"
        else (KINDS[kind][0], KINDS[kind][2])
    )
    torch.manual_seed(0)
    layer = cls(I, H, num_layers=2, bidirectional=bidirectional, batch_first=True,
                dtype=torch.float64, **extra)  # fmt: skip
    lengths = LENGTHS[False]
    x, packed = packed_input(lengths, True, False, torch.device("cpu"))
    out, state = layer(packed)
    h_n = state[0] if isinstance(state, tuple) else state
    padded, _ = pad_packed_sequence(out, batch_first=True)
    padded.square().sum().backward()
    for n, length in enumerate(lengths):
        alone, alone_state = layer(x[n : n + 1, :length].detach())
        alone_h = alone_state[0] if isinstance(alone_state, tuple) else alone_state
        torch.testing.assert_close(padded[n : n + 1, :length], alone, atol=1e-12, rtol=0)
        torch.testing.assert_close(h_n[:, n : n + 1], alone_h, atol=1e-12, rtol=0)
        assert torch.all(padded[n, length:] == 0)
        assert torch.all(x.grad[n, length:] == 0)
        assert x.grad[n, :length].abs().sum() > 0


@pytest.mark.parametrize("kind", [*KINDS, "gru_reset_before"])
def test_packed_equal_lengths_equal_the_padded_path(kind):
    cls, extra = (
        (rc.GRU, {"reset_after": False})
        if kind == "gru_reset_before"
        else (KINDS[kind][0], KINDS[kind][2])
    )
    torch.manual_seed(0)
    layer = cls(I, H, num_layers=2, bidirectional=True, dtype=torch.float64, **extra)
    x = torch.randn(T, N, I, dtype=torch.float64)
    out, state = layer(x)
    packed_out, packed_state = layer(pack_padded_sequence(x, torch.full((N,), T)))
    torch.testing.assert_close(packed_out.data, out.reshape(T * N, -1), atol=0, rtol=0)
    for a, b in zip(
        packed_state if isinstance(state, tuple) else [packed_state],
        state if isinstance(state, tuple) else [state],
        strict=True,
    ):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("batch_sizes", [(3, 3, 2, 2, 1), (3, 1, 1)])
def test_packed_lstm_loop_passes_gradcheck(reverse, batch_sizes):
    gen = torch.Generator().manual_seed(11)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()

    B, P = batch_sizes[0], sum(batch_sizes)
    args = (leaf(P, I), leaf(B, H), leaf(B, H), *lstm_weights(leaf))
    assert torch.autograd.gradcheck(
        lambda *a: lstm_loop(*a, reverse=reverse, batch_sizes=batch_sizes), args
    )


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("per_step", [False, True])
def test_packed_lstm_local_factors_per_step_pass_gradcheck(monkeypatch, reverse, per_step):
    monkeypatch.setattr(lstm_loop_module, "PER_STEP_FACTORS", 0 if per_step else 10**9)
    gen = torch.Generator().manual_seed(12)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()

    sizes = (3, 2, 2, 1)
    args = (leaf(sum(sizes), I), leaf(3, H), leaf(3, H), *lstm_weights(leaf))
    assert torch.autograd.gradcheck(
        lambda *a: lstm_loop(*a, reverse=reverse, batch_sizes=sizes), args
    )


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_sizes", [(3, 3, 2, 2, 1), (3, 1, 1)])
def test_packed_gru_loop_passes_gradcheck(reverse, bias, batch_sizes):
    gen = torch.Generator().manual_seed(13)

    def leaf(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64).requires_grad_()

    B, P = batch_sizes[0], sum(batch_sizes)
    args = (leaf(P, I), leaf(B, H), *gru_weights(leaf, bias))
    assert torch.autograd.gradcheck(
        lambda *a: gru_loop(*a, reverse=reverse, batch_sizes=batch_sizes), args
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_packed_layer_passes_gradcheck(kind):
    """The whole bidirectional stack on a packed, unsorted batch against finite differences."""
    torch.manual_seed(0)
    layer = KINDS[kind][0](2, 2, num_layers=2, bidirectional=True, dtype=torch.float64,
                           **KINDS[kind][2])  # fmt: skip
    lengths = torch.tensor([2, 3, 1])
    x = torch.randn(3, 3, 2, dtype=torch.float64, requires_grad=True)
    weights = list(layer.parameters())

    def run(x, *params):
        with torch.nn.utils.stateless._reparametrize_module(
            layer, dict(zip([n for n, _ in layer.named_parameters()], params, strict=True))
        ):
            out, state = layer(pack_padded_sequence(x, lengths, enforce_sorted=False))
        h = state[0] if isinstance(state, tuple) else state
        return out.data, h

    assert torch.autograd.gradcheck(run, (x, *weights))


def test_packed_batch_first_is_ignored_as_in_torch():
    torch.manual_seed(0)
    first = rc.GRU(I, H, batch_first=True, dtype=torch.float64)
    second = rc.GRU(I, H, dtype=torch.float64)
    second.load_state_dict(first.state_dict())
    _, packed = packed_input(LENGTHS[False], True, False, torch.device("cpu"))
    torch.testing.assert_close(first(packed)[0].data, second(packed)[0].data, atol=0, rtol=0)


# --- the same exceptions as torch.nn --------------------------------------------------------

PAIRS = {"rnn": (rc.RNN, nn.RNN), "lstm": (rc.LSTM, nn.LSTM), "gru": (rc.GRU, nn.GRU)}


def _state(cls, *shape, **kw):
    """A state of ``shape`` for ``cls`` (a pair for an LSTM)."""
    h = torch.zeros(shape, **kw)
    return (h, h.clone()) if cls in (rc.LSTM, nn.LSTM) else h


# name → (the layers it applies to, the misuse given a layer class)
MISUSES = {
    "input_size < 1": (PAIRS, lambda cls: cls(input_size=-1, hidden_size=H)),
    "hidden_size 0": (PAIRS, lambda cls: cls(I, 0)),
    "num_layers float": (PAIRS, lambda cls: cls(I, H, num_layers=2.0)),
    "dropout > 1": (PAIRS, lambda cls: cls(I, H, dropout=1.5)),
    "dropout < 0": (PAIRS, lambda cls: cls(I, H, dropout=-0.1)),
    "integer dtype": (PAIRS, lambda cls: cls(I, H, dtype=torch.int64)),
    "nonlinearity": (["rnn"], lambda cls: cls(I, H, nonlinearity="sigmoid")),
    "input a list": (PAIRS, lambda cls: cls(I, H)([[0.0] * I])),
    "input int64": (PAIRS, lambda cls: cls(I, H)(torch.zeros(T, N, I, dtype=torch.int64))),
    "input size": (PAIRS, lambda cls: cls(I, H)(torch.zeros(T, N, I + 4))),
    "input 4-D": (PAIRS, lambda cls: cls(I, H)(torch.zeros(1, T, N, I))),
    "input L = 0": (PAIRS, lambda cls: cls(I, H)(torch.zeros(0, N, I))),
    "input float64": (PAIRS, lambda cls: cls(I, H)(torch.zeros(T, N, I, dtype=torch.float64))),
    "batch_first size": (PAIRS, lambda cls: cls(I, H, batch_first=True)(torch.zeros(N, T, I + 1))),
    "hx shape": (
        PAIRS,
        lambda cls: cls(I, H, num_layers=2)(torch.zeros(T, N, I), _state(cls, 1, N, H)),
    ),
    "hx batched, input not": (
        ["rnn", "gru"],
        lambda cls: cls(I, H, num_layers=2)(torch.zeros(T, I), torch.zeros(2, N, H)),
    ),
    "hx float64": (
        ["rnn", "gru"],
        lambda cls: cls(I, H)(torch.zeros(T, N, I), torch.zeros(1, N, H, dtype=torch.float64)),
    ),
    "hx a tuple": (
        ["rnn", "gru"],
        lambda cls: cls(I, H)(torch.zeros(T, N, I), (torch.zeros(1, N, H),)),
    ),
    "lstm hx one tensor": (
        ["lstm"],
        lambda cls: cls(I, H)(torch.zeros(T, N, I), torch.zeros(1, N, H)),
    ),
    "lstm c_0 shape": (
        ["lstm"],
        lambda cls: cls(I, H)(torch.zeros(T, N, I), (torch.zeros(1, N, H), torch.zeros(1, 3, H))),
    ),
    "devices differ": (PAIRS, lambda cls: cls(I, H, device="meta")(torch.zeros(T, N, I))),
    # torch.nn.LSTM checks neither a packed input's size (without an initial state) nor the
    # initial state of a packed input: the package raises for both
    "packed input size": (
        ["rnn", "gru"],
        lambda cls: cls(I, H)(pack_padded_sequence(torch.zeros(T, N, I + 1), torch.full((N,), T))),
    ),
    "packed hx batch": (
        ["rnn", "gru"],
        lambda cls: cls(I, H)(
            pack_padded_sequence(torch.zeros(T, N, I), torch.full((N,), T)),
            _state(cls, 1, N + 1, H),
        ),
    ),
}


def misuse_cases():
    for name, (kinds, misuse) in MISUSES.items():
        for kind in kinds:
            yield pytest.param(kind, misuse, id=f"{kind}-{name}")


@pytest.mark.parametrize(("kind", "misuse"), list(misuse_cases()))
def test_each_misuse_raises_torch_nn_s_exception_type(kind, misuse):
    """The package's exception is an instance of the type torch.nn raises, so that an
    ``except`` written for torch.nn catches it (the package's own type is kept too)."""
    ours_cls, torch_cls = PAIRS[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn's deprecations are not the subject here
        with pytest.raises(Exception) as theirs:
            misuse(torch_cls)
        with pytest.raises(Exception) as ours:
            misuse(ours_cls)
    assert isinstance(ours.value, type(theirs.value)), (type(ours.value), type(theirs.value))


def test_lstm_checks_what_torch_nn_does_not_for_packed_input():
    """torch.nn.LSTM leaves a packed input's initial state unchecked; the package does not."""
    layer = rc.LSTM(I, H)
    packed = pack_padded_sequence(torch.zeros(T, N, I), torch.full((N,), T))
    state = (torch.zeros(1, N + 1, H), torch.zeros(1, N + 1, H))
    with raises(RuntimeError, "h_0 must have shape (D·num_layers, N, H) = (1, 2, 4)"):
        layer(packed, state)


# --- compilation is a stored option ---------------------------------------------------------

COMPILED: list[object] = []


def counting_backend(graph_module, example_inputs):
    """A torch.compile backend that records each graph it gets and runs it as traced."""
    COMPILED.append(graph_module)
    return graph_module.forward


def test_compile_time_loop_stores_an_option_and_patches_no_method():
    layer = rc.GRU(I, H)
    assert layer.compile_time_loop(backend="aot_eager", dynamic=False) is layer
    assert layer._compile_options == {"backend": "aot_eager", "dynamic": False}
    assert "_direction" not in vars(layer)  # the method is the class's, not a patched one
    assert list(layer.state_dict()) == list(nn.GRU(I, H).state_dict())


def compiled_and_eager(kind, seed=0):
    torch.manual_seed(seed)
    eager = KINDS[kind][0](I, H, bidirectional=True, dtype=torch.float64, **KINDS[kind][2])
    compiled = copy.deepcopy(eager).compile_time_loop(backend=counting_backend)
    return compiled, eager


def outputs_and_grads(layer, x):
    x = x.detach().requires_grad_()
    out, _ = layer(pack_padded_sequence(x, torch.tensor([3, 1, 2]), enforce_sorted=False))
    grads = torch.autograd.grad(out.data.square().sum(), [x, *layer.parameters()])
    return [out.data, *grads]


def assert_same_as_eager(compiled, eager, x):
    """Outputs and gradients equal; with ``torch.compiler.reset()`` first, a call that runs
    its loop compiled must hand the backend a new graph."""
    for a, b in zip(outputs_and_grads(compiled, x), outputs_and_grads(eager, x), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.slow  # dynamo traces the unrolled loop: seconds
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_compiled_layer_survives_save_and_load(kind, tmp_path):
    compiled, eager = compiled_and_eager(kind)
    x = torch.randn(3, 3, I, dtype=torch.float64)
    assert_same_as_eager(compiled, eager, x)  # compiles (and so is made) before saving
    torch.save(compiled, tmp_path / "layer.pt")
    loaded = torch.load(tmp_path / "layer.pt", weights_only=False)
    assert loaded._compile_options == {"backend": counting_backend}
    torch.compiler.reset()
    before = len(COMPILED)
    assert_same_as_eager(loaded, eager, x)
    assert len(COMPILED) > before  # the loaded layer runs its loop compiled


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_deep_copy_of_a_compiled_layer_compiles_its_own_loop(kind):
    compiled, eager = compiled_and_eager(kind)
    x = torch.randn(3, 3, I, dtype=torch.float64)
    assert_same_as_eager(compiled, eager, x)
    twin = copy.deepcopy(compiled)
    assert twin._compile_options == compiled._compile_options
    assert "_compiled_loop" not in vars(twin)  # made on its first call, bound to the copy
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
        for p in eager.parameters():
            p.mul_(0.5)
    torch.compiler.reset()
    before = len(COMPILED)
    assert_same_as_eager(twin, eager, x)
    assert len(COMPILED) > before
    assert vars(twin)["_compiled_loop"] is not vars(compiled)["_compiled_loop"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_compiled_layer_state_dict_round_trips(kind):
    compiled, eager = compiled_and_eager(kind)
    reference = KINDS[kind][1](I, H, bidirectional=True, dtype=torch.float64)
    reference.load_state_dict(compiled.state_dict())  # the keys are torch.nn's
    torch.manual_seed(5)
    other = KINDS[kind][0](I, H, bidirectional=True, dtype=torch.float64)
    compiled.load_state_dict(other.state_dict())
    eager.load_state_dict(other.state_dict())
    assert compiled._compile_options == {"backend": counting_backend}
    torch.compiler.reset()
    before = len(COMPILED)
    assert_same_as_eager(compiled, eager, torch.randn(3, 3, I, dtype=torch.float64))
    assert len(COMPILED) > before


@pytest.mark.parametrize("packed", [False, True])
def test_lstm_large_step_paths_match_torch(monkeypatch, packed):
    """Steps of many state entries write their factors as they go and compute tanh(c) by a
    sigmoid; with the thresholds at 0 the small test sizes take those paths."""
    monkeypatch.setattr(lstm_loop_module, "PER_STEP_FACTORS", 0)
    monkeypatch.setattr(lstm_loop_module, "TANH_BY_SIGMOID", 0)
    ours, ref = make_pair("lstm", "torch", torch.device("cpu"), torch.float64, num_layers=2,
                          bidirectional=True)  # fmt: skip
    gen = torch.Generator().manual_seed(14)
    if packed:
        results = []
        for layer in (ours, ref):
            x, p = packed_input(LENGTHS[False], False, False, torch.device("cpu"))
            out, (h, c) = layer(p)
            loss = out.data.square().sum() + h.sum() + 2 * c.sum()
            results.append([out.data, h, c, *torch.autograd.grad(loss, [x, *layer.parameters()])])
        for a, b in zip(*results, strict=True):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    else:
        x = torch.randn(T, N, I, generator=gen, dtype=torch.float64).requires_grad_()
        hx = random_state("lstm", (4, N, H), "cpu", torch.float64, gen)
        assert_parity(ours, ref, x, hx, TOL[torch.float64])
