"""Self-checks of an assignment: run your functions on the public cases and explain differences.

This file is shipped next to the released notebook together with ``public_checks.json``
(public inputs, expected outputs, and the outputs of known mistakes on those inputs). It
needs only NumPy and the standard library. The course's grader runs the same calls and
the same comparison on hidden cases, in a sandbox; this file is also the code that calls
your functions there.

In the notebook::

    from selfcheck import check, numerical_gradient, relative_error
    check("rnn_step_forward")          # all public cases; raises AssertionError on a difference

``numerical_gradient(f, x, df)`` estimates the gradient of ``sum(df * f(x))`` with respect
to ``x`` by centered differences; ``relative_error(a, b)`` compares two gradients.
"""

import contextlib
import inspect
import io
import json
import numbers
import sys
import warnings
from pathlib import Path

import numpy as np

DATA_FILE = "public_checks.json"
ERROR_KEY = "__error__"
RTOL, ATOL = 1e-6, 1e-8


# --------------------------------------------------------------------------- plain data


def encode(value):
    """Plain data (arrays, dicts, lists, numbers, strings) as JSON-ready objects, exactly."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype), "shape": value.shape}
    if isinstance(value, dict):
        return {"__dict__": {str(k): encode(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def decode(value):
    """Inverse of :func:`encode`."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if "__ndarray__" in value:
            arr = np.array(value["__ndarray__"], dtype=value["dtype"])
            return arr.reshape(value["shape"])
        if "__dict__" in value:
            return {k: decode(v) for k, v in value["__dict__"].items()}
    return value


def load(path=None):
    """The public-check data shipped beside the notebook (``public_checks.json``)."""
    path = Path(path) if path is not None else Path(__file__).with_name(DATA_FILE)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path.name} is missing: keep it in the same folder as the notebook and "
            "selfcheck.py (download the whole assignment folder)"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    for spec in data["checks"].values():
        for case in spec["cases"]:
            case["inputs"] = decode(case["inputs"])
            case["expected"] = decode(case["expected"])
            case["mistakes"] = decode(case.get("mistakes", {}))
    return data


# --------------------------------------------------------------------------- calling your functions


class StructureError(Exception):
    """A function returned something other than the contract's tuple."""


def fresh(value):
    """A deep copy of plain case data (arrays, dicts, lists, numbers)."""
    if isinstance(value, np.ndarray):
        return np.array(value, dtype=value.dtype, copy=True)
    if isinstance(value, dict):
        return {k: fresh(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [fresh(v) for v in value]
    return value


CONVERT = {
    "tuple": lambda v: tuple(v),
    "tuples": lambda v: [tuple(p) for p in v],
    "float": float,
    "bool": bool,
}


def function(namespace, fname):
    fn = namespace.get(fname)
    if fn is None:
        raise NameError(f"{fname} is not defined: run the cell that defines it first")
    if not callable(fn):
        raise TypeError(f"{fname} must be a function, got {type(fn).__name__}")
    return fn


def describe(value):
    if value is None:
        return "None (is a return statement missing?)"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)} values"
    return f"a {type(value).__name__}"


def unpack(fname, result, names):
    """Name the values ``fname`` returned; raise ``StructureError`` on the wrong structure."""
    if len(names) == 1:
        if result is None or isinstance(result, tuple):
            raise StructureError(f"{fname} must return {names[0]}, got {describe(result)}")
        return {names[0]: result}
    if not isinstance(result, tuple) or len(result) != len(names):
        raise StructureError(
            f"{fname} must return a tuple ({', '.join(names)}), got {describe(result)}"
        )
    return dict(zip(names, result, strict=True))


