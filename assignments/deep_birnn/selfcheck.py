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
to ``x`` by centered differences; ``relative_error(a, b)`` compares two gradients, and
``gradient_errors(analytic, numeric, blocks)`` tabulates the errors per parameter and gate
block.
"""

import contextlib
import inspect
import io
import json
import numbers
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np

DATA_FILE = "public_checks.json"
ERROR_KEY = "__error__"
RAISED_KEY = "__raised__"
CRITERION_KEY = "__criterion__"  # expected outputs judged by a criterion, not by equality
FIX_MARK = "\n  FIX: "
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


def char_lm_init(seed, V, D, H):
    """The character model's initial parameters from a seed (zero biases).

    ``W_embed (V, D)`` with unit normal entries; ``Wx (D, H)``, ``Wh (H, H)`` and
    ``W_out (H, V)`` normal with standard deviation one over the square root of their
    input size, drawn in that order from ``np.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    return {
        "W_embed": rng.normal(size=(V, D)),
        "Wx": rng.normal(scale=1 / np.sqrt(D), size=(D, H)),
        "Wh": rng.normal(scale=1 / np.sqrt(H), size=(H, H)),
        "b": np.zeros(H),
        "W_out": rng.normal(scale=1 / np.sqrt(H), size=(H, V)),
        "b_out": np.zeros(V),
    }


CONVERT = {
    "char_lm_init": lambda v: char_lm_init(int(v["seed"]), int(v["V"]), int(v["D"]), int(v["H"])),
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


@contextlib.contextmanager
def pinned_errstate():
    """Overflow and invalid operations raise, whatever the called code asks of NumPy.

    The contract grades ``sigmoid`` under ``np.errstate(over="raise", invalid="raise")``;
    an ``np.errstate(all="ignore")`` or ``np.seterr(...)`` inside the function would
    otherwise switch that off for its own body. While the function runs, both keep
    ``over`` and ``invalid`` at ``"raise"``; everything else they set still applies.
    """
    errstate_init, seterr = np.errstate.__init__, np.seterr

    def pinned_init(self, **kwargs):
        errstate_init(self, **{**kwargs, "over": "raise", "invalid": "raise"})

    def pinned_seterr(*args, **kwargs):
        kwargs.update(
            zip(("all", "divide", "over", "under", "invalid")[: len(args)], args, strict=True)
        )
        return seterr(**{**kwargs, "over": "raise", "invalid": "raise"})

    np.errstate.__init__, np.seterr = pinned_init, pinned_seterr
    try:
        with np.errstate(over="raise", invalid="raise"):
            yield
    finally:
        np.errstate.__init__, np.seterr = errstate_init, seterr


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
                with pinned_errstate():
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
                "large positive number; rewrite the formula for negative x",
                RAISED_KEY: True,
            }
        except ValueError as exc:
            if call.get("raises") != "ValueError":
                raise
            return {"raised": f"ValueError: {exc}"}
    return {name: values[name] for name in call["outputs"]}


# --------------------------------------------------------------------------- comparing


#: Widest line of a message: `nbgrader validate` cuts its lines at 87 characters,
#: indentation included.
WIDTH = 82


