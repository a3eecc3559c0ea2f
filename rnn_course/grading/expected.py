"""Expected outputs of every check, from :mod:`rnn_course.reference` in float64.

Besides the correct outputs, the returned dict carries under ``"__variants__"`` the outputs
of classic wrong versions (:mod:`rnn_course.grading.variants`), keyed by a hint; the
comparison uses them to name a mistake. Both stay on the trusted side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rnn_course import reference as ref
from rnn_course.grading import variants
from rnn_course.grading.cases import NAMES

VARIANTS_KEY = "__variants__"


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _args(case: dict[str, Any], *keys: str) -> list[torch.Tensor]:
    return [_t(case[k]) for k in keys]


def _np(outputs: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.detach().numpy() if isinstance(v, torch.Tensor) else v) for k, v in outputs.items()
    }


def _correct(name: str, case: dict[str, Any]) -> dict[str, Any]:
    rnn = ("x", "h0", "Wx", "Wh", "b")
    step = ("x", "h_prev", "Wx", "Wh", "b")
    if name == "rnn_step_forward":
        return {"h_next": ref.rnn_step_forward(*_args(case, *step))}
    if name == "rnn_step_backward":
        return ref.rnn_step_backward_reference(*_args(case, "dh_next", *step))
    if name == "rnn_forward":
        return {"h": ref.rnn_forward(*_args(case, *rnn))}
    if name == "rnn_backward":
        return ref.rnn_backward_reference(*_args(case, "dh", *rnn))
    if name == "grad_norms_through_time":
        return {"norms": ref.grad_norms_through_time_reference(*_args(case, "dh_last", *rnn))}
    if name == "clip_grad_norm":
        clipped, total = ref.clip_grad_norm(
            {k: _t(v) for k, v in case["grads"].items()}, float(case["max_norm"])
        )
        return {"clipped": _np(clipped), "total_norm": total}
    if name == "sigmoid":
        return {"y": ref.sigmoid(_t(case["x"]))}
    if name == "lstm_step_forward":
        h, c = ref.lstm_step_forward(*_args(case, "x", "h_prev", "c_prev", "Wx", "Wh", "b"))
        return {"h_next": h, "c_next": c}
    if name == "lstm_step_backward":
        keys = ("dh_next", "dc_next", "x", "h_prev", "c_prev", "Wx", "Wh", "b")
        return ref.lstm_step_backward_reference(*_args(case, *keys))
    if name == "lstm_forward":
        return {"h": ref.lstm_forward(*_args(case, *rnn))}
    if name == "lstm_backward":
        return ref.lstm_backward_reference(*_args(case, "dh", *rnn))
    if name == "gru_step_forward":
        return {"h_next": ref.gru_step_forward(*_args(case, *step))}
    if name == "gru_step_backward":
        return ref.gru_step_backward_reference(*_args(case, "dh_next", *step))
    if name == "birnn_forward":
        pf, pb = ([_t(p) for p in case[k]] for k in ("params_fwd", "params_bwd"))
        return {"h": ref.birnn_forward(*_args(case, "x", "h0_fwd", "h0_bwd"), pf, pb)}
    if name == "stacked_rnn_forward":
        layers = [[_t(p) for p in ps] for ps in case["layers"]]
        try:
            h = ref.stacked_rnn_forward(
                _t(case["x"]), [_t(h) for h in case["h0s"]], layers, residual=bool(case["residual"])
            )
        except ValueError:
            return {"raised": "ValueError"}
        return {"h": h}
    if name == "highway_forward":
        return {"y": ref.highway_forward(*_args(case, "x", "W_h", "b_h", "W_t", "b_t"))}
    raise ValueError(f"name must be one of {', '.join(NAMES)}; got {name!r}")


def expected(name: str, case: dict[str, Any]) -> dict[str, Any]:
    """Correct outputs of check ``name`` on ``case`` (float64), plus known wrong variants."""
    out = _np(_correct(name, case))
    out[VARIANTS_KEY] = variants.variants(name, case)
    return out