def run(call, namespace, case):
    """Outputs of your functions on one case, following the check's ``call`` description.

    ``call`` lists the steps (``function``, ``args``, ``kwargs``, ``returns``), how to
    convert arguments, which outputs are graded, and whether a ``ValueError`` is an answer.
    An argument names a case input or a value an earlier step returned (``cache``).
    Returns ``{output: value}``, ``{"raised": ...}`` or ``{"__error__": message}``.
    """
    values = dict(case)
    convert = call.get("convert", {})
    steps = call["steps"]
    for k, step in enumerate(steps):
        fname = step["function"]

        def arg(key):
            value = fresh(values[key]) if key in case else values[key]
            return CONVERT[convert[key]](value) if key in convert else value

        try:
            fn = function(namespace, fname)
            args = [arg(key) for key in step["args"]]
            kwargs = {name: arg(key) for name, key in step.get("kwargs", {}).items()}
            if call.get("errstate"):
                with np.errstate(over="raise", invalid="raise"):
                    result = fn(*args, **kwargs)
            else:
                result = fn(*args, **kwargs)
            values.update(unpack(fname, result, step["returns"]))
        except StructureError as exc:
            later = [s["function"] for s in steps[k + 1 :]]
            note = f", so {' and '.join(later)} could not be checked" if later else ""
            return {ERROR_KEY: f"{exc}{note}"}
        except FloatingPointError as exc:
            return {
                ERROR_KEY: f"{fname} raised FloatingPointError ({exc}) on inputs with |x| up "
                "to 1000: an intermediate value overflows. HINT: never evaluate exp of a "
                "large positive number; rewrite the formula for negative x"
            }
        except ValueError as exc:
            if call.get("raises") != "ValueError":
                raise
            return {"raised": f"ValueError: {exc}"}
    return {name: values[name] for name in call["outputs"]}


# --------------------------------------------------------------------------- comparing


def _fail(prefix, message, hint):
    return AssertionError(f"{prefix}: {message}\n  HINT: {hint}")


