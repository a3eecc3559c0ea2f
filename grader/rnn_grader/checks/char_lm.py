"""Assignment 1, ``rnn_bptt``, part 5: the character language model's checks.

The embedding lookup, the masked temporal softmax cross-entropy, the whole model's loss
and gradients, and a truncated-BPTT training loop judged by what it trains. The references
are :mod:`torch`'s own ``embedding`` and ``cross_entropy`` around the package's RNN, in
float64, with gradients from autograd; the training loop is judged by the validation loss
of the parameters it returns (:data:`rnn_grader.student.selfcheck.CRITERION_KEY`).

Shapes: ``N`` sequences, ``T`` steps, ``V`` characters, ``D`` embedding size, ``H`` hidden
units. Character ids are ``int64`` arrays, masks ``bool`` arrays.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnn_grader.checks import reference as ref
from rnn_grader.checks.base import (
    Case,
    Check,
    Variants,
    explain,
    step,
    t_,
    to_np,
)
from rnn_grader.checks.inputs import sizes
from rnn_grader.student import selfcheck

PARAMS = ("W_embed", "Wx", "Wh", "b", "W_out", "b_out")
GRADCHECK = (
    "compare your gradients with numerical_gradient on a small case (relative_error should "
    "be below 1e-7) to find the first wrong one"
)

#: The training check's model and budget. Over 20 hidden draws (seeds and windows of the
#: text; ``scripts/char_lm_margin.py``) the instructor's solution reached validation losses
#: of 1.93 to 2.01 nats per character (median 1.97): the threshold leaves a margin of 0.39.
#: Count models of the same text reach 3.06 (characters' frequencies) and 2.42 (bigrams):
#: passing takes a model that uses more than the previous character.
TRAIN = {"D": 16, "H": 64, "steps": 300, "seq_len": 25, "batch_size": 32, "lr": 2.0}
MAX_NORM = 5.0
THRESHOLD = 2.4
TRAIN_CHARS, VALID_LEN = 40_000, 50


# --------------------------------------------------------------------------- corpus


@functools.cache
def corpus() -> tuple[str, np.ndarray, np.ndarray]:
    """``(chars, train_ids, valid_ids)`` of the course's frozen corpus (chars sorted)."""
    from rnn_course.language.corpus import load_corpus, split_corpus

    text = load_corpus()
    chars = "".join(sorted(set(text)))
    lut = {c: i for i, c in enumerate(chars)}
    train, valid = split_corpus(text)
    return (
        chars,
        np.array([lut[c] for c in train], dtype=np.int64),
        np.array([lut[c] for c in valid], dtype=np.int64),
    )


# --------------------------------------------------------------------------- inputs


def _vocab(rng: np.random.Generator, hidden: bool) -> int:
    return int(rng.integers(2, 10)) if hidden else 7


def embedding_inputs(rng: np.random.Generator, hidden: bool, backward: bool) -> Case:
    N, T, D, _ = sizes(rng, hidden)
    V = _vocab(rng, hidden)
    case: Case = {
        "idx": rng.integers(0, V, size=(N, T)).astype(np.int64),
        "W": rng.normal(size=(V, D)),
    }
    if backward:
        case["dx"] = rng.normal(size=(N, T, D))
    return case


def _mask(rng: np.random.Generator, N: int, T: int, hidden: bool) -> np.ndarray:
    """Every sequence keeps a prefix of at least one step (a padded batch), in random lengths."""
    lengths = rng.integers(1, T + 1, size=N) if hidden else np.arange(N) % T + 1
    return np.arange(T)[None, :] < lengths[:, None]


def softmax_inputs(rng: np.random.Generator, hidden: bool, index: int) -> Case:
    N, T, _, _ = sizes(rng, hidden)
    V = _vocab(rng, hidden)
    scores = rng.normal(scale=2.0, size=(N, T, V))
    if index == 1:  # scores whose exp overflows: a stable softmax shifts them first
        scores[0] += 800.0
    return {
        "scores": scores,
        "targets": rng.integers(0, V, size=(N, T)).astype(np.int64),
        "mask": _mask(rng, N, T, hidden),
    }


