"""Compare a student's outputs with the expected ones and explain any difference.

``compare`` raises ``AssertionError`` with a message that names the output that differs,
its shape against the expected shape, the largest absolute and relative errors and where
they occur, the tolerance, and a HINT. The hint names a classic mistake when the outputs
match one of the wrong variants computed alongside the expected values; otherwise it says
what to check. Outputs of the wrong kind (None, lists, integers, objects that could not
leave the student's process) give a message, never an exception of another type.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from rnn_course.grading.drivers import DEPENDENCIES, ERROR_KEY
from rnn_course.grading.expected import VARIANTS_KEY

RTOL, ATOL = 1e-6, 1e-8

_GRADCHECK = (
    "compare your gradients with numerical_gradient on a small case (relative_error should "
    "be below 1e-7) to find the first wrong one"
)
GENERIC_HINTS: dict[str, str] = {
    "rnn_step_forward": "h_next = tanh(x @ Wx + h_prev @ Wh + b)",
    "rnn_step_backward": "with da = dh_next * (1 - h_next**2): dx = da @ Wx.T, dh_prev = "
    "da @ Wh.T, dWx = x.T @ da, dWh = h_prev.T @ da, db = da.sum(axis=0); " + _GRADCHECK,
    "rnn_forward": "loop over t = 0..T-1 and store the state after reading x[:, t] in h[:, t]",
    "rnn_backward": "walk t = T-1..0; the upstream of step t is dh[:, t] plus the dh_prev of "
    "step t+1; sum dWx, dWh, db over steps; dh0 is the last dh_prev; " + _GRADCHECK,
    "grad_norms_through_time": "start from g = dh_last at t = T-1 and go back with "
    "g = (g * (1 - h[:, t]**2)) @ Wh.T; norms[t] = np.linalg.norm(g) at each t",
    "clip_grad_norm": "one global norm over all arrays; scale every array by "
    "max_norm / total_norm only when total_norm > max_norm; return the norm before clipping",
    "sigmoid": "σ(x) = 1 / (1 + exp(-x)); for x < 0 use exp(x) / (1 + exp(x))",
    "lstm_step_forward": "a = x @ Wx + h_prev @ Wh + b split into i, f, g, o blocks of H "
    "columns; c_next = f * c_prev + i * g; h_next = o * tanh(c_next)",
    "lstm_step_backward": "dc = dc_next + dh_next * o * (1 - tanh(c_next)**2); stack the four "
    "gate gradients in the order i, f, g, o; " + _GRADCHECK,
    "lstm_forward": "the initial cell state is zero; h[:, t] is the state after x[:, t]",
    "lstm_backward": "carry both dh_prev and dc_prev from step t+1 into step t and sum the "
    "parameter gradients over time; " + _GRADCHECK,
    "gru_step_forward": "blocks u, r, c; h̃ = tanh(x Wx_c + (r * h_prev) @ Wh_c + b_c); "
    "h_next = (1 - u) * h_prev + u * h̃",
    "gru_step_backward": "h_prev reaches h_next by four paths: directly, through u, through r "
    "and through r * h_prev in the candidate; " + _GRADCHECK,
    "birnn_forward": "the backward RNN reads x[:, ::-1]; flip its states back so that "
    "h[:, t, H:] lines up with x[:, t]",
    "stacked_rnn_forward": "layer l reads layer l-1's states; with residual=True layers l > 0 "
    "add their input to their states",
    "highway_forward": "t = sigmoid(x @ W_t + b_t); y = t * tanh(x @ W_h + b_h) + (1 - t) * x",
}


def _fail(prefix: str, message: str, hint: str) -> AssertionError:
    return AssertionError(f"{prefix}: {message}\n  HINT: {hint}")


def _dependency_note(name: str) -> str:
    deps = [d for d in DEPENDENCIES.get(name, [name]) if d != name]
    if not deps:
        return ""
    tests = ", ".join(f"test_{d}" for d in deps)
    return f" (this check also runs your {', '.join(deps)}: make sure {tests} passes)"


def _as_array(label: str, got: Any, want: np.ndarray) -> tuple[np.ndarray | None, str]:
    """``(array, "")`` if ``got`` is a float64 array, else ``(None, message)``."""
    if not isinstance(got, np.ndarray):
        kind = "None" if got is None else f"a {type(got).__name__}"
        if isinstance(got, tuple):
            kind = f"a tuple of {len(got)} values"
        how = " (convert it with np.asarray)" if isinstance(got, list | tuple) else ""
        return None, f"{label} must be a NumPy array of shape {want.shape}, got {kind}{how}"
    if got.dtype.kind not in "f":
        return None, (
            f"{label} has dtype {got.dtype}, expected float64; arrays built from integers "
            "(np.zeros_like of an int array, np.array([0, 1])) hold integers: use dtype=float"
        )
    if got.dtype != np.float64:
        return None, f"{label} has dtype {got.dtype}, expected float64 (do not cast to {got.dtype})"
    return got, ""


def _variant_hint(outputs: dict[str, Any], variants: dict[str, dict[str, Any]]) -> str | None:
    """The hint of the first wrong variant that every comparable output matches."""
    flat_out = _flatten(outputs)
    for hint, wrong in variants.items():
        matched = 0
        for key, value in _flatten(wrong).items():
            got = flat_out.get(key)
            if isinstance(value, np.ndarray):
                if not isinstance(got, np.ndarray) or got.shape != value.shape:
                    if key in flat_out:
                        break
                    continue
                if got.dtype.kind not in "fiu" or not np.allclose(got, value, rtol=RTOL, atol=ATOL):
                    break
            else:
                if not _is_real(got) or not np.isclose(float(got), value, rtol=RTOL, atol=ATOL):
                    break
            matched += 1
        else:
            if matched:
                return hint.strip()
    return None


def _flatten(outputs: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in outputs.items():
        if key == VARIANTS_KEY:
            continue
        if isinstance(value, dict):
            flat.update({f"{key}[{k!r}]": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def _is_real(value: Any) -> bool:
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "fiu":
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _error_report(got: np.ndarray, want: np.ndarray) -> str:
    err = np.abs(got - want)
    i = np.unravel_index(int(np.argmax(err)), err.shape)
    rel = err / np.maximum(np.abs(want), ATOL)
    j = np.unravel_index(int(np.argmax(rel)), rel.shape)
    return (
        f"largest absolute error {err[i]:.3g} at index {tuple(int(v) for v in i)} "
        f"(got {got[i]:.6g}, expected {want[i]:.6g}); largest relative error {rel[j]:.3g} at "
        f"index {tuple(int(v) for v in j)}; tolerance rtol {RTOL:g}, atol {ATOL:g}"
    )


def _check_dict(prefix: str, key: str, got: Any, want: dict[str, Any], hint: str) -> None:
    if not isinstance(got, dict):
        raise _fail(
            prefix,
            f"{key} must be a dict with keys {sorted(want)}, got "
            f"{'None' if got is None else type(got).__name__}",
            hint,
        )
    if sorted(got) != sorted(want):
        raise _fail(
            prefix,
            f"{key} must have the same keys as grads {sorted(want)}, got {sorted(map(str, got))}",
            hint,
        )


def compare(
    name: str, outputs: dict[str, Any], expected: dict[str, Any], *, case_label: str
) -> None:
    """Raise ``AssertionError`` (with a HINT) unless ``outputs`` match ``expected``."""
    prefix = f"{name} ({case_label})"
    generic = GENERIC_HINTS.get(name, "compare your function with the formulas above")
    generic += _dependency_note(name)
    if not isinstance(outputs, dict):
        raise _fail(prefix, f"the grader received {type(outputs).__name__} outputs", generic)
    if ERROR_KEY in outputs:
        message = str(outputs[ERROR_KEY])
        if "HINT:" in message:
            raise AssertionError(f"{prefix}: {message}")
        raise _fail(
            prefix,
            message,
            "return exactly the values listed, in that order, as a tuple (return a, b, cache)",
        )
    if "raised" in expected:
        if "raised" not in outputs:
            raise _fail(
                prefix,
                "residual=True with a layer that changes the size must raise "
                "ValueError, but no error was raised",
                "compare the input and output sizes of each layer l > 0 before adding the residual",
            )
        return
    if "raised" in outputs:
        raise _fail(prefix, f"raised {outputs['raised']} although the sizes allow it", generic)
    variants = expected.get(VARIANTS_KEY, {})
    for key, want in expected.items():
        if key == VARIANTS_KEY:
            continue
        got = outputs.get(key)
        if isinstance(want, dict):
            _check_dict(prefix, key, got, want, generic)
            for k, w in want.items():
                _compare_array(prefix, f"{key}[{k!r}]", got[k], w, outputs, variants, generic)
        elif isinstance(want, np.ndarray):
            _compare_array(prefix, key, got, want, outputs, variants, generic)
        else:
            _compare_scalar(prefix, key, got, float(want), outputs, variants, generic)


def _compare_scalar(prefix, key, got, want, outputs, variants, generic) -> None:  # type: ignore[no-untyped-def]
    if not _is_real(got):
        kind = "None" if got is None else type(got).__name__
        raise _fail(prefix, f"{key} must be a float, got {kind}", generic)
    value = float(got)
    if not np.isclose(value, want, rtol=RTOL, atol=ATOL):
        hint = _variant_hint(outputs, variants) or generic
        raise _fail(
            prefix,
            f"{key} differs: got {value:.10g}, expected {want:.10g} "
            f"(absolute error {abs(value - want):.3g}; tolerance rtol {RTOL:g}, "
            f"atol {ATOL:g})",
            hint,
        )


def _compare_array(prefix, key, got, want, outputs, variants, generic) -> None:  # type: ignore[no-untyped-def]
    arr, problem = _as_array(key, got, want)
    if arr is None:
        raise _fail(prefix, problem, _variant_hint(outputs, variants) or generic)
    if arr.shape != want.shape:
        hint = _variant_hint(outputs, variants)
        if hint is None and arr.ndim == want.ndim + 1 and arr.shape[1:] == want.shape:
            hint = f"{key} must be summed over the batch axis (axis=0)"
        if hint is None and arr.shape == want.shape[::-1] and arr.ndim == 2:
            hint = f"{key} looks transposed"
        raise _fail(
            prefix, f"{key} has shape {arr.shape}, expected shape {want.shape}", hint or generic
        )
    if not np.all(np.isfinite(arr)):
        bad = np.unravel_index(int(np.argmax(~np.isfinite(arr))), arr.shape)
        raise _fail(
            prefix,
            f"{key} contains nan or inf (first at index "
            f"{tuple(int(v) for v in bad)}); shape {arr.shape} as expected",
            generic,
        )
    if not np.allclose(arr, want, rtol=RTOL, atol=ATOL):
        hint = _variant_hint(outputs, variants) or generic
        raise _fail(
            prefix,
            f"{key} differs from the expected value (shape {arr.shape} as "
            f"expected); {_error_report(arr, want)}",
            hint,
        )
