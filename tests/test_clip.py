"""Clipping agrees with torch.nn.utils on every norm type, on non-finite gradients and on
every way of passing parameters."""

from __future__ import annotations

import math

import pytest
import torch

from rnn_course.clip import clip_grad_norm_, clip_grad_value_, grad_norm

NORM_TYPES = [1.0, 2.0, 3.0, 0.5, math.inf]


def make_params(
    seed: int, device: torch.device, scale: float = 1.0, with_none: bool = True
) -> list[torch.Tensor]:
    """A few parameters of different shapes with random gradients; one without a gradient."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (5,), (2, 3, 2)]
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen, dtype=torch.float64).to(device).requires_grad_()
        p.grad = scale * torch.randn(shape, generator=gen, dtype=torch.float64).to(device)
        params.append(p)
    if with_none:
        params.append(torch.zeros(2, dtype=torch.float64, device=device, requires_grad=True))
    return params


def clone_params(params: list[torch.Tensor]) -> list[torch.Tensor]:
    out = []
    for p in params:
        q = p.detach().clone().requires_grad_()
        q.grad = None if p.grad is None else p.grad.clone()
        out.append(q)
    return out


def assert_grads_equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for p, q in zip(a, b, strict=True):
        if p.grad is None:
            assert q.grad is None
        else:
            torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("norm_type", NORM_TYPES)
@pytest.mark.parametrize("max_norm", [0.1, 1.0, 100.0])
def test_clip_grad_norm_matches_torch(norm_type: float, max_norm: float, device) -> None:
    ours = make_params(0, device, scale=3.0)
    theirs = clone_params(ours)
    total = clip_grad_norm_(ours, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    torch.testing.assert_close(total, expected, rtol=1e-15, atol=0)
    assert_grads_equal(ours, theirs)


def test_returned_norm_is_before_clipping(device) -> None:
    params = make_params(1, device, scale=5.0)
    flat = torch.cat([p.grad.flatten() for p in params if p.grad is not None])
    total = clip_grad_norm_(params, 0.5)
    torch.testing.assert_close(total, flat.norm(), rtol=1e-12, atol=0)
    after = torch.cat([p.grad.flatten() for p in params if p.grad is not None])
    assert after.norm().item() == pytest.approx(0.5, rel=1e-5)
    # the direction is preserved
    torch.testing.assert_close(after / after.norm(), flat / flat.norm(), rtol=1e-12, atol=1e-14)


def test_small_gradients_unchanged(device) -> None:
    params = make_params(2, device, scale=1e-3)
    before = [p.grad.clone() for p in params if p.grad is not None]
    clip_grad_norm_(params, 10.0)
    for b, p in zip(before, [p for p in params if p.grad is not None], strict=True):
        torch.testing.assert_close(p.grad, b, rtol=0, atol=0)


def test_parameter_without_grad_is_ignored(device) -> None:
    params = make_params(3, device)
    clip_grad_norm_(params, 0.1)
    assert params[-1].grad is None


@pytest.mark.parametrize("norm_type", NORM_TYPES)
def test_single_tensor(norm_type: float, device) -> None:
    ours = make_params(4, device, scale=2.0, with_none=False)[0]
    theirs = clone_params([ours])[0]
    total = clip_grad_norm_(ours, 0.3, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 0.3, norm_type)
    torch.testing.assert_close(total, expected, rtol=1e-15, atol=0)
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=0, atol=0)


def test_generator_is_read_once(device) -> None:
    ours = make_params(5, device, scale=4.0)
    theirs = clone_params(ours)
    total = clip_grad_norm_((p for p in ours), 1.0)
    expected = torch.nn.utils.clip_grad_norm_((p for p in theirs), 1.0)
    torch.testing.assert_close(total, expected, rtol=1e-15, atol=0)
    assert_grads_equal(ours, theirs)


def test_module_parameters(device) -> None:
    torch.manual_seed(0)
    model = torch.nn.LSTM(3, 4, num_layers=2).double().to(device)
    twin = torch.nn.LSTM(3, 4, num_layers=2).double().to(device)
    twin.load_state_dict(model.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64, device=device)
    (model(x)[0] ** 2).sum().mul(10).backward()
    (twin(x)[0] ** 2).sum().mul(10).backward()
    total = clip_grad_norm_(model.parameters(), 0.2)
    expected = torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.2)
    torch.testing.assert_close(total, expected, rtol=1e-15, atol=0)
    assert_grads_equal(list(model.parameters()), list(twin.parameters()))


def test_empty_list_gives_zero() -> None:
    total = clip_grad_norm_([], 1.0)
    assert total.shape == () and total.item() == 0.0


def test_no_gradients_gives_zero(device) -> None:
    p = torch.ones(3, device=device, requires_grad=True)
    assert clip_grad_norm_([p], 1.0).item() == 0.0
    assert p.grad is None


def test_empty_generator_warns_like_torch() -> None:
    with pytest.warns(UserWarning, match="empty generator"):
        clip_grad_norm_((p for p in []), 1.0)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_nonfinite_without_error_matches_torch(bad: float, norm_type: float, device) -> None:
    ours = make_params(6, device)
    ours[0].grad[1, 2] = bad
    theirs = clone_params(ours)
    total = clip_grad_norm_(ours, 1.0, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type)
    torch.testing.assert_close(total, expected, equal_nan=True)
    assert not torch.isfinite(total)
    assert_grads_equal(ours, theirs)
    # the factor is τ/inf = 0 (finite entries vanish, inf * 0 = nan) or nan (all nan)
    assert torch.isnan(ours[0].grad[1, 2])
    if math.isnan(bad):
        assert torch.isnan(ours[1].grad).all()
    else:
        assert (ours[1].grad == 0).all()


def test_inf_gradient_becomes_nan(device) -> None:
    p = torch.zeros(3, dtype=torch.float64, device=device, requires_grad=True)
    p.grad = torch.tensor([1.0, math.inf, 2.0], dtype=torch.float64, device=device)
    clip_grad_norm_([p], 1.0)
    assert torch.isnan(p.grad[1])
    assert (p.grad[[0, 2]] == 0).all()


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_nonfinite_with_error_raises_like_torch(bad: float, device) -> None:
    ours = make_params(7, device)
    ours[2].grad[0, 0, 0] = bad
    theirs = clone_params(ours)
    with pytest.raises(RuntimeError) as theirs_err:
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError) as ours_err:
        clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    assert str(ours_err.value) == str(theirs_err.value)
    # nothing was modified before the error
    assert_grads_equal(ours, theirs)


def test_finite_with_error_flag_clips(device) -> None:
    ours = make_params(8, device, scale=3.0)
    theirs = clone_params(ours)
    total = clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    torch.testing.assert_close(total, expected, rtol=1e-15, atol=0)
    assert_grads_equal(ours, theirs)


def test_grad_norm_does_not_modify(device) -> None:
    params = make_params(9, device, scale=7.0)
    before = [p.grad.clone() for p in params if p.grad is not None]
    flat = torch.cat([b.flatten() for b in before])
    for norm_type in NORM_TYPES:
        total = grad_norm(params, norm_type)
        torch.testing.assert_close(
            total, torch.linalg.vector_norm(flat, norm_type), rtol=1e-12, atol=0
        )
    for b, p in zip(before, [p for p in params if p.grad is not None], strict=True):
        assert torch.equal(b, p.grad)


def test_grad_norm_equals_returned_clip_norm(device) -> None:
    params = make_params(10, device, scale=2.0)
    expected = grad_norm(params, 3.0)
    assert torch.equal(clip_grad_norm_(params, 0.1, 3.0), expected)


@pytest.mark.parametrize("clip_value", [0.0, 0.3, 1.0, 10.0])
def test_clip_grad_value_matches_torch(clip_value: float, device) -> None:
    ours = make_params(11, device, scale=2.0)
    ours[0].grad[0, 0] = math.inf
    ours[1].grad[0] = math.nan
    theirs = clone_params(ours)
    assert clip_grad_value_(ours, clip_value) is None
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    assert_grads_equal(ours, theirs)
    finite = torch.cat([p.grad.flatten() for p in ours if p.grad is not None])
    finite = finite[~finite.isnan()]
    assert finite.abs().max().item() <= clip_value


def test_clip_grad_value_single_tensor(device) -> None:
    p = torch.zeros(4, device=device, requires_grad=True)
    p.grad = torch.tensor([-3.0, -0.5, 0.5, 3.0], device=device)
    clip_grad_value_(p, 1.0)
    assert p.grad.tolist() == [-1.0, -0.5, 0.5, 1.0]


def test_bad_arguments() -> None:
    p = torch.zeros(2, requires_grad=True)
    p.grad = torch.ones(2)
    with pytest.raises(TypeError, match="max_norm must be a float, got str"):
        clip_grad_norm_([p], "1.0")
    with pytest.raises(ValueError, match=r"max_norm must be a non-negative number, got -1\.0"):
        clip_grad_norm_([p], -1.0)
    with pytest.raises(TypeError, match=r"parameters\[1\] must be a torch.Tensor, got int"):
        clip_grad_norm_([p, 3], 1.0)
    with pytest.raises(TypeError, match="parameters must be a tensor or an iterable"):
        clip_grad_norm_(3.0, 1.0)
    with pytest.raises(ValueError, match="clip_value must be a non-negative number"):
        clip_grad_value_([p], -0.1)
    with pytest.raises(TypeError, match="norm_type must be a float"):
        grad_norm([p], "fro")
