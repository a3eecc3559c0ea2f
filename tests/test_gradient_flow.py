"""Gradient-flow measurements agree with independent computations and with known matrices."""

from __future__ import annotations

import math

import pytest
import torch

from rnn_course.gradient_flow import (
    hidden_gradient_norms,
    jacobian_product_norms,
    layer_gradient_norms,
    linear_backward_norms,
    random_recurrent_matrix,
    rnn_step_jacobians,
    spectral_radius,
    with_spectral_radius,
)

KINDS = ["RNN", "LSTM", "GRU"]


def make_layer(kind: str, D: int, H: int, num_layers: int = 1, batch_first: bool = True):
    torch.manual_seed(0)
    layer = getattr(torch.nn, kind)(D, H, num_layers=num_layers, batch_first=batch_first)
    return layer.double()


def norms_by_restarting(layer, x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    """dL/dh^(t) computed independently: run to t, make the top h^(t) a leaf, run on from it."""
    T = x.shape[1]
    norms = []
    for t in range(T):
        with torch.no_grad():
            _, state = layer(x[:, : t + 1])
        is_lstm = isinstance(state, tuple)
        h_n = state[0] if is_lstm else state
        top = h_n[-1].clone().requires_grad_()
        h_n = torch.cat([h_n[:-1], top[None]])
        state = (h_n, state[1]) if is_lstm else h_n
        if t + 1 < T:
            _, state = layer(x[:, t + 1 :], state)
        last = (state[0] if is_lstm else state)[-1]
        (grad,) = torch.autograd.grad((upstream * last).sum(), top)
        norms.append(grad.norm())
    return torch.stack(norms)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_hidden_gradient_norms_match_restarting(kind: str, num_layers: int) -> None:
    layer = make_layer(kind, 3, 4, num_layers)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 7, 3, generator=gen, dtype=torch.float64)
    upstream = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    norms = hidden_gradient_norms(layer, x, upstream=upstream)
    assert norms.shape == (7,)
    assert not norms.requires_grad
    torch.testing.assert_close(
        norms, norms_by_restarting(layer, x, upstream), rtol=1e-10, atol=1e-12
    )
    torch.testing.assert_close(norms[-1], upstream.norm())


def test_default_upstream_is_unit() -> None:
    layer = make_layer("GRU", 2, 5)
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    norms = hidden_gradient_norms(layer, x)
    assert norms[-1].item() == pytest.approx(1.0, rel=1e-12)
    expected = norms_by_restarting(
        layer, x, torch.full((3, 5), 1 / math.sqrt(15), dtype=torch.float64)
    )
    torch.testing.assert_close(norms, expected, rtol=1e-10, atol=1e-12)


def test_tanh_rnn_norms_match_jacobian_products() -> None:
    """For one sequence: dL/dh^(t) = (J^(T) ⋯ J^(t+1))ᵀ u, with J from rnn_step_jacobians."""
    layer = make_layer("RNN", 2, 3)
    x = torch.randn(1, 6, 2, dtype=torch.float64)
    u = torch.tensor([[0.3, -1.0, 0.5]], dtype=torch.float64)
    h, _ = layer(x)
    J = rnn_step_jacobians(h[0].detach(), layer.weight_hh_l0.detach())
    g = u[0]
    expected = [g.norm()]
    for t in range(5, 0, -1):
        g = J[t].T @ g
        expected.append(g.norm())
    expected = torch.stack(expected[::-1])
    torch.testing.assert_close(
        hidden_gradient_norms(layer, x, upstream=u), expected, rtol=1e-10, atol=1e-14
    )


def test_time_major_layout() -> None:
    batch_first = make_layer("LSTM", 3, 4, batch_first=True)
    time_major = make_layer("LSTM", 3, 4, batch_first=False)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(
        hidden_gradient_norms(time_major, x.transpose(0, 1).contiguous()),
        hidden_gradient_norms(batch_first, x),
    )


def test_initial_state_is_used() -> None:
    layer = make_layer("RNN", 2, 3)
    x = torch.zeros(1, 4, 2, dtype=torch.float64)
    h0 = torch.full((1, 1, 3), 0.9, dtype=torch.float64)
    assert not torch.equal(hidden_gradient_norms(layer, x, h0), hidden_gradient_norms(layer, x))


