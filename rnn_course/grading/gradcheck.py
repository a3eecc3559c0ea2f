"""Gradient-check helpers for the assignments (NumPy only).

``numerical_gradient(f, x, df)`` estimates ``sum(df * f(x))``'s gradient w.r.t. ``x`` by
centered differences, perturbing ``x`` in place and restoring it, so ``f`` may close over
``x`` (``numerical_gradient(lambda _: rnn_forward(x, h0, Wx, Wh, b)[0], Wx, dh)``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, df: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Centered-difference gradient of ``sum(df * f(x))`` w.r.t. ``x`` (same shape as ``x``).

    Args:
        f: function of ``x`` returning an array shaped like ``df``.
        x: float64 array, perturbed in place one entry at a time and restored.
        df: upstream gradient, the weights of ``f(x)``'s entries in the scalar loss.
        h: step size.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise TypeError(
            f"x must be a float64 NumPy array, got {type(x).__name__} "
            f"{getattr(x, 'dtype', '')}".rstrip()
        )
    if h <= 0:
        raise ValueError(f"h must be positive, got {h}")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        # (f(x + h e_i) - f(x - h e_i)) / 2h, weighted by df
        x[i] = old + h
        plus = np.sum(np.asarray(f(x)) * df)
        x[i] = old - h
        minus = np.sum(np.asarray(f(x)) * df)
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a - b| / max(|a| + |b|)`` elementwise, with a floor that avoids 0/0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)), initial=0.0))
