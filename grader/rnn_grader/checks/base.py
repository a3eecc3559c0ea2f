"""What every check is made of: the :class:`Check` record, and helpers to build one.

A check's call description (:func:`step`, :func:`forward_call`, :func:`backward_call`)
is plain data for the driver (``selfcheck.run``); its reference is computed by
:mod:`torch` in float64 (:func:`forward_reference`, and :func:`backward_reference` by
autograd); a known mistake is keyed by its hint and its fix (:func:`explain`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rnn_grader.checks import reference as ref
from rnn_grader.student import selfcheck

Case = dict[str, Any]
Variants = dict[str, dict[str, Any]]  # a known mistake's outputs, keyed by its hint and fix
N_PUBLIC, N_HIDDEN = 2, 5


def explain(hint: str, fix: str) -> str:
    """A mistake's key: the conceptual hint, then the exact fix (shown only on request)."""
    return hint + selfcheck.FIX_MARK + fix


def wrong_error(message: str, expected: dict[str, Any]) -> str:
    """Why a raised ``ValueError`` is not the one a check requires ("" when it is).

    The error must be raised on purpose: NumPy's own broadcasting error does not count,
    and when ``expected["names"]`` lists phrases (``["layer 3", "layers[2]"]``), the
    message must contain one of them.
    """
    if "broadcast" in message.lower():
        return "the ValueError is NumPy's broadcasting error, not a check of the sizes"
    names = expected.get("names") or []
    if names and not any(
        re.search(rf"(?<![\w\[]){re.escape(n)}(?!\d)", message, re.I) for n in names
    ):
        return "the ValueError's message must name the layer (layer 3, or layers[2])"
    return ""


def explained(table: dict[str, str]) -> Callable[[Callable[[Case], Variants]], Callable]:
    """Key a mistakes function's outputs by hint and fix, looked up in ``table``.

    The function returns ``{short name: outputs}``; trailing spaces after a short name keep
    two variants of one mistake apart and survive the lookup.
    """

    def decorate(fn: Callable[[Case], Variants]) -> Callable[[Case], Variants]:
        def wrapper(case: Case) -> Variants:
            out = {}
            for key, outputs in fn(case).items():
                core = key.rstrip(" ")
                out[table.get(core, core) + key[len(core) :]] = outputs
            return out

        wrapper.__name__ = fn.__name__
        wrapper.__doc__ = fn.__doc__
        return wrapper

    return decorate


@dataclass(frozen=True)
class Check:
    """Everything the grader and the public self-check need to know about one graded function.

    * ``call``: plain data saying which of the student's functions to call, with which
      inputs, and which returned values are graded (interpreted by ``selfcheck.run``);
    * ``make``: the input generator, public or hidden (``make(rng, hidden, index)``);
    * ``reference``: the expected outputs, from the companion package's layers and autograd;
    * ``hint``: what to check when the outputs match no known mistake;
    * ``mistakes``: outputs of known wrong versions, so a message can name the mistake;
    * ``cost``: for a backward function, a large hidden case that only a real backward
      pass finishes within the per-check time limit;
    * ``extra_hidden``: one more hidden case of a special kind (e.g. one that must raise);
    * ``n_public``, ``n_hidden``: how many cases of each kind ``make`` draws.

    Public cases are seeded by the check's name; hidden ones by the course secret
    (:mod:`rnn_grader.secret`), so they differ from course to course.
    """

    name: str
    assignment: str
    call: dict[str, Any]  # plain data for selfcheck.run
    make: Callable[[np.random.Generator, bool, int], Case]
    reference: Callable[[Case], dict[str, Any]]
    hint: str
    mistakes: Callable[[Case], dict[str, dict[str, Any]]] = lambda case: {}
    cost: Callable[[np.random.Generator], Case] | None = None
    extra_hidden: Callable[[np.random.Generator], Case] | None = None
    n_public: int = N_PUBLIC
    n_hidden: int = N_HIDDEN

    def functions(self) -> list[str]:
        """The student functions this check calls, in order."""
        return [step["function"] for step in self.call["steps"]]

    def cases(self, *, hidden: bool, secret: bytes | None = None) -> list[Case]:
        """The public cases, or the hidden ones drawn from ``secret``."""
        if hidden:
            if not secret:
                raise ValueError("hidden cases need the course secret")
            digest = hmac.new(secret, f"{self.name}/hidden".encode(), hashlib.sha256).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:16], "big"))
        else:
            rng = np.random.default_rng(zlib.crc32(f"{self.name}/public".encode()))
        out = [self.make(rng, hidden, i) for i in range(self.n_hidden if hidden else self.n_public)]
        if hidden and self.extra_hidden is not None:
            out.append(self.extra_hidden(rng))
        if hidden and self.cost is not None:
            out.append(self.cost(rng))
        return out

    def expected(self, case: Case) -> dict[str, Any]:
        """The reference outputs on ``case`` (NumPy float64, or ``{"raised": ...}``)."""
        return self.reference(case)


# --------------------------------------------------------------------------- references


def t_(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def to_np(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    if isinstance(value, dict):
        return {k: to_np(v) for k, v in value.items()}
    return value


def forward_reference(fn: Callable[..., Any], keys: tuple[str, ...], names: tuple[str, ...]):
    def reference(case: Case) -> dict[str, Any]:
        out = fn(*(t_(case[k]) for k in keys))
        outs = out if isinstance(out, tuple) else (out,)
        return {n: to_np(o) for n, o in zip(names, outs, strict=True)}

    return reference


def backward_reference(fn: Callable[..., Any], keys: tuple[str, ...], upstream: tuple[str, ...]):
    def reference(case: Case) -> dict[str, Any]:
        grads = ref.vjp(fn, {k: t_(case[k]) for k in keys}, [t_(case[u]) for u in upstream])
        return to_np(grads)

    return reference


# --------------------------------------------------------------------------- calls


def step(function: str, args: tuple[str, ...], returns: tuple[str, ...], **kw: Any) -> dict:
    return {"function": function, "args": list(args), "returns": list(returns), **kw}


def forward_call(function: str, args: tuple[str, ...], outputs: tuple[str, ...], cache: bool):
    returns = (*outputs, "cache") if cache else outputs
    return {"steps": [step(function, args, returns)], "outputs": list(outputs)}


def backward_call(forward: dict, function: str, upstream: tuple[str, ...], outputs: tuple):
    first = forward["steps"][0]
    return {
        "steps": [first, step(function, (*upstream, "cache"), outputs)],
        "outputs": list(outputs),
    }