def wrap(text, width=WIDTH):
    """``text`` with every line wrapped to ``width``, continuations indented under it."""
    out = []
    for line in str(text).splitlines() or [""]:
        if len(line) <= width:
            out.append(line)
            continue
        body = line.lstrip()
        lead = " " * (len(line) - len(body))
        more = lead + ("      " if body.startswith(("HINT:", "NOTE:", "FIX:")) else "  ")
        out += textwrap.wrap(
            body,
            width,
            initial_indent=lead,
            subsequent_indent=more,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [line]
    return "\n".join(out)


class CheckFailed(AssertionError):
    """A public case of a check failed. In Jupyter only the message is shown.

    IPython shows an exception with ``_render_traceback_`` as the lines it returns, so a
    failing ``check("f")`` prints what differs and the hint, not the checker's own frames.
    """

    def _render_traceback_(self):
        return ["CheckFailed:", *str(self).splitlines()]


def _fail(prefix, message, hint, explain=False):
    """The failure: what differs, then the hint; the exact fix only when asked for."""
    concept, _, fix = hint.partition(FIX_MARK)
    text = f"{prefix}: {message}\n  HINT: {concept}"
    if fix and explain:
        text += f"{FIX_MARK}{fix}"
    elif fix:
        text += f"\n  (check({prefix.split(' ')[0]!r}, explain=True) shows how to fix it)"
    return CheckFailed(wrap(text))


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
    """The key (hint and fix) of the first known mistake that every comparable output matches."""
    flat_out = _flatten(outputs)
    for key, wrong in mistakes.items():
        matched = 0
        for name, value in _flatten(wrong).items():
            got = flat_out.get(name)
            if isinstance(value, np.ndarray):
                if not isinstance(got, np.ndarray) or got.shape != value.shape:
                    if name in flat_out:
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
                return key.strip()
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
    return (
        f"largest absolute error {err[i]:.3g} at index {tuple(int(v) for v in i)} "
        f"(got {got[i]:.6g}, expected {want[i]:.6g}; tolerance rtol {RTOL:g}, atol {ATOL:g})"
    )


def _ranges(indices):
    """``[0, 1, 2, 5]`` -> ``"0..2, 5"``."""
    out, start = [], None
    for k, i in enumerate(indices):
        if start is None:
            start = i
        if k + 1 == len(indices) or indices[k + 1] != i + 1:
            out.append(str(start) if start == i else f"{start}..{i}")
            start = None
    return ", ".join(out)


def _features(wrong, time_axis):
    """Which features (last axis) differ, when some are right: ``features 6..11 differ``.

    A bias of stacked gates, ``(G·H,)``, counts too: its wrong entries name the gate block.
    """
    if wrong.ndim < 1 or wrong.shape[-1] < 2 or wrong.ndim - 1 == time_axis:
        return []
    per_f = wrong.reshape(-1, wrong.shape[-1]).any(axis=0)
    bad = [int(f) for f in np.flatnonzero(per_f)]
    good = [int(f) for f in np.flatnonzero(~per_f)]
    if not bad or not good:
        return []
    return [f"features {_ranges(bad)} differ, features {_ranges(good)} are right"]


def _where(got, want, sizes):
    """Where an array differs: the time steps, the features, or a common factor."""
    wrong = ~np.isclose(got, want, rtol=RTOL, atol=ATOL)
    T, N = sizes.get("T"), sizes.get("N")
    notes = []
    time_axis = None
    if T and got.ndim >= 2 and got.shape[:2] == (N, T):
        time_axis = 1
    elif T and got.shape == (T,):
        time_axis = 0
    if time_axis is not None and T > 1:
        other = tuple(a for a in range(got.ndim) if a != time_axis)
        per_t = wrong.any(axis=other) if other else wrong
        bad = [int(t) for t in np.flatnonzero(per_t)]
        good = [int(t) for t in np.flatnonzero(~per_t)]
        if good:
            notes.append(f"wrong at time steps {_ranges(bad)}, right at {_ranges(good)}")
        else:
            notes.append("wrong at every time step")
    notes += _features(wrong, time_axis)
    scale = float(np.vdot(want, want))
    if scale > 0:
        factor = float(np.vdot(got, want)) / scale
        if not np.isclose(factor, 1.0) and np.allclose(got, factor * want, rtol=1e-6, atol=1e-8):
            named = ""
            for letter, size in sorted(sizes.items()):
                if size and np.isclose(factor, size):
                    named = f" = {letter}"
                elif size and np.isclose(factor, 1 / size):
                    named = f" = 1/{letter}"
            notes.append(
                "the wrong sign"
                if np.isclose(factor, -1.0)
                else f"off by a factor ≈ {factor:.4g}{named}"
            )
    return notes


def compare(
    name,
    outputs,
    expected,
    *,
    case_label,
    hint,
    mistakes=None,
    show_values=True,
    explain=False,
    sizes=None,
):
    """Raise ``AssertionError`` unless ``outputs`` match ``expected``; say what and where differs.

    ``hint`` is the check's general advice; ``mistakes`` maps the key (hint and fix) of each
    known mistake to the outputs it produces, so that a matching mistake is named. Every
    output that differs is listed, with where it differs (time steps, a common factor)
    when ``show_values``; for hidden cases (``show_values=False``) only what differs.
    ``explain`` adds the exact fix of a recognised mistake. ``sizes`` (``N``, ``T``, ...)
    help to describe where an output differs.
    """
    mistakes = mistakes or {}
    sizes = sizes or {}
    prefix = f"{name} ({case_label})"
    if not isinstance(outputs, dict):
        raise _fail(prefix, f"the grader received {type(outputs).__name__} outputs", hint)
    if ERROR_KEY in outputs:
        message = str(outputs[ERROR_KEY])
        if "HINT:" in message:
            raise CheckFailed(wrap(f"{prefix}: {message}"))
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
                "a layer l > 1 (layers numbered from 1) whose output size differs from its "
                "input size cannot add its input"
                + FIX_MARK
                + "check the sizes of every layer l > 1 before computing anything, and raise "
                "ValueError naming the layer",
            )
        return
    if "raised" in outputs:
        raise _fail(prefix, f"raised {outputs['raised']} although the sizes allow it", hint)
    if CRITERION_KEY in expected:
        problem = criterion_problem(outputs, expected[CRITERION_KEY])
        if problem is not None:
            kind, detail = problem
            raise _fail(prefix, detail if show_values else CRITERION_VERDICTS[kind], hint)
        return
    named = None

    def known():
        nonlocal named
        named = named or mistake_hint(outputs, mistakes) or hint
        return named

    differing = []
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
            items = [(f"{key}[{k!r}]", got[k], w) for k, w in want.items()]
        else:
            items = [(key, got, want)]
        for label, g, w in items:
            if isinstance(w, np.ndarray):
                line = _array_difference(prefix, label, g, w, known, show_values, sizes, explain)
            else:
                line = _scalar_difference(prefix, label, g, float(w), hint, show_values)
            if line:
                differing.append(line)
    if differing:
        total = sum(len(w) if isinstance(w, dict) else 1 for w in expected.values())
        head = (
            f"{differing[0]}"
            if len(differing) == 1
            else f"{len(differing)} of {total} outputs differ:\n    - " + "\n    - ".join(differing)
        )
        raise _fail(prefix, head, known(), explain)


