"""Call the student's functions on one case and collect the outputs to grade.

This file is self-contained on purpose: it imports only NumPy and the standard library,
because it is also copied into an isolated process where neither torch nor the course
package exists. ``run(name, namespace, case)`` finds the student's functions in
``namespace``, calls them on fresh copies of the case's inputs and returns the named
outputs (``{"h": array}``, ``{"dx": ..., "dWx": ...}``). A return value with the wrong
structure (``None``, not a tuple, a tuple of the wrong length) is reported as
``{"__error__": message}``; exceptions raised by the student's code propagate.
"""

import numpy as np

ERROR_KEY = "__error__"

RNN_STEP = ("x", "h_prev", "Wx", "Wh", "b")
RNN_SEQ = ("x", "h0", "Wx", "Wh", "b")
LSTM_STEP = ("x", "h_prev", "c_prev", "Wx", "Wh", "b")
GRADS = ("dx", "dh_prev", "dWx", "dWh", "db")
SEQ_GRADS = ("dx", "dh0", "dWx", "dWh", "db")

#: Forward checks: (function, argument keys, outputs, whether a cache follows the outputs).
FORWARD = {
    "rnn_step_forward": ("rnn_step_forward", RNN_STEP, ("h_next",), True),
    "rnn_forward": ("rnn_forward", RNN_SEQ, ("h",), True),
    "sigmoid": ("sigmoid", ("x",), ("y",), False),
    "lstm_step_forward": ("lstm_step_forward", LSTM_STEP, ("h_next", "c_next"), True),
    "lstm_forward": ("lstm_forward", RNN_SEQ, ("h",), True),
    "gru_step_forward": ("gru_step_forward", RNN_STEP, ("h_next",), True),
    "birnn_forward": (
        "birnn_forward",
        ("x", "h0_fwd", "h0_bwd", "params_fwd", "params_bwd"),
        ("h",),
        False,
    ),
    "highway_forward": ("highway_forward", ("x", "W_h", "b_h", "W_t", "b_t"), ("y",), False),
}
#: Backward checks: (forward check, backward function, upstream keys, outputs).
BACKWARD = {
    "rnn_step_backward": ("rnn_step_forward", "rnn_step_backward", ("dh_next",), GRADS),
    "rnn_backward": ("rnn_forward", "rnn_backward", ("dh",), SEQ_GRADS),
    "grad_norms_through_time": ("rnn_forward", "grad_norms_through_time", ("dh_last",), ("norms",)),
    "lstm_step_backward": (
        "lstm_step_forward",
        "lstm_step_backward",
        ("dh_next", "dc_next"),
        ("dx", "dh_prev", "dc_prev", "dWx", "dWh", "db"),
    ),
    "lstm_backward": ("lstm_forward", "lstm_backward", ("dh",), SEQ_GRADS),
    "gru_step_backward": ("gru_step_forward", "gru_step_backward", ("dh_next",), GRADS),
}

#: The student functions each check calls directly.
DEPENDENCIES = {name: [spec[0]] for name, spec in FORWARD.items()}
DEPENDENCIES.update({name: [FORWARD[s[0]][0], s[1]] for name, s in BACKWARD.items()})
DEPENDENCIES["clip_grad_norm"] = ["clip_grad_norm"]
DEPENDENCIES["stacked_rnn_forward"] = ["stacked_rnn_forward"]


class StructureError(Exception):
    """A student function returned something other than the contract's tuple."""


def fresh(value):
    """A deep copy of plain case data (arrays, dicts, lists, numbers)."""
    if isinstance(value, np.ndarray):
        return np.array(value, dtype=value.dtype, copy=True)
    if isinstance(value, dict):
        return {k: fresh(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [fresh(v) for v in value]
    return value


def arg(case, key):
    """A fresh copy of input ``key``; parameter triples ``(Wx, Wh, b)`` become tuples."""
    value = fresh(case[key])
    if key in ("params_fwd", "params_bwd"):
        return tuple(value)
    if key == "layers":
        return [tuple(p) for p in value]
    return value


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


def unpack(fname, result, outputs, cache):
    """Split ``result`` into named outputs (and the cache); raise ``StructureError``."""
    names = list(outputs) + (["cache"] if cache else [])
    if len(names) == 1:
        if result is None or isinstance(result, tuple):
            raise StructureError(f"{fname} must return {names[0]}, got {describe(result)}")
        return {names[0]: result}, None
    if not isinstance(result, tuple) or len(result) != len(names):
        raise StructureError(
            f"{fname} must return a tuple ({', '.join(names)}), got {describe(result)}"
        )
    named = dict(zip(names, result, strict=True))
    return {k: named[k] for k in outputs}, named.get("cache")


def call(namespace, fname, case, keys, outputs, cache):
    result = function(namespace, fname)(*(arg(case, k) for k in keys))
    return unpack(fname, result, outputs, cache)


def run_forward(name, namespace, case):
    fname, keys, outputs, cache = FORWARD[name]
    if name != "sigmoid":
        return call(namespace, fname, case, keys, outputs, cache)[0]
    try:
        with np.errstate(over="raise", invalid="raise"):
            return call(namespace, fname, case, keys, outputs, cache)[0]
    except FloatingPointError as exc:
        return {
            ERROR_KEY: (
                f"sigmoid raised FloatingPointError ({exc}) on inputs with |x| up to 1000. "
                "HINT: np.exp(-x) overflows for large negative x; compute exp(-|x|) and "
                "treat x >= 0 and x < 0 separately (or use np.tanh: σ(x) = (1 + tanh(x/2)) / 2)"
            )
        }


def run_backward(name, namespace, case):
    forward, fname, upstream, outputs = BACKWARD[name]
    ffn, keys, fout, _ = FORWARD[forward]
    try:
        _, cache = call(namespace, ffn, case, keys, fout, True)
    except StructureError as exc:
        return {ERROR_KEY: f"{exc}, so {fname} could not be checked"}
    result = function(namespace, fname)(*(arg(case, k) for k in upstream), cache)
    return unpack(fname, result, outputs, False)[0]


def run_clip(namespace, case):
    result = function(namespace, "clip_grad_norm")(arg(case, "grads"), float(case["max_norm"]))
    out, _ = unpack("clip_grad_norm", result, ("clipped", "total_norm"), False)
    return out


def run_stacked(namespace, case):
    fn = function(namespace, "stacked_rnn_forward")
    try:
        h = fn(
            arg(case, "x"), arg(case, "h0s"), arg(case, "layers"), residual=bool(case["residual"])
        )
    except ValueError as exc:
        return {"raised": f"ValueError: {exc}"}
    return unpack("stacked_rnn_forward", h, ("h",), False)[0]


def run(name, namespace, case):
    """Outputs of the student's implementation of check ``name`` on ``case``."""
    try:
        if name in FORWARD:
            return run_forward(name, namespace, case)
        if name in BACKWARD:
            return run_backward(name, namespace, case)
        if name == "clip_grad_norm":
            return run_clip(namespace, case)
        if name == "stacked_rnn_forward":
            return run_stacked(namespace, case)
    except StructureError as exc:
        return {ERROR_KEY: str(exc)}
    raise ValueError(f"unknown check {name!r}; known: {', '.join(sorted(DEPENDENCIES))}")