def softmax_empty_mask(rng: np.random.Generator) -> Case:
    """A batch whose mask keeps nothing: the loss and every gradient are 0."""
    case = softmax_inputs(rng, True, 0)
    case["mask"] = np.zeros_like(case["mask"])
    return case


def lm_params(rng: np.random.Generator, V: int, D: int, H: int) -> Case:
    """A character model's parameters at the scale training starts from."""
    return {
        "W_embed": rng.normal(size=(V, D)),
        "Wx": rng.normal(scale=1 / np.sqrt(D), size=(D, H)),
        "Wh": rng.normal(scale=1 / np.sqrt(H), size=(H, H)),
        "b": rng.normal(scale=0.1, size=H),
        "W_out": rng.normal(scale=1 / np.sqrt(H), size=(H, V)),
        "b_out": rng.normal(scale=0.1, size=V),
    }


def lm_inputs(rng: np.random.Generator, hidden: bool, index: int) -> Case:
    N, T, D, H = sizes(rng, hidden)
    V = _vocab(rng, hidden)
    return {
        "params": lm_params(rng, V, D, H),
        "idx": rng.integers(0, V, size=(N, T)).astype(np.int64),
        "targets": rng.integers(0, V, size=(N, T)).astype(np.int64),
        "mask": _mask(rng, N, T, hidden),
        "h0": rng.normal(scale=0.5, size=(N, H)),
    }


def train_inputs(rng: np.random.Generator, hidden: bool, index: int) -> Case:
    """The training run's inputs; its validation text goes with the expected outputs.

    The initial parameters are given by their seed and sizes, drawn where the student's
    code runs by :func:`~rnn_grader.student.selfcheck.char_lm_init`. The public case
    trains on the first 40 000 characters of the training text from seed 0; a hidden case
    on a window and from a seed drawn from the course secret.
    """
    chars, train, valid = corpus()
    seed = int(rng.integers(2**31)) if hidden else 0
    start = int(rng.integers(0, train.size - TRAIN_CHARS)) if hidden else 0
    return {
        "params": {"seed": seed, "V": len(chars), "D": TRAIN["D"], "H": TRAIN["H"]},
        "data": train[start : start + TRAIN_CHARS].copy(),
        "steps": TRAIN["steps"],
        "seq_len": TRAIN["seq_len"],
        "batch_size": TRAIN["batch_size"],
        "lr": TRAIN["lr"],
        "max_norm": MAX_NORM,
        "valid": valid,
        "chars": chars,
    }


def cost_embedding(rng: np.random.Generator) -> Case:
    """4 096 lookups into a 2 000 x 128 table: 256 000 entries to differentiate."""
    N, T, V, D = 32, 128, 2000, 128
    return {
        "idx": rng.integers(0, V, size=(N, T)).astype(np.int64),
        "W": rng.normal(size=(V, D)),
        "dx": rng.normal(size=(N, T, D)),
    }


def cost_softmax(rng: np.random.Generator) -> Case:
    """256 positions over 4 096 classes: a million scores, one forward each by differences.

    Its gradient (8 MiB) leaves room in the grader's protocol for the other checks' outputs.
    """
    N, T, V = 4, 64, 4096
    return {
        "scores": rng.normal(scale=2.0, size=(N, T, V)),
        "targets": rng.integers(0, V, size=(N, T)).astype(np.int64),
        "mask": _mask(rng, N, T, True),
    }


def cost_lm(rng: np.random.Generator) -> Case:
    """N = 32 sequences of T = 64 characters, V = 80, D = 32 and H = 384."""
    N, T, V, D, H = 32, 64, 80, 32, 384
    return {
        "params": lm_params(rng, V, D, H),
        "idx": rng.integers(0, V, size=(N, T)).astype(np.int64),
        "targets": rng.integers(0, V, size=(N, T)).astype(np.int64),
        "mask": _mask(rng, N, T, True),
        "h0": rng.normal(scale=0.5, size=(N, H)),
    }


# --------------------------------------------------------------------------- references