def _is_real(value):
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "fiu":
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _flatten(outputs):
    flat = {}
    for key, value in outputs.items():
        if isinstance(value, dict):
            flat.update({f"{key}[{k!r}]": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def mistake_hint(outputs, mistakes):
    """The hint of the first known mistake that every comparable output matches."""
    flat_out = _flatten(outputs)
    for hint, wrong in mistakes.items():
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


def _as_array(label, got, want):
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


def _error_report(got, want):
    err = np.abs(got - want)
    i = np.unravel_index(int(np.argmax(err)), err.shape)
    rel = err / np.maximum(np.abs(want), ATOL)
    j = np.unravel_index(int(np.argmax(rel)), rel.shape)
    return (
        f"largest absolute error {err[i]:.3g} at index {tuple(int(v) for v in i)} "
        f"(got {got[i]:.6g}, expected {want[i]:.6g}); largest relative error {rel[j]:.3g} at "
        f"index {tuple(int(v) for v in j)}; tolerance rtol {RTOL:g}, atol {ATOL:g}"
    )


def compare(name, outputs, expected, *, case_label, hint, mistakes=None, show_values=True):
    """Raise ``AssertionError`` (with a HINT) unless ``outputs`` match ``expected``.

    ``hint`` is the check's general advice; ``mistakes`` maps the hint of each known
    mistake to the outputs it produces, so a matching mistake is named. With
    ``show_values=False`` (hidden cases) the message names what differs, not the numbers.
    """
    mistakes = mistakes or {}
    prefix = f"{name} ({case_label})"
    if not isinstance(outputs, dict):
        raise _fail(prefix, f"the grader received {type(outputs).__name__} outputs", hint)
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
        raise _fail(prefix, f"raised {outputs['raised']} although the sizes allow it", hint)
    for key, want in expected.items():
        got = outputs.get(key)
        if isinstance(want, dict):
            if not isinstance(got, dict):
                kind = "None" if got is None else type(got).__name__
                raise _fail(
                    prefix, f"{key} must be a dict with keys {sorted(want)}, got {kind}", hint
                )
            if sorted(got) != sorted(want):
                raise _fail(
                    prefix,
                    f"{key} must have the same keys as grads {sorted(want)}, got "
                    f"{sorted(map(str, got))}",
                    hint,
                )
            for k, w in want.items():
                _compare_array(
                    prefix, f"{key}[{k!r}]", got[k], w, outputs, mistakes, hint, show_values
                )
        elif isinstance(want, np.ndarray):
            _compare_array(prefix, key, got, want, outputs, mistakes, hint, show_values)
        else:
            _compare_scalar(prefix, key, got, float(want), outputs, mistakes, hint, show_values)


def _compare_scalar(prefix, key, got, want, outputs, mistakes, hint, show_values):
    if not _is_real(got):
        kind = "None" if got is None else type(got).__name__
        raise _fail(prefix, f"{key} must be a float, got {kind}", hint)
    value = float(got)
    if not np.isclose(value, want, rtol=RTOL, atol=ATOL):
        detail = (
            f"got {value:.10g}, expected {want:.10g} (absolute error {abs(value - want):.3g}; "
            f"tolerance rtol {RTOL:g}, atol {ATOL:g})"
            if show_values
            else f"the value is not within rtol {RTOL:g}, atol {ATOL:g} of the expected one"
        )
        raise _fail(prefix, f"{key} differs: {detail}", mistake_hint(outputs, mistakes) or hint)


def _compare_array(prefix, key, got, want, outputs, mistakes, hint, show_values):
    arr, problem = _as_array(key, got, want)
    if arr is None:
        raise _fail(prefix, problem, mistake_hint(outputs, mistakes) or hint)
    if arr.shape != want.shape:
        named = mistake_hint(outputs, mistakes)
        if named is None and arr.ndim == want.ndim + 1 and arr.shape[1:] == want.shape:
            named = f"{key} must be summed over the batch axis (axis=0)"
        if named is None and arr.shape == want.shape[::-1] and arr.ndim == 2:
            named = f"{key} looks transposed"
        raise _fail(
            prefix, f"{key} has shape {arr.shape}, expected shape {want.shape}", named or hint
        )
    if not np.all(np.isfinite(arr)):
        bad = np.unravel_index(int(np.argmax(~np.isfinite(arr))), arr.shape)
        raise _fail(
            prefix,
            f"{key} contains nan or inf (first at index {tuple(int(v) for v in bad)}); "
            f"shape {arr.shape} as expected",
            hint,
        )
    if not np.allclose(arr, want, rtol=RTOL, atol=ATOL):
        if show_values:
            detail = _error_report(arr, want)
        else:
            wrong = ~np.isclose(arr, want, rtol=RTOL, atol=ATOL)
            detail = f"{int(wrong.sum())} of {arr.size} entries differ"
        raise _fail(
            prefix,
            f"{key} differs from the expected value (shape {arr.shape} as expected); {detail}",
            mistake_hint(outputs, mistakes) or hint,
        )


# --------------------------------------------------------------------------- the notebook's check


def _caller_namespace():
    """Globals of the code that called ``check`` (the notebook's ``__main__``)."""
    frame = inspect.currentframe()
    try:
        caller = frame.f_back.f_back if frame and frame.f_back else None
        if caller is not None:
            return caller.f_globals
    finally:
        del frame
    return vars(sys.modules["__main__"])


_DATA = None


def run_check(name, namespace, data=None):
    """Run every public case of check ``name``; return the success line or raise."""
    global _DATA
    if data is None:
        _DATA = _DATA or load()
        data = _DATA
    spec = data["checks"][name]
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        for i, case in enumerate(spec["cases"], start=1):
            outputs = run(spec["call"], namespace, case["inputs"])
            compare(
                name,
                outputs,
                case["expected"],
                case_label=f"public case {i}",
                hint=spec["hint"],
                mistakes=case["mistakes"],
            )
    return f"{name}: all {len(spec['cases'])} public cases passed"


def check(name):
    """Check your ``name`` on its public cases; ``AssertionError`` with a hint on a difference.

    Exceptions raised by your own code (for example ``NotImplementedError``) pass through.
    The grader runs more (hidden) cases of other sizes and values.
    """
    global _DATA
    _DATA = _DATA or load()
    if not isinstance(name, str) or name not in _DATA["checks"]:
        raise ValueError(f"name must be one of {', '.join(_DATA['checks'])}; got {name!r}")
    print(run_check(name, _caller_namespace(), _DATA))


# --------------------------------------------------------------------------- gradient checks


def numerical_gradient(f, x, df, h=1e-5):
    """Centered-difference gradient of ``sum(df * f(x))`` w.r.t. ``x`` (same shape as ``x``).

    Args:
        f: function of ``x`` returning an array shaped like ``df``.
        x: float64 array, perturbed in place one entry at a time and restored, so ``f``
            may close over it, as in
            ``numerical_gradient(lambda _: rnn_forward(x, h0, Wx, Wh, b)[0], Wx, dh)``.
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


def relative_error(a, b):
    """``max |a - b| / max(|a| + |b|)`` elementwise, with a floor that avoids 0/0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)), initial=0.0))
