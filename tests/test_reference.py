"""The reference implementations against torch.nn, finite differences and the equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnn_grader.checks import deep_birnn as deep
from rnn_grader.checks import reference as ref

torch.manual_seed(0)
N, T, D, H = 3, 5, 4, 6


def rand(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def rnn_params(gates: int, seed: int = 0, d: int = D, h: int = H) -> tuple[torch.Tensor, ...]:
    return (
        rand(d, gates * h, seed=seed) * 0.5,
        rand(h, gates * h, seed=seed + 1) * 0.3,
        rand(gates * h, seed=seed + 2) * 0.2,
    )


def central_difference(f, x: torch.Tensor, upstream: torch.Tensor, eps: float = 1e-6):  # type: ignore[no-untyped-def]
    """Gradient of sum(upstream * f()) w.r.t. x by centered differences (x changed in place)."""
    grad = torch.zeros_like(x)
    flat, gflat = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + eps
        plus = (upstream * f()).sum().item()
        flat[i] = old - eps
        minus = (upstream * f()).sum().item()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def test_rnn_forward_matches_torch_rnn() -> None:
    Wx, Wh, b = rnn_params(1)
    x, h0 = rand(N, T, D, seed=10), rand(N, H, seed=11)
    rnn = torch.nn.RNN(D, H, batch_first=True).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(Wx.T)
        rnn.weight_hh_l0.copy_(Wh.T)
        rnn.bias_ih_l0.copy_(b)
        rnn.bias_hh_l0.zero_()
        want, _ = rnn(x, h0[None])
    torch.testing.assert_close(ref.rnn_forward(x, h0, Wx, Wh, b), want)
    torch.testing.assert_close(ref.rnn_step_forward(x[:, 0], h0, Wx, Wh, b), want[:, 0])


def test_lstm_matches_torch_lstm_and_cell() -> None:
    Wx, Wh, b = rnn_params(4)
    x, h0 = rand(N, T, D, seed=12), rand(N, H, seed=13)
    lstm = torch.nn.LSTM(D, H, batch_first=True).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(Wx.T)
        lstm.weight_hh_l0.copy_(Wh.T)
        lstm.bias_ih_l0.copy_(b)
        lstm.bias_hh_l0.zero_()
        want, _ = lstm(x, (h0[None], torch.zeros(1, N, H, dtype=torch.float64)))
    torch.testing.assert_close(ref.lstm_forward(x, h0, Wx, Wh, b), want)
    cell = torch.nn.LSTMCell(D, H).double()
    c0 = rand(N, H, seed=14)
    with torch.no_grad():
        cell.weight_ih.copy_(Wx.T)
        cell.weight_hh.copy_(Wh.T)
        cell.bias_ih.copy_(b / 2)
        cell.bias_hh.copy_(b / 2)  # only the sum of the two biases matters
        h1, c1 = cell(x[:, 0], (h0, c0))
    got = ref.lstm_step_forward(x[:, 0], h0, c0, Wx, Wh, b)
    torch.testing.assert_close(got, (h1, c1))


def test_gru_follows_the_lecture_equations_not_torch() -> None:
    Wx, Wh, b = rnn_params(3)
    x, h = rand(N, D, seed=15), rand(N, H, seed=16)
    xn, hn, Wxn, Whn, bn = (v.numpy() for v in (x, h, Wx, Wh, b))
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    u = sig(xn @ Wxn[:, :H] + hn @ Whn[:, :H] + bn[:H])
    r = sig(xn @ Wxn[:, H : 2 * H] + hn @ Whn[:, H : 2 * H] + bn[H : 2 * H])
    cand = np.tanh(xn @ Wxn[:, 2 * H :] + (r * hn) @ Whn[:, 2 * H :] + bn[2 * H :])
    want = (1 - u) * hn + u * cand
    got = ref.gru_step_forward(x, h, Wx, Wh, b).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # torch.nn.GRUCell with z = 1 - u (negated update block) still resets after the product
    cell = torch.nn.GRUCell(D, H).double()
    order = torch.cat([torch.arange(H, 2 * H), torch.arange(H), torch.arange(2 * H, 3 * H)])
    sign = torch.ones(3 * H, dtype=torch.float64)
    sign[H : 2 * H] = -1  # torch's block z sits second, in r, z, n order
    with torch.no_grad():
        cell.weight_ih.copy_((Wx[:, order] * sign).T)
        cell.weight_hh.copy_((Wh[:, order] * sign).T)
        cell.bias_ih.copy_(b[order] * sign)
        cell.bias_hh.zero_()
        torch_h = cell(x, h).numpy()
    assert np.abs(torch_h - got).max() > 1e-3


def _bidirectional_torch_rnn(pf: tuple, pb: tuple) -> torch.nn.RNN:
    rnn = torch.nn.RNN(D, H, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for suffix, (Wx, Wh, b) in (("l0", pf), ("l0_reverse", pb)):
            getattr(rnn, f"weight_ih_{suffix}").copy_(Wx.T)
            getattr(rnn, f"weight_hh_{suffix}").copy_(Wh.T)
            getattr(rnn, f"bias_ih_{suffix}").copy_(b)
            getattr(rnn, f"bias_hh_{suffix}").zero_()
    return rnn


def test_birnn_matches_bidirectional_torch_rnn() -> None:
    pf, pb = rnn_params(1, seed=20), rnn_params(1, seed=30)
    x, hf, hb = rand(N, T, D, seed=17), rand(N, H, seed=18), rand(N, H, seed=19)
    with torch.no_grad():
        want, _ = _bidirectional_torch_rnn(pf, pb)(x, torch.stack([hf, hb]))
    full = np.full(N, T, dtype=np.int64)
    torch.testing.assert_close(deep.birnn_forward(x, full, hf, hb, pf, pb), want)


def test_padded_birnn_runs_each_sequence_alone_and_pads_with_zeros() -> None:
    """Each sequence of the padded batch gives what torch.nn gives it alone, unpadded."""
    pf, pb = rnn_params(1, seed=21), rnn_params(1, seed=31)
    x, hf, hb = rand(N, T, D, seed=22), rand(N, H, seed=23), rand(N, H, seed=24)
    lengths = np.array([2, T, 1], dtype=np.int64)
    got = deep.birnn_forward(x, lengths, hf, hb, pf, pb)
    rnn = _bidirectional_torch_rnn(pf, pb)
    for n, length in enumerate(lengths):
        with torch.no_grad():
            alone, _ = rnn(x[n : n + 1, :length], torch.stack([hf[n : n + 1], hb[n : n + 1]]))
        torch.testing.assert_close(got[n, :length], alone[0])
        assert torch.all(got[n, length:] == 0)
    # the padding's values play no part
    x2 = x.clone()
    x2[0, 2:] = 100.0
    torch.testing.assert_close(deep.birnn_forward(x2, lengths, hf, hb, pf, pb), got)


def test_birnn_mistake_variants_agree_with_the_reference_when_right() -> None:
    """The NumPy code behind the known mistakes is the reference with every switch off."""
    rng = np.random.default_rng(0)
    case = deep.birnn_backward_inputs(rng, hidden=True)
    case["lengths"] = deep.lengths_of(rng, *case["x"].shape[:2])
    h = deep._birnn_variant(case)["h"]
    np.testing.assert_allclose(h, deep._birnn_reference(case)["h"], rtol=1e-12, atol=1e-12)
    grads = deep._birnn_backward_variant(case)
    want = deep._birnn_backward_reference(case)
    for k in deep.BIRNN_GRADS:
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-10, atol=1e-12, err_msg=k)
    stacked = deep.stacked_backward_inputs(rng, hidden=False, index=1)
    got, want = deep._stacked_backward_variant(stacked), deep._stacked_backward_reference(stacked)
    np.testing.assert_allclose(got["dx"], want["dx"], rtol=1e-10, atol=1e-12)
    for k, g in want["grads"].items():
        np.testing.assert_allclose(got["grads"][k], g, rtol=1e-10, atol=1e-12, err_msg=k)
    hw = deep.highway_backward_inputs(rng, hidden=False)
    for k, g in deep._highway_backward_reference(hw).items():
        np.testing.assert_allclose(deep._highway_backward_variant(hw)[k], g, rtol=1e-10, err_msg=k)


@pytest.mark.parametrize("name", ["birnn_backward", "stacked_rnn_backward", "highway_backward"])
def test_deep_birnn_backward_references_match_finite_differences(name: str) -> None:
    check = {c.name: c for c in deep.CHECKS}[name]
    case = check.cases(hidden=False)[1]
    grads = check.expected(case)
    # the reference forward, its output, and the upstream gradient's name
    forward, outputs, upstream = {
        "birnn_backward": (deep._birnn_reference, "h", "dh"),
        "stacked_rnn_backward": (deep._stacked_reference, "h", "dh"),
        "highway_backward": (deep._highway_reference, "y", "dy"),
    }[name]
    # the input behind each gradient, by the gradient's name
    if name == "birnn_backward":
        arrays = [
            case["x"],
            case["h0_fwd"],
            case["h0_bwd"],
            *case["params_fwd"],
            *case["params_bwd"],
        ]
        flat = dict(zip(deep.BIRNN_GRADS, arrays, strict=True))
    elif name == "highway_backward":
        flat = {"d" + k: case[k] for k in deep.HIGHWAY}
    else:
        flat = {"dx": case["x"]}
        for l, (ps, h0) in enumerate(zip(case["layers"], case["h0s"], strict=True), start=1):
            flat |= {f"d{p}_{l}": a for p, a in zip(deep.PARAMS, ps, strict=True)}
            flat[f"dh0_{l}"] = h0
        grads = {"dx": grads["dx"]} | {"d" + k: g for k, g in grads["grads"].items()}
    for key, array in flat.items():
        num = central_difference(
            lambda: torch.as_tensor(forward(case)[outputs]),
            torch.from_numpy(array),  # shares memory: changing it changes the case
            torch.as_tensor(case[upstream]),
        )
        np.testing.assert_allclose(grads[key], num.numpy(), rtol=1e-6, atol=1e-8, err_msg=key)
    if name == "birnn_backward":  # padded steps receive no gradient
        padded = np.arange(case["x"].shape[1]) >= case["lengths"][:, None]
        assert padded.any() and np.all(grads["dx"][padded] == 0)


def test_stacked_rnn_matches_torch_and_residual_adds_inputs() -> None:
    layers = [rnn_params(1, seed=40), rnn_params(1, seed=50, d=H)]
    x, h0s = rand(N, T, D, seed=21), [rand(N, H, seed=22), rand(N, H, seed=23)]
    rnn = torch.nn.RNN(D, H, num_layers=2, batch_first=True).double()
    with torch.no_grad():
        for l, (Wx, Wh, b) in enumerate(layers):
            getattr(rnn, f"weight_ih_l{l}").copy_(Wx.T)
            getattr(rnn, f"weight_hh_l{l}").copy_(Wh.T)
            getattr(rnn, f"bias_ih_l{l}").copy_(b)
            getattr(rnn, f"bias_hh_l{l}").zero_()
        want, _ = rnn(x, torch.stack(h0s))
    torch.testing.assert_close(deep.stacked_rnn_forward(x, h0s, layers), want)
    first = ref.rnn_forward(x, h0s[0], *layers[0])
    torch.testing.assert_close(
        deep.stacked_rnn_forward(x, h0s, layers, residual=True),
        ref.rnn_forward(first, h0s[1], *layers[1]) + first,
    )


def test_stacked_rnn_residual_size_mismatch_raises() -> None:
    layers = [rnn_params(1, seed=40), rnn_params(1, seed=50, d=H, h=H - 1)]
    h0s = [rand(N, H, seed=22), rand(N, H - 1, seed=23)]
    with pytest.raises(ValueError, match="equal input and output sizes, layer 2 maps"):
        deep.stacked_rnn_forward(rand(N, T, D, seed=21), h0s, layers, residual=True)


def test_the_mismatch_case_broadcasts_silently_in_numpy() -> None:
    """Only a check of the sizes raises: NumPy adds the size-1 input to the states."""
    case = deep.stacked_mismatch(np.random.default_rng(3))
    l = deep._mismatched_layer(case["layers"])
    assert l is not None and l >= 2
    assert case["layers"][l - 1][0].shape[0] == 1 < case["layers"][l - 1][1].shape[0]
    want = deep._stacked_reference(case)
    assert want["names"] == [f"layer {l}", f"layers[{l - 1}]"]
    assert want["raised"].startswith("ValueError: ") and f"layer {l} maps" in want["raised"]
    out = case["x"]
    for k, (h0, (Wx, Wh, b)) in enumerate(zip(case["h0s"], case["layers"], strict=True)):
        h = ref.rnn_forward(
            torch.as_tensor(out), torch.as_tensor(h0), *map(torch.as_tensor, (Wx, Wh, b))
        )
        out = h.numpy() + out if k > 0 else h.numpy()  # no error from NumPy
    assert out.shape[-1] == case["layers"][-1][1].shape[0]


def test_highway_formula_and_limits() -> None:
    x = rand(N, D, seed=24)
    W_h, b_h, W_t = rand(D, D, seed=25), rand(D, seed=26), rand(D, D, seed=27)
    closed = deep.highway_forward(x, W_h, b_h, W_t, torch.full((D,), -1e3, dtype=torch.float64))
    opened = deep.highway_forward(x, W_h, b_h, W_t, torch.full((D,), 1e3, dtype=torch.float64))
    torch.testing.assert_close(closed, x)  # gate shut: the input is carried
    torch.testing.assert_close(opened, torch.tanh(x @ W_h + b_h))


@pytest.mark.parametrize("name", ["rnn_step", "rnn", "lstm_step", "lstm", "gru_step"])
def test_backward_references_match_finite_differences(name: str) -> None:
    gates = {"rnn_step": 1, "rnn": 1, "lstm_step": 4, "lstm": 4, "gru_step": 3}[name]
    Wx, Wh, b = rnn_params(gates, seed=60)
    seq = not name.endswith("_step")
    x = rand(N, T, D, seed=61) if seq else rand(N, D, seed=61)
    h = rand(N, H, seed=62)
    c = rand(N, H, seed=63)
    up = rand(N, T, H, seed=64) if seq else rand(N, H, seed=64)
    dc = rand(N, H, seed=65)
    if name == "rnn_step":
        grads = ref.vjp(ref.rnn_step_forward, dict(x=x, h_prev=h, Wx=Wx, Wh=Wh, b=b), [up])
        outputs = [lambda: ref.rnn_step_forward(x, h, Wx, Wh, b)]
        named = {"dx": x, "dh_prev": h, "dWx": Wx, "dWh": Wh, "db": b}
    elif name == "rnn":
        grads = ref.vjp(ref.rnn_forward, dict(x=x, h0=h, Wx=Wx, Wh=Wh, b=b), [up])
        outputs = [lambda: ref.rnn_forward(x, h, Wx, Wh, b)]
        named = {"dx": x, "dh0": h, "dWx": Wx, "dWh": Wh, "db": b}
    elif name == "lstm_step":
        args = dict(x=x, h_prev=h, c_prev=c, Wx=Wx, Wh=Wh, b=b)
        grads = ref.vjp(ref.lstm_step_forward, args, [up, dc])
        outputs = [
            lambda: ref.lstm_step_forward(x, h, c, Wx, Wh, b)[0],
            lambda: ref.lstm_step_forward(x, h, c, Wx, Wh, b)[1],
        ]
        named = {"dx": x, "dh_prev": h, "dc_prev": c, "dWx": Wx, "dWh": Wh, "db": b}
    elif name == "lstm":
        grads = ref.vjp(ref.lstm_forward, dict(x=x, h0=h, Wx=Wx, Wh=Wh, b=b), [up])
        outputs = [lambda: ref.lstm_forward(x, h, Wx, Wh, b)]
        named = {"dx": x, "dh0": h, "dWx": Wx, "dWh": Wh, "db": b}
    else:
        grads = ref.vjp(ref.gru_step_forward, dict(x=x, h_prev=h, Wx=Wx, Wh=Wh, b=b), [up])
        outputs = [lambda: ref.gru_step_forward(x, h, Wx, Wh, b)]
        named = {"dx": x, "dh_prev": h, "dWx": Wx, "dWh": Wh, "db": b}
    ups = [up, dc][: len(outputs)]
    assert set(grads) == set(named)
    for key, tensor in named.items():
        num = sum(central_difference(f, tensor, u) for f, u in zip(outputs, ups, strict=True))
        torch.testing.assert_close(grads[key], num, rtol=1e-6, atol=1e-8)


def test_grad_norms_through_time_match_bptt() -> None:
    Wx, Wh, b = rnn_params(1, seed=70)
    x, h0, dh_last = rand(N, T, D, seed=71), rand(N, H, seed=72), rand(N, H, seed=73)
    norms = ref.grad_norms_through_time(dh_last, x, h0, Wx, Wh, b)
    assert norms.shape == (T,)
    torch.testing.assert_close(norms[-1], torch.linalg.norm(dh_last))
    # dJ/dh_t is dh0 of full BPTT over the remaining steps x[:, t+1:] started from h_t
    for t in range(T - 1):
        dh = torch.zeros(N, T - 1 - t, H, dtype=torch.float64)
        dh[:, -1] = dh_last
        h_t = ref.rnn_forward(x[:, : t + 1], h0, Wx, Wh, b)[:, -1]
        grads = ref.vjp(ref.rnn_forward, dict(x=x[:, t + 1 :], h0=h_t, Wx=Wx, Wh=Wh, b=b), [dh])
        torch.testing.assert_close(norms[t], torch.linalg.norm(grads["dh0"]))


def test_clip_grad_norm_agrees_with_torch() -> None:
    grads = {"a": rand(3, 4, seed=80), "b": rand(5, seed=81)}
    clipped, total = ref.clip_grad_norm(grads, 1.0)
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads.values()]
    for p, g in zip(params, grads.values(), strict=True):
        p.grad = g.clone()
    torch_total = torch.nn.utils.clip_grad_norm_(params, 1.0)
    assert total == pytest.approx(float(torch_total), rel=1e-12)
    for p, g in zip(params, clipped.values(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-8)  # torch adds 1e-6
    unchanged, _ = ref.clip_grad_norm(grads, total * 2)
    for k, g in grads.items():
        assert torch.equal(unchanged[k], g)