def masked_cross_entropy(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``-log softmax(scores)[target]`` over the kept positions; 0 if none is kept."""
    kept = int(mask.sum())
    if kept == 0:
        return (scores * 0.0).sum()
    return F.cross_entropy(scores[mask], targets[mask], reduction="sum") / kept


def char_lm(params: dict[str, Tensor], idx: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """``scores (N, T, V)`` and states ``h (N, T, H)`` of the character model."""
    x = F.embedding(idx, params["W_embed"])
    h = ref.rnn_forward(x, h0, params["Wx"], params["Wh"], params["b"])
    return h @ params["W_out"] + params["b_out"], h


def _case_tensors(case: Case) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor, Tensor]:
    params = {k: t_(case["params"][k]).requires_grad_(True) for k in PARAMS}
    idx, targets = torch.as_tensor(case["idx"]), torch.as_tensor(case["targets"])
    return params, idx, targets, torch.as_tensor(case["mask"]), t_(case["h0"])


def _embedding_forward(case: Case) -> dict[str, Any]:
    return {"x": to_np(F.embedding(torch.as_tensor(case["idx"]), t_(case["W"])))}


def _embedding_backward(case: Case) -> dict[str, Any]:
    W = t_(case["W"]).requires_grad_(True)
    x = F.embedding(torch.as_tensor(case["idx"]), W)
    (dW,) = torch.autograd.grad(x, W, t_(case["dx"]))
    return {"dW": to_np(dW)}


def _softmax(case: Case) -> dict[str, Any]:
    scores = t_(case["scores"]).requires_grad_(True)
    mask = torch.as_tensor(case["mask"])
    loss = masked_cross_entropy(scores, torch.as_tensor(case["targets"]), mask)
    (dscores,) = torch.autograd.grad(loss, scores)
    return {"loss": float(loss.detach()), "dscores": to_np(dscores)}


def _lm(case: Case) -> dict[str, Any]:
    params, idx, targets, mask, h0 = _case_tensors(case)
    scores, h = char_lm(params, idx, h0)
    loss = masked_cross_entropy(scores, targets, mask)
    grads = torch.autograd.grad(loss, [params[k] for k in PARAMS])
    return {
        "loss": float(loss.detach()),
        "grads": {k: to_np(g) for k, g in zip(PARAMS, grads, strict=True)},
        "h_last": to_np(h[:, -1]),
    }


def _train(case: Case) -> dict[str, Any]:
    """The criterion: the validation text, the threshold and the parameters' shapes."""
    spec = case["params"]
    start = selfcheck.char_lm_init(spec["seed"], spec["V"], spec["D"], spec["H"])
    idx, targets = selfcheck.validation_windows(case["valid"], VALID_LEN)
    with torch.no_grad():
        p = {k: t_(v) for k, v in start.items()}
        h0 = torch.zeros(idx.shape[0], spec["H"], dtype=ref.F64)
        scores, _ = char_lm(p, torch.as_tensor(idx), h0)
        every = torch.ones(idx.shape, dtype=torch.bool)
        untrained = float(masked_cross_entropy(scores, torch.as_tensor(targets), every))
    return {
        selfcheck.CRITERION_KEY: {
            "kind": "char_lm_validation",
            "valid": case["valid"],
            "length": VALID_LEN,
            "threshold": THRESHOLD,
            "untrained": untrained,
            "shapes": {k: list(v.shape) for k, v in start.items()},
            "steps": int(case["steps"]),
        }
    }


# --------------------------------------------------------------------------- known mistakes


def embedding_backward_mistakes(case: Case) -> Variants:
    dW = np.zeros_like(case["W"])
    dW[case["idx"]] += case["dx"]  # buffered: a repeated row keeps one contribution
    return {
        explain(
            "rows of W that the batch uses more than once receive only one of their "
            "gradients: every lookup adds its gradient to its row",
            "accumulate with np.add.at(dW, idx, dx); dW[idx] += dx keeps one of the repeats",
        ): {"dW": dW}
    }


def softmax_mistakes(case: Case) -> Variants:
    scores = t_(case["scores"])
    targets, mask = torch.as_tensor(case["targets"]), torch.as_tensor(case["mask"])
    N, T, _ = scores.shape
    kept = int(mask.sum())
    loss = float(masked_cross_entropy(scores, targets, mask))

    def summed_over(over: Tensor, divide_by: int, *, report: float | None = None) -> dict:
        s = scores.clone().requires_grad_(True)
        total = F.cross_entropy(s[over], targets[over], reduction="sum") / divide_by
        (ds,) = torch.autograd.grad(total, s)
        return {"loss": float(total.detach()) if report is None else report, "dscores": to_np(ds)}

    if kept in (0, N * T):
        return {}
    everywhere = torch.ones_like(mask)
    out = {
        explain(
            "your loss is divided by every position of the batch: the mean runs over the "
            "positions the mask keeps",
            "divide the summed loss (and its gradient) by mask.sum()",
        ): summed_over(mask, N * T),
        explain(
            "positions the mask removes receive gradient: a removed position does not take "
            "part in the loss",
            "multiply the gradient by mask[..., None] (and divide by mask.sum())",
        ): summed_over(everywhere, kept, report=loss),
    }
    if kept != N:
        out[
            explain(
                "your loss is averaged over the sequences only: it is the mean over the kept "
                "positions",
                "divide by mask.sum(), the number of kept positions, not by N",
            )
        ] = summed_over(mask, N)
    return out


def lm_mistakes(case: Case) -> Variants:
    good = _lm(case)
    params, idx, _, _, h0 = _case_tensors(case)
    with torch.no_grad():
        _, h = char_lm({k: v.detach() for k, v in params.items()}, idx, h0)
    return {
        explain(
            "h_last is another state than the last one: it is the state after the last "
            "input, which the next chunk of text starts from",
            "return h[:, -1] from your rnn_forward's output",
        ): {**good, "h_last": to_np(h[:, 0])},
    }


# --------------------------------------------------------------------------- the checks

_EMB_F = {"steps": [step("embedding_forward", ("idx", "W"), ("x", "cache"))], "outputs": ["x"]}
_LM_ARGS = ("params", "idx", "targets", "mask", "h0")

CHECKS = [
    Check(
        "embedding_forward",
        "rnn_bptt",
        _EMB_F,
        lambda r, h, i: embedding_inputs(r, h, False),
        _embedding_forward,
        "x[n, t] is the row of W that idx[n, t] names",
    ),
    Check(
        "embedding_backward",
        "rnn_bptt",
        {
            "steps": [_EMB_F["steps"][0], step("embedding_backward", ("dx", "cache"), ("dW",))],
            "outputs": ["dW"],
        },
        lambda r, h, i: embedding_inputs(r, h, True),
        _embedding_backward,
        "each row of dW sums the gradients of every position that looked it up; " + GRADCHECK,
        embedding_backward_mistakes,
        cost=cost_embedding,
    ),
    Check(
        "softmax_cross_entropy",
        "rnn_bptt",
        {
            "steps": [
                step("softmax_cross_entropy", ("scores", "targets", "mask"), ("loss", "dscores"))
            ],
            "outputs": ["loss", "dscores"],
        },
        softmax_inputs,
        _softmax,
        "the loss is the mean of -log p(target) over the positions the mask keeps, with p "
        "the softmax of the scores; evaluate it so that no exp overflows; " + GRADCHECK,
        softmax_mistakes,
        cost=cost_softmax,
        extra_hidden=softmax_empty_mask,
    ),
    Check(
        "char_lm_loss",
        "rnn_bptt",
        {
            "steps": [step("char_lm_loss", _LM_ARGS, ("loss", "grads", "h_last"))],
            "outputs": ["loss", "grads", "h_last"],
        },
        lm_inputs,
        _lm,
        "embedding, RNN, output layer and loss in a chain: the output layer's gradients sum "
        "over every step, and the RNN receives dh from every step; " + GRADCHECK,
        lm_mistakes,
        cost=cost_lm,
    ),
    Check(
        "train_char_lm",
        "rnn_bptt",
        {
            "steps": [
                step(
                    "train_char_lm",
                    ("params", "data", "steps", "seq_len", "batch_size", "lr", "max_norm"),
                    ("params", "losses"),
                )
            ],
            "outputs": ["params", "losses"],
            "convert": {"params": "char_lm_init", "lr": "float", "max_norm": "float"},
            "time_factor": 3,
        },
        train_inputs,
        _train,
        "train with your char_lm_loss and clip_grad_norm as the contract says: the batch's "
        "streams, the state carried from chunk to chunk, clipping before every update",
        n_public=1,
        n_hidden=1,
    ),
]