def _scalar_difference(prefix, key, got, want, hint, show_values):
    if not _is_real(got):
        kind = "None" if got is None else type(got).__name__
        raise _fail(prefix, f"{key} must be a float, got {kind}", hint)
    value = float(got)
    if np.isclose(value, want, rtol=RTOL, atol=ATOL):
        return ""
    if not show_values:
        return f"{key} differs (not within rtol {RTOL:g}, atol {ATOL:g} of the expected value)"
    return (
        f"{key} differs: got {value:.10g}, expected {want:.10g} (absolute error "
        f"{abs(value - want):.3g}; tolerance rtol {RTOL:g}, atol {ATOL:g})"
    )


def _array_difference(prefix, key, got, want, known, show_values, sizes, explain):
    arr, problem = _as_array(key, got, want)
    if arr is None:
        raise _fail(prefix, problem, known(), explain)
    if arr.shape != want.shape:
        hint = known()
        if arr.ndim == want.ndim + 1 and arr.shape[1:] == want.shape:
            hint = f"{key} must be summed over the batch axis (axis=0)"
        elif arr.shape == want.shape[::-1] and arr.ndim == 2:
            hint = f"{key} looks transposed"
        raise _fail(
            prefix, f"{key} has shape {arr.shape}, expected shape {want.shape}", hint, explain
        )
    if not np.all(np.isfinite(arr)):
        bad = np.unravel_index(int(np.argmax(~np.isfinite(arr))), arr.shape)
        where = f" (first at index {tuple(int(v) for v in bad)})" if show_values else ""
        return f"{key} contains nan or inf{where}"
    if np.allclose(arr, want, rtol=RTOL, atol=ATOL):
        return ""
    if not show_values:
        return f"{key} differs"
    notes = _where(arr, want, sizes)
    return f"{key} differs: " + "; ".join([*notes, _error_report(arr, want)])


# --------------------------------------------------------------------------- criteria