def test_contracting_rnn_vanishes_expanding_lstm_path_does_not() -> None:
    """A tanh RNN with a small recurrent matrix loses the gradient geometrically."""
    layer = make_layer("RNN", 2, 8)
    with torch.no_grad():
        layer.weight_hh_l0.copy_(random_recurrent_matrix(8, 0.5, seed=0))
    x = torch.randn(1, 30, 2, dtype=torch.float64)
    norms = hidden_gradient_norms(layer, x)
    assert norms[0] < 1e-6 * norms[-1]


def test_bidirectional_rejected() -> None:
    layer = torch.nn.GRU(2, 3, bidirectional=True, batch_first=True)
    with pytest.raises(ValueError, match="unidirectional"):
        hidden_gradient_norms(layer, torch.zeros(1, 4, 2))


def test_hidden_gradient_norms_validation() -> None:
    layer = make_layer("RNN", 2, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(N, T, D\)"):
        hidden_gradient_norms(layer, torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"upstream must have shape \(N, H\) = \(1, 3\)"):
        hidden_gradient_norms(
            layer, torch.zeros(1, 4, 2, dtype=torch.float64), upstream=torch.ones(3)
        )
    with pytest.raises(TypeError, match=r"layer must be an nn\.Module"):
        hidden_gradient_norms(lambda x, h: (x, h), torch.zeros(1, 4, 2))


@pytest.mark.parametrize("kind", KINDS)
def test_rnn_course_layers_give_same_norms(kind: str) -> None:
    import rnn_course.layers

    reference = make_layer(kind, 3, 4, num_layers=2)
    ours = getattr(rnn_course.layers, kind)(3, 4, num_layers=2, batch_first=True).double()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    torch.testing.assert_close(
        hidden_gradient_norms(ours, x), hidden_gradient_norms(reference, x), rtol=1e-9, atol=1e-12
    )


# ---------------------------------------------------------------------------------------------
# Matrices
# ---------------------------------------------------------------------------------------------


def test_spectral_radius_of_known_matrices() -> None:
    assert spectral_radius(torch.diag(torch.tensor([0.5, -2.0, 1.0]))) == pytest.approx(2.0)
    rotation = torch.tensor([[0.0, -1.5], [1.5, 0.0]])  # eigenvalues ±1.5i
    assert spectral_radius(rotation) == pytest.approx(1.5)
    nilpotent = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    assert spectral_radius(nilpotent) == 0.0


@pytest.mark.parametrize("radius", [0.5, 1.0, 1.5])
def test_with_spectral_radius_is_exact(radius: float) -> None:
    gen = torch.Generator().manual_seed(3)
    W = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    scaled = with_spectral_radius(W, radius)
    assert spectral_radius(scaled) == pytest.approx(radius, rel=1e-12)
    # a rescaled copy: same direction, original untouched
    ratio = scaled / W
    torch.testing.assert_close(ratio, torch.full_like(W, ratio[0, 0].item()))
    assert spectral_radius(W) != pytest.approx(radius)


@pytest.mark.parametrize("orthogonal", [False, True])
def test_random_recurrent_matrix(orthogonal: bool, device) -> None:
    W = random_recurrent_matrix(10, 1.2, seed=4, orthogonal=orthogonal, device=device)
    assert W.shape == (10, 10) and W.dtype == torch.float64 and W.device.type == device.type
    assert spectral_radius(W) == pytest.approx(1.2, rel=1e-12)
    same = random_recurrent_matrix(10, 1.2, seed=4, orthogonal=orthogonal, device=device)
    other = random_recurrent_matrix(10, 1.2, seed=5, orthogonal=orthogonal, device=device)
    assert torch.equal(W, same) and not torch.equal(W, other)
    if orthogonal:
        eye = torch.eye(10, dtype=torch.float64, device=device)
        torch.testing.assert_close(W.T @ W, 1.44 * eye)


def test_matrix_validation() -> None:
    with pytest.raises(ValueError, match=r"W must be a square matrix \(H, H\), got shape \(2, 3\)"):
        spectral_radius(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="spectral radius 0"):
        with_spectral_radius(torch.zeros(2, 2), 1.0)
    with pytest.raises(ValueError, match="radius must be a non-negative number"):
        random_recurrent_matrix(3, -1.0, seed=0)
    with pytest.raises(ValueError, match="hidden_size must be positive"):
        random_recurrent_matrix(0, 1.0, seed=0)


# ---------------------------------------------------------------------------------------------
# Jacobians
# ---------------------------------------------------------------------------------------------


def test_rnn_step_jacobians_match_autograd() -> None:
    gen = torch.Generator().manual_seed(5)
    W_h = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    W_x = torch.randn(2, 4, generator=gen, dtype=torch.float64)
    x = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    h = [torch.zeros(4, dtype=torch.float64)]
    for t in range(5):
        h.append(torch.tanh(W_h @ h[-1] + x[t] @ W_x))
    J = rnn_step_jacobians(torch.stack(h[1:]), W_h)
    assert J.shape == (5, 4, 4)
    for t in range(5):
        expected = torch.autograd.functional.jacobian(
            lambda hp, t=t: torch.tanh(W_h @ hp + x[t] @ W_x), h[t]
        )
        torch.testing.assert_close(J[t], expected, rtol=1e-12, atol=1e-14)


def test_jacobian_product_norms_diagonal() -> None:
    lam = torch.tensor([0.9, -0.5, 0.2], dtype=torch.float64)
    J = torch.diag(lam).expand(6, 3, 3)
    norms = jacobian_product_norms(J)
    expected = 0.9 ** torch.arange(6, dtype=torch.float64)
    torch.testing.assert_close(norms, expected, rtol=1e-12, atol=0)


def test_jacobian_product_norms_order() -> None:
    """norms[d] is the norm of J_{T-1} ⋯ J_{T-d}: the order of the factors matters."""
    gen = torch.Generator().manual_seed(6)
    J = torch.randn(4, 3, 3, generator=gen, dtype=torch.float64)
    norms = jacobian_product_norms(J)
    assert norms[0].item() == pytest.approx(1.0)
    torch.testing.assert_close(norms[1], torch.linalg.matrix_norm(J[3], ord=2))
    torch.testing.assert_close(norms[3], torch.linalg.matrix_norm(J[3] @ J[2] @ J[1], ord=2))
    with pytest.raises(ValueError, match=r"jacobians must have shape \(T, H, H\)"):
        jacobian_product_norms(torch.zeros(3, 2, 4))


def test_linear_backward_norms_eigen_picture() -> None:
    W = torch.diag(torch.tensor([1.5, 1.0, 0.5], dtype=torch.float64))
    k = torch.arange(11, dtype=torch.float64)
    for i, lam in enumerate([1.5, 1.0, 0.5]):
        v = torch.zeros(3, dtype=torch.float64)
        v[i] = 2.0
        torch.testing.assert_close(
            linear_backward_norms(W, v, 10), 2.0 * lam**k, rtol=1e-12, atol=0
        )


def test_linear_backward_norms_uses_transpose() -> None:
    W = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    v = torch.tensor([1.0, 0.0], dtype=torch.float64)
    # Wᵀ v = (0, 1), (Wᵀ)² v = 0; W v would already be 0
    assert linear_backward_norms(W, v, 2).tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="steps must be a non-negative int"):
        linear_backward_norms(W, v, -1)


# ---------------------------------------------------------------------------------------------
# Per-parameter norms
# ---------------------------------------------------------------------------------------------


def test_layer_gradient_norms() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    unused = torch.nn.Linear(2, 2)
    model.add_module("unused", unused)
    x = torch.randn(5, 3)
    # stale gradients must not leak into the result
    for p in model.parameters():
        p.grad = torch.full_like(p, 100.0)
    loss = model[2](model[1](model[0](x))).pow(2).mean()
    norms = layer_gradient_norms(model, loss)
    assert list(norms) == [name for name, _ in model.named_parameters()]
    for name, p in model.named_parameters():
        if name.startswith("unused"):
            assert norms[name] == 0.0
        else:
            assert norms[name] == pytest.approx(p.grad.norm().item())
            assert 0 < norms[name] < 100
    with pytest.raises(ValueError, match="loss must be a scalar"):
        layer_gradient_norms(model, model[0](x))
