"""Fixed points, their classification and the derivative of a long orbit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnn_course.iterated_maps import (
    classify_fixed_point,
    cobweb,
    final_state_and_derivative,
    fixed_points,
    iterate,
    logistic_unit,
)


def test_iterate_quadratic() -> None:
    orbit = iterate(lambda x: x * x + 0.15, 0.0, 3)
    assert orbit.shape == (4,)
    assert orbit[1] == 0.15
    assert orbit[2] == pytest.approx(0.15**2 + 0.15)
    assert orbit[3] == pytest.approx(orbit[2] ** 2 + 0.15)


def test_logistic_unit_fixed_points() -> None:
    f, df = logistic_unit()
    roots = fixed_points(f, 0.0, 1.0)
    assert len(roots) == 3
    for r in roots:
        assert abs(f(r) - r) < 1e-10
    assert roots[0] == pytest.approx(0.0707, abs=1e-4)
    assert roots[1] == pytest.approx(0.5, abs=1e-10)
    assert roots[2] == pytest.approx(0.9293, abs=1e-4)
    # symmetric about 0.5 because σ(−z) = 1 − σ(z)
    assert roots[0] + roots[2] == pytest.approx(1.0, abs=1e-10)
    assert [classify_fixed_point(df, r) for r in roots] == ["sink", "source", "sink"]


def test_logistic_unit_derivative_matches_difference_quotient() -> None:
    f, df = logistic_unit(2.5, -1.0)
    for h in [-1.0, 0.0, 0.3, 0.9]:
        numeric = (f(h + 1e-6) - f(h - 1e-6)) / 2e-6
        assert df(h) == pytest.approx(numeric, rel=1e-7)
    assert df(0.5) == pytest.approx(2.5 * f(0.5) * (1 - f(0.5)))


def test_quadratic_fixed_points_from_formula() -> None:
    # x² + 0.15 = x  ⇔  x² − x + 0.15 = 0  ⇔  x = (1 ± √(1 − 0.6)) / 2
    expected = np.array([(1 - math.sqrt(0.4)) / 2, (1 + math.sqrt(0.4)) / 2])
    roots = fixed_points(lambda x: x * x + 0.15, -2.0, 2.0)
    np.testing.assert_allclose(roots, expected, rtol=0, atol=1e-11)

    def df(x: float) -> float:
        return 2 * x

    assert classify_fixed_point(df, roots[0]) == "sink"
    assert classify_fixed_point(df, roots[1]) == "source"
    # the orbit from 0 converges to the sink
    assert iterate(lambda x: x * x + 0.15, 0.0, 200)[-1] == pytest.approx(roots[0], abs=1e-12)


def test_fixed_points_none_and_exact_grid_hit() -> None:
    assert fixed_points(lambda x: x * x + 1.0, -3.0, 3.0).size == 0
    # the identity's slope-2 cousin f(x) = 2x has its fixed point 0 on the grid
    assert fixed_points(lambda x: 2 * x, -1.0, 1.0, grid=11).tolist() == [0.0]


def test_classify_neutral() -> None:
    assert classify_fixed_point(lambda x: -1.0, 0.0) == "neutral"
    assert classify_fixed_point(lambda x: -1.5, 0.0) == "source"
    assert classify_fixed_point(lambda x: -0.5, 0.0) == "sink"


def test_cobweb_vertices() -> None:
    def f(x: float) -> float:
        return 0.5 * x + 1

    xs, ys = cobweb(f, 0.0, 3)
    orbit = iterate(f, 0.0, 3)
    assert xs.shape == ys.shape == (7,)
    assert (xs[0], ys[0]) == (0.0, 0.0)
    for t in range(3):
        assert (xs[2 * t + 1], ys[2 * t + 1]) == (orbit[t], orbit[t + 1])  # on the graph
        assert xs[2 * t + 2] == ys[2 * t + 2] == orbit[t + 1]  # on the diagonal


def test_final_state_and_derivative_matches_chain_rule() -> None:
    f, df = logistic_unit(6.0, -3.0)
    h1 = np.array([0.2, 0.45, 0.7])
    hT, grad = final_state_and_derivative(6.0, -3.0, h1, 10)
    for k, start in enumerate(h1):
        orbit = iterate(f, float(start), 10)
        assert hT[k] == pytest.approx(orbit[-1], rel=1e-14)
        assert grad[k] == pytest.approx(np.prod([df(h) for h in orbit[:-1]]), rel=1e-10)
        numeric = (iterate(f, start + 1e-7, 10)[-1] - iterate(f, start - 1e-7, 10)[-1]) / 2e-7
        assert grad[k] == pytest.approx(numeric, rel=1e-5)


def test_gradient_explodes_at_source_and_vanishes_elsewhere() -> None:
    h1 = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    hT, grad = final_state_and_derivative(6.0, -3.0, h1, 100)
    # 0.5 is the source: it stays put and its derivative is 1.5^100
    assert hT[2] == pytest.approx(0.5, abs=1e-12)
    assert grad[2] == pytest.approx(1.5**100, rel=1e-8)
    # every other start falls into a sink, and the derivative underflows to (nearly) zero
    assert hT[:2] == pytest.approx([0.0707] * 2, abs=1e-4)
    assert hT[3:] == pytest.approx([0.9293] * 2, abs=1e-4)
    assert np.all(np.abs(grad[[0, 1, 3, 4]]) < 1e-20)


def test_derivative_grows_with_steps_at_source() -> None:
    g = [final_state_and_derivative(6.0, -3.0, np.array([0.5]), n)[1][0] for n in (1, 10, 50)]
    assert g[0] < g[1] < g[2]


def test_validation() -> None:
    with pytest.raises(ValueError, match="steps must be a non-negative int, got -1"):
        iterate(lambda x: x, 0.0, -1)
    with pytest.raises(TypeError, match="f must be callable"):
        fixed_points(3.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="need finite lo < hi"):
        fixed_points(lambda x: x, 1.0, 0.0)
    with pytest.raises(ValueError, match="grid must be an int >= 2"):
        fixed_points(lambda x: x, 0.0, 1.0, grid=1)
