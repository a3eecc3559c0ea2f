"""One-dimensional iterated maps: the smallest picture of exploding and vanishing gradients.

A recurrent net with one unit and no input is the iterated map
:math:`h^{(t+1)} = f(h^{(t)})`. Its fixed points :math:`f(h^\\star) = h^\\star` are *sinks*
(:math:`|f'(h^\\star)| < 1`, nearby points are pulled in) or *sources*
(:math:`|f'(h^\\star)| > 1`, nearby points are pushed away). By the chain rule

.. math::

    \\frac{d h^{(T)}}{d h^{(1)}} = \\prod_{t=1}^{T-1} f'\\big(h^{(t)}\\big),

which vanishes for a start in a sink's basin and explodes at the boundary between two
basins, where a source sits. Plain NumPy, float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

ScalarMap = Callable[[float], float]


def _expect_steps(steps: object) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise ValueError(f"steps must be a non-negative int, got {steps!r}")
    return int(steps)


def _expect_callable(name: str, f: object) -> None:
    if not callable(f):
        raise TypeError(f"{name} must be callable, got {type(f).__name__}")


def iterate(f: ScalarMap, h0: float, steps: int) -> np.ndarray:
    """The orbit ``h0, f(h0), f(f(h0)), …``, shape ``(steps + 1,)``."""
    _expect_callable("f", f)
    steps = _expect_steps(steps)
    hs = np.empty(steps + 1)
    hs[0] = h0
    for t in range(steps):
        # h^(t+1) = f(h^(t))
        hs[t + 1] = f(hs[t])
    return hs


def _bisect(g: ScalarMap, a: float, b: float, tol: float) -> float:
    """A root of ``g`` in ``[a, b]`` where ``g(a)`` and ``g(b)`` differ in sign."""
    ga = g(a)
    while b - a > tol:
        m = 0.5 * (a + b)
        gm = g(m)
        if gm == 0.0:
            return m
        if (gm < 0) == (ga < 0):
            a, ga = m, gm
        else:
            b = m
    return 0.5 * (a + b)


def fixed_points(f: ScalarMap, lo: float, hi: float, *, grid: int = 10001) -> np.ndarray:
    """All fixed points of ``f`` in ``[lo, hi]`` that a sign change of ``f(x) − x`` reveals.

    ``g(x) = f(x) − x`` is sampled on ``grid`` equally spaced points; every exact zero and
    every sign change between neighbours is refined by bisection to an interval of width
    ``1e-12``. Tangential fixed points (``g`` touching zero without crossing, as at a
    saddle-node bifurcation) are found only if a grid point hits them exactly.

    Returns:
        The fixed points, sorted, shape ``(K,)``.
    """
    _expect_callable("f", f)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"need finite lo < hi, got lo={lo!r}, hi={hi!r}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an int >= 2, got {grid!r}")

    def g(x: float) -> float:
        return f(x) - x

    xs = np.linspace(lo, hi, grid)
    gs = np.array([g(x) for x in xs])
    roots = [float(x) for x, v in zip(xs, gs, strict=True) if v == 0.0]
    for i in range(grid - 1):
        if gs[i] != 0.0 and gs[i + 1] != 0.0 and (gs[i] < 0) != (gs[i + 1] < 0):
            roots.append(_bisect(g, float(xs[i]), float(xs[i + 1]), 1e-12))
    return np.array(sorted(roots))


def classify_fixed_point(df: ScalarMap, h_star: float, *, tol: float = 1e-9) -> str:
    """``"sink"`` if ``|f'(h*)| < 1``, ``"source"`` if ``> 1``, ``"neutral"`` within ``tol``."""
    _expect_callable("df", df)
    slope = abs(df(h_star))
    if slope < 1 - tol:
        return "sink"
    if slope > 1 + tol:
        return "source"
    return "neutral"


def cobweb(f: ScalarMap, h0: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The vertices of the cobweb diagram of ``steps`` iterations from ``h0``.

    Start on the diagonal at ``(h0, h0)``, go vertically to the graph
    ``(h^(t), h^(t+1))``, then horizontally back to the diagonal ``(h^(t+1), h^(t+1))``,
    and so on.

    Returns:
        ``(xs, ys)``, each ``(2 * steps + 1,)``: plot with ``plt.plot(xs, ys)``.
    """
    orbit = iterate(f, h0, steps)
    xs = np.empty(2 * steps + 1)
    ys = np.empty(2 * steps + 1)
    xs[0] = ys[0] = orbit[0]
    for t in range(steps):
        # vertical: (h^(t), h^(t)) → (h^(t), h^(t+1)); horizontal: → (h^(t+1), h^(t+1))
        xs[2 * t + 1], ys[2 * t + 1] = orbit[t], orbit[t + 1]
        xs[2 * t + 2], ys[2 * t + 2] = orbit[t + 1], orbit[t + 1]
    return xs, ys


def _sigmoid(z: np.ndarray | float) -> np.ndarray | float:
    # σ(z) = 1 / (1 + e^{−z}) = e^{z} / (1 + e^{z}): take the form whose exponent is ≤ 0
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def logistic_unit(w: float = 6.0, b: float = -3.0) -> tuple[ScalarMap, ScalarMap]:
    """The map ``h ← σ(w h + b)`` of one logistic unit, and its derivative.

    The derivative is ``f'(h) = w σ(w h + b)(1 − σ(w h + b))``. With the defaults
    ``σ(6h − 3)`` has three fixed points: ≈ 0.0707 and ≈ 0.9293 (sinks) and 0.5 (a source,
    ``f'(0.5) = 6/4 = 1.5``).

    Returns:
        ``(f, df)``; both accept floats or NumPy arrays.
    """

    def f(h: float) -> float:
        return _sigmoid(w * np.asarray(h, dtype=np.float64) + b)[()]

    def df(h: float) -> float:
        s = _sigmoid(w * np.asarray(h, dtype=np.float64) + b)
        return (w * s * (1 - s))[()]

    return f, df


def final_state_and_derivative(
    w: float, b: float, h1: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Iterate ``h ← σ(w h + b)`` from every start in ``h1`` and differentiate the result.

    :math:`h^{(T)}` is the state after ``steps = T - 1`` applications of the map to
    :math:`h^{(1)}`, and

    .. math::

        \\frac{d h^{(T)}}{d h^{(1)}} = \\prod_{t=1}^{T-1} f'\\big(h^{(t)}\\big),

    accumulated as a sum of logarithms so that factors like 1.5¹⁰⁰ or 10⁻³⁰⁰ neither
    overflow nor underflow before the end (the final ``exp`` may still give ``inf`` or 0,
    which is the honest float64 answer).

    Args:
        w, b: the unit's weight and bias.
        h1: starting states, any shape.
        steps: number of applications of the map.

    Returns:
        ``(h^(T), dh^(T)/dh^(1))``, both of ``h1``'s shape.
    """
    steps = _expect_steps(steps)
    h = np.array(h1, dtype=np.float64)
    log_grad = np.zeros_like(h)
    sign = np.ones_like(h)
    for _ in range(steps):
        s = _sigmoid(w * h + b)
        slope = w * s * (1 - s)  # f'(h^(t))
        with np.errstate(divide="ignore"):
            log_grad += np.log(np.abs(slope))
        sign *= np.sign(slope)
        h = s
    with np.errstate(over="ignore"):
        grad = sign * np.exp(log_grad)
    return h, grad