#: What a failed criterion says when the case is hidden: a fixed text per kind of failure.
CRITERION_VERDICTS = {
    "structure": "the returned values do not have the contract's types and shapes",
    "diverged": "the training diverged: the parameters or losses contain nan or inf",
    "loss": "the trained model's validation loss is above the threshold",
}


def validation_windows(ids, length):
    """``(idx, targets)``, both ``(S, length)``: ``ids`` cut into rows, each with its next ids."""
    n = (len(ids) - 1) // length * length
    return ids[:n].reshape(-1, length), ids[1 : n + 1].reshape(-1, length)


def char_lm_validation_loss(params, idx, targets):
    """Mean cross-entropy (nats per character) of the character model on ``idx (S, L)``.

    Every row of ``idx`` is read from a zero state; ``targets[s, t]`` is the character
    after ``idx[s, t]``. The model is ``h_t = tanh(W_embed[idx_t] Wx + h_{t-1} Wh + b)``,
    ``scores_t = h_t W_out + b_out``.
    """
    x = params["W_embed"][idx]  # (S, L, D)
    S, L, _ = x.shape
    h = np.zeros((S, params["Wh"].shape[0]))
    total = 0.0
    with np.errstate(all="ignore"):
        for t in range(L):
            h = np.tanh(x[:, t] @ params["Wx"] + h @ params["Wh"] + params["b"])
            z = h @ params["W_out"] + params["b_out"]
            z = z - z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            total -= float(logp[np.arange(S), targets[:, t]].sum())
    return total / (S * L)


def criterion_problem(outputs, spec):
    """``(kind, message)`` when ``outputs`` fail the criterion ``spec``, else ``None``."""
    if spec["kind"] != "char_lm_validation":
        raise ValueError(f"unknown criterion {spec['kind']!r}")
    params, losses = outputs.get("params"), outputs.get("losses")
    shapes = {k: tuple(v) for k, v in spec["shapes"].items()}
    if not isinstance(params, dict) or sorted(map(str, params)) != sorted(shapes):
        return "structure", f"params must be a dict with the keys {sorted(shapes)}"
    for key, shape in shapes.items():
        value = params[key]
        if not (isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.shape == shape):
            return "structure", f"params[{key!r}] must be a float array of shape {shape}"
    steps = spec["steps"]
    if not (
        isinstance(losses, np.ndarray) and losses.dtype.kind in "fi" and losses.shape == (steps,)
    ):
        return "structure", f"losses must be an array of the {steps} training losses, one a step"
    if not all(np.all(np.isfinite(v)) for v in [losses, *params.values()]):
        return "diverged", (
            "the training diverged: the parameters or the losses contain nan or inf"
        )
    loss = char_lm_validation_loss(params, *validation_windows(spec["valid"], spec["length"]))
    if not loss <= spec["threshold"]:
        return "loss", (
            f"the trained model's validation loss is {loss:.3f} nats per character, above "
            f"the threshold {spec['threshold']:g} (the untrained model's: "
            f"{spec['untrained']:.3f}; the mean of your last 25 training losses: "
            f"{float(np.mean(losses[-25:])):.3f})"
        )
    return None


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


def sizes_of(case):
    """``N`` and ``T`` of a case, to describe where an output differs."""
    x = next((case[k] for k in ("x", "scores", "idx") if k in case), None)
    if isinstance(x, np.ndarray) and x.ndim in (2, 3) and x.dtype.kind == "i":
        return {"N": x.shape[0], "T": x.shape[1]}
    if isinstance(x, np.ndarray) and x.ndim == 3:
        return {"N": x.shape[0], "T": x.shape[1]}
    if isinstance(x, np.ndarray) and x.ndim == 2:
        return {"N": x.shape[0]}
    return {}


_DATA = None


def _data():
    global _DATA
    if _DATA is None:
        _DATA = load()
    return _DATA


def run_check(name, namespace, data=None, *, explain=False, dependencies=True):
    """Run every public case of check ``name``; return the success line or raise.

    On a failure, the functions this check calls (the forward function of a backward
    check, and graded functions your code calls) are checked too, and the message says
    which of them fails its own check: that is where to look first.
    """
    data = data if data is not None else _data()
    spec = data["checks"][name]
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        for i, case in enumerate(spec["cases"], start=1):
            try:
                outputs = run(spec["call"], namespace, case["inputs"])
                compare(
                    name,
                    outputs,
                    case["expected"],
                    case_label=f"public case {i}",
                    hint=spec["hint"],
                    mistakes=case["mistakes"],
                    explain=explain,
                    sizes=sizes_of(case["inputs"]),
                )
            except AssertionError as exc:
                notes = _failing_dependencies(name, namespace, data) if dependencies else []
                if not notes:
                    raise
                raise CheckFailed(wrap(f"{exc}\n  NOTE: {' '.join(notes)}")) from None
    return f"{name}: all {len(spec['cases'])} public cases passed"


def _failing_dependencies(name, namespace, data):
    """Notes on the graded functions that check ``name`` relies on and that fail their checks."""
    spec = data["checks"][name]
    steps = [step["function"] for step in spec["call"]["steps"]]
    own = steps[-1]
    called = set(steps[:-1])
    fn = namespace.get(own)
    code = getattr(fn, "__code__", None)
    if code is not None:
        called |= set(code.co_names) & set(data["checks"])
    notes = []
    for dep in sorted(called - {name, own}):
        if dep not in data["checks"]:
            continue
        try:
            run_check(dep, namespace, data, dependencies=False)
        except Exception:  # any failure of the dependency counts
            how = "is called by this check" if dep in steps else f"is called by your {own}"
            notes.append(
                f"your {dep} ({how}) fails its own check test_{dep}: fix it first, this "
                "failure may come from it."
            )
    return notes


def char_corpus():
    """``(chars, train_ids, valid_ids)``: the corpus of ``train_char_lm``'s public case.

    ``chars[i]`` is the character with id ``i``; the ids are ``int64`` arrays of the
    training and the validation text.
    """
    case = _data()["checks"]["train_char_lm"]["cases"][0]["inputs"]
    return case["chars"], case["data"], case["valid"]


def check(name, *, explain=False):
    """Check your ``name`` on its public cases; ``AssertionError`` with a hint on a difference.

    With ``explain=True`` a recognised mistake's message also says exactly how to fix it.
    Exceptions raised by your own code (for example ``NotImplementedError``) pass through.
    The grader runs more (hidden) cases of other sizes and values.
    """
    data = _data()
    if not isinstance(name, str) or name not in data["checks"]:
        raise ValueError(f"name must be one of {', '.join(data['checks'])}; got {name!r}")
    print(run_check(name, _caller_namespace(), data, explain=explain))


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


def gradient_errors(analytic, numeric, blocks=None):
    """A table of relative errors per parameter and, for stacked gates, per gate block.

    Args:
        analytic: ``{name: gradient}`` from your backward function.
        numeric: ``{name: gradient}`` from :func:`numerical_gradient`, same names.
        blocks: ``{name: ["i", "f", "g", "o"]}`` for arrays whose last axis holds one
            block of columns per gate: each block gets its own line, so a bug in one
            gate's gradient shows where it is.

    Returns the table as text (``print`` it): one line per parameter or block, the
    largest relative error, and ``<-- check this`` where it is above ``1e-7``.
    """
    lines = [f"{'gradient':<10} {'block':<6} relative error"]
    for name in analytic:
        a, n = np.asarray(analytic[name]), np.asarray(numeric[name])
        parts = [("", a, n)]
        labels = (blocks or {}).get(name)
        if labels and a.shape[-1] % len(labels) == 0:
            k = a.shape[-1] // len(labels)
            parts = [
                (label, a[..., i * k : (i + 1) * k], n[..., i * k : (i + 1) * k])
                for i, label in enumerate(labels)
            ]
        for label, ga, gn in parts:
            err = relative_error(ga, gn)
            flag = "  <-- check this" if err > 1e-7 else ""
            lines.append(f"{name:<10} {label:<6} {err:.2e}{flag}")
    return "\n".join(lines)


def relative_error(a, b):
    """``max |a - b| / max(|a| + |b|)`` elementwise, with a floor that avoids 0/0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)), initial=0.0))
