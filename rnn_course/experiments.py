r"""Running an experiment over many seeds at once, and reporting what holds across them.

The book draws no conclusion from one training run. Every experiment runs ten seeds or
more, and the chapters report a success rate with its confidence interval, or a median
with the range over seeds. This module holds what the chapters share:

* the seeds (:data:`SEEDS`) and the summaries (:func:`spread`, :func:`wilson_interval`,
  :func:`bootstrap_interval`);
* :func:`train_groups`, the training loop of :func:`rnn_course.training.train` for the
  grouped models of :mod:`rnn_course.grouped`: every group draws its own batches from its
  own seed, gets its own gradient, clipped by its own norm, and its own optimizer state;
* :func:`train_char_lm_groups`, the same for :func:`rnn_course.language.training.train_char_lm`;
* :func:`grouped_truncated_bptt`, truncated backpropagation through time for grouped models.

Adam's update is elementwise, so one Adam over the stacked parameters of ``G`` groups
performs the ``G`` updates that ``G`` separate optimizers would; :class:`GroupOptimizer`
writes it out so that every group can have its own learning rate.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnn_course.language.corpus import TBPTTBatches, random_windows
from rnn_course.tasks import IGNORE_INDEX, Batch
from rnn_course.training import batch_seed
from rnn_course.validation import expect_choice, expect_positive_int

SEEDS_VARIABLE = "RNN_COURSE_FIRST_SEED"


def _seeds() -> tuple[int, ...]:
    """Ten seeds from ``$RNN_COURSE_FIRST_SEED`` (default 0): a review with new seeds sets it."""
    first = os.environ.get(SEEDS_VARIABLE, "0").strip() or "0"
    if not first.isdigit():
        raise ValueError(f"{SEEDS_VARIABLE} must be a non-negative integer, got {first!r}")
    return tuple(range(int(first), int(first) + 10))


#: The seeds of every experiment in the book that trains or draws random weights: 0 to 9,
#: or ten others from ``$RNN_COURSE_FIRST_SEED`` (``RNN_COURSE_FIRST_SEED=100 make book``
#: rebuilds the book with seeds 100 to 109, and every claim's assertion checks it again).
SEEDS: tuple[int, ...] = _seeds()
LN2 = math.log(2.0)


# ------------------------------------------------------------------------------------------
# Summaries
# ------------------------------------------------------------------------------------------


class Spread(NamedTuple):
    """The median of a set of values and their smallest and largest value."""

    median: float
    low: float
    high: float


def spread(values: Tensor | Sequence[float]) -> Spread:
    """Median, minimum and maximum of ``values`` (the lower median for an even count)."""
    v = torch.as_tensor(values, dtype=torch.float64).flatten()
    if v.numel() == 0:
        raise ValueError("values must not be empty")
    return Spread(v.median().item(), v.min().item(), v.max().item())


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a success probability after ``successes`` of ``trials``.

    Unlike the normal approximation it stays inside [0, 1] and is informative at 0 and
    ``trials`` successes, the common case with ten seeds.
    """
    n = expect_positive_int("trials", trials)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, {n}], got {successes}")
    z = math.sqrt(2) * torch.erfinv(torch.tensor(confidence, dtype=torch.float64)).item()
    p = successes / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high


def bootstrap_interval(
    statistic: Callable[[Tensor], Tensor],
    n: int,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile bootstrap interval of ``statistic`` over ``n`` items resampled.

    ``statistic(index)`` receives a ``(resamples, n)`` int64 tensor of resampled item
    indices and returns the ``(resamples,)`` values of the statistic, so that all
    resamples are computed at once.
    """
    expect_positive_int("n", n)
    gen = torch.Generator().manual_seed(seed)
    index = torch.randint(0, n, (resamples, n), generator=gen)
    values = statistic(index).double()
    alpha = (1 - confidence) / 2
    low, high = torch.quantile(values, torch.tensor([alpha, 1 - alpha], dtype=torch.float64))
    return low.item(), high.item()


def set_remember_bias(layer: nn.Module, bias: float, layer_index: int = 0) -> None:
    r"""Set the bias of the gate that decides how much of the old memory is kept.

    That is block 1 of the stacked gates in :mod:`torch.nn`'s layout: the LSTM's forget
    gate (order i, f, g, o) and the GRU's keep gate :math:`\mathbf{z} = 1 - \mathbf{u}`
    (order r, z, n). Only the sum ``bias_ih + bias_hh`` matters for these blocks, so
    ``bias_ih`` gets the value and ``bias_hh`` zero.
    """
    H = layer.hidden_size
    with torch.no_grad():
        getattr(layer, f"bias_ih_l{layer_index}")[H : 2 * H] = bias
        getattr(layer, f"bias_hh_l{layer_index}")[H : 2 * H] = 0.0


# ------------------------------------------------------------------------------------------
# Training G models at once
# ------------------------------------------------------------------------------------------


class GroupOptimizer:
    """Adam or plain SGD over grouped parameters, with one learning rate per group.

    Every parameter has the group axis first. The update is :class:`torch.optim.Adam`'s
    (bias-corrected moments, ``eps`` added to the corrected root) or
    :class:`torch.optim.SGD`'s without momentum, elementwise, so group ``g`` is updated as
    a separate optimizer with learning rate ``lr[g]`` would update it.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        lr: Tensor,
        kind: str = "adam",
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        expect_choice("kind", kind, ("adam", "sgd"))
        self.params, self.kind, self.betas, self.eps = list(params), kind, betas, eps
        self.lr = lr
        self.steps = 0
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]

    def _per_group(self, value: Tensor, p: Tensor) -> Tensor:
        return value.view(-1, *([1] * (p.dim() - 1)))

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        for p, (m, v) in zip(self.params, self.moments, strict=True):
            if p.grad is None:
                continue
            lr = self._per_group(self.lr, p).to(p.dtype)
            if self.kind == "sgd":
                p.sub_(lr * p.grad)
                continue
            m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denom = (v.sqrt() / math.sqrt(1 - beta2**self.steps)).add_(self.eps)
            # θ ← θ − lr / (1 − β₁ᵗ) · m / (√(v / (1 − β₂ᵗ)) + ε), lr per group
            p.sub_(lr / (1 - beta1**self.steps) * m / denom)


def clip_groups_(params: Sequence[Tensor], max_norm: float | None) -> Tensor:
    """Clip each group's gradient to global norm ``max_norm``; return the norms before.

    The norm of group ``g`` is taken over slice ``g`` of every parameter's gradient, and
    the gradient is multiplied by ``min(max_norm / (norm + 1e-6), 1)``, as
    :func:`rnn_course.clip.clip_grad_norm_` does for one model. ``max_norm=None`` only
    measures.
    """
    grads = [p.grad for p in params if p.grad is not None]
    G = grads[0].shape[0]
    squares = sum(g.reshape(G, -1).pow(2).sum(dim=1) for g in grads)
    norms = squares.sqrt()  # (G,)
    if max_norm is not None:
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(G, *([1] * (g.dim() - 1))))
    return norms


def group_losses(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of every group, ``(G,)``: each the mean over its own targets.

    ``logits`` ``(G, N, C)`` or ``(G, N, T, C)`` and integer ``targets`` ``(G, N)`` or
    ``(G, N, T)`` (``-100`` ignored), as :func:`rnn_course.training.task_loss` per group.
    """
    G, C = logits.shape[0], logits.shape[-1]
    flat = F.cross_entropy(
        logits.reshape(-1, C), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    ).view(G, -1)
    counted = (targets != IGNORE_INDEX).view(G, -1)
    return flat.sum(dim=1) / counted.sum(dim=1).clamp(min=1)


def group_accuracy(logits: Tensor, targets: Tensor) -> Tensor:
    """The fraction of correct argmax predictions of every group, ``(G,)`` (-100 ignored)."""
    G = logits.shape[0]
    counted = (targets != IGNORE_INDEX).view(G, -1)
    correct = ((logits.argmax(-1) == targets).view(G, -1) & counted).sum(dim=1)
    return correct / counted.sum(dim=1).clamp(min=1)


def _pad_time(tensors: list[Tensor], value: float | int) -> list[Tensor]:
    """Right-pad batch-first tensors ``(N, T, ...)`` along T to the longest one."""
    T = max(t.shape[1] for t in tensors)
    out = []
    for t in tensors:
        if t.shape[1] < T:
            pad = t.new_full((t.shape[0], T - t.shape[1], *t.shape[2:]), value)
            t = torch.cat([t, pad], dim=1)
        out.append(t)
    return out


def stack_batches(batches: Sequence[Batch]) -> Batch:
    """One grouped batch from one batch per group, right-padded to a common length.

    Inputs are padded with 0 (the padding id of a token batch) and per-step targets with
    ``-100``; per-sequence targets ``(N,)`` are stacked as they are.
    """
    inputs = [b.inputs for b in batches]
    if any(x.shape[1:] != inputs[0].shape[1:] for x in inputs) and inputs[0].dim() >= 2:
        inputs = _pad_time(inputs, 0)
    targets = [b.targets for b in batches]
    if targets[0].dim() >= 2 and any(y.shape != targets[0].shape for y in targets):
        targets = _pad_time(targets, IGNORE_INDEX)
    return Batch(torch.stack(inputs), torch.stack(targets))


@dataclass
class GroupHistory:
    """One row per training step, one column per group."""

    loss: Tensor  # (steps, G)
    grad_norm: Tensor  # (steps, G), before clipping
    accuracy: Tensor  # (steps, G), on each step's own batch


def _learning_rates(lr: float | Sequence[float] | Tensor, groups: int) -> Tensor:
    rates = torch.as_tensor(lr, dtype=torch.float64).flatten()
    if rates.numel() == 1:
        rates = rates.expand(groups)
    if rates.numel() != groups or not bool((rates > 0).all()):
        raise ValueError(f"lr must be one positive number or {groups} of them, got {lr!r}")
    return rates.float().clone()


def train_groups(
    model: nn.Module,
    make_batch: Callable[[int, torch.device], Batch],
    seeds: Sequence[int],
    *,
    steps: int,
    lr: float | Sequence[float] | Tensor = 1e-2,
    clip_norm: float | None = 1.0,
    optimizer: str = "adam",
) -> GroupHistory:
    """Train a grouped model, group ``g`` as :func:`rnn_course.training.train` trains seed ``g``.

    At every step group ``g`` reads ``make_batch(batch_seed(seeds[g], step), device)``, the
    batch that ``train`` with ``TrainConfig(seed=seeds[g])`` would read; the loss of each
    group is its own mean cross-entropy, its gradient is clipped by its own global norm and
    its parameters take their own optimizer step. The total loss that is backpropagated is
    the sum over groups, whose gradient with respect to group ``g``'s parameters is group
    ``g``'s gradient alone.

    Args:
        model: a grouped model whose first axis is the group (:mod:`rnn_course.grouped`).
        make_batch: ``(seed, device) -> Batch`` for one group, as for ``train``.
        seeds: one seed per group.
        steps: optimizer steps.
        lr: one learning rate, or one per group.
        clip_norm: the threshold of each group's global gradient norm; ``None``: no clipping.
        optimizer: ``"adam"`` or ``"sgd"``.

    Returns:
        The :class:`GroupHistory`.
    """
    G = len(seeds)
    expect_positive_int("steps", steps)
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device
    opt = GroupOptimizer(params, _learning_rates(lr, G).to(device), optimizer)
    losses, norms, accs = [], [], []
    model.train()
    for step in range(steps):
        batch = stack_batches([make_batch(batch_seed(s, step), device) for s in seeds])
        logits = model(batch.inputs)
        loss = group_losses(logits, batch.targets)  # (G,)
        for p in params:
            p.grad = None
        loss.sum().backward()
        norms.append(clip_groups_(params, clip_norm))
        opt.step()
        losses.append(loss.detach())
        accs.append(group_accuracy(logits.detach(), batch.targets))
    return GroupHistory(torch.stack(losses), torch.stack(norms), torch.stack(accs))


@torch.no_grad()
def evaluate_groups(model: nn.Module, batch: Batch) -> Tensor:
    """The accuracy of every group on one batch that all groups share, ``(G,)``."""
    was_training = model.training
    model.eval()
    try:
        groups = next(model.parameters()).shape[0]
        inputs = batch.inputs.expand(groups, *batch.inputs.shape)
        targets = batch.targets.expand(groups, *batch.targets.shape)
        return group_accuracy(model(inputs), targets)
    finally:
        model.train(was_training)


@torch.no_grad()
def predictions(model: nn.Module, inputs: Tensor) -> Tensor:
    """The argmax prediction of every group on inputs that all groups share."""
    was_training = model.training
    model.eval()
    try:
        groups = next(model.parameters()).shape[0]
        return model(inputs.expand(groups, *inputs.shape)).argmax(-1)
    finally:
        model.train(was_training)


def grouped_truncated_bptt(
    model: Callable[[Tensor, Any], tuple[Tensor, Any]],
    x: Tensor,
    y: Tensor,
    k: int,
    optimizer: GroupOptimizer,
    state: Any = None,
) -> Tensor:
    """:func:`rnn_course.bptt.truncated_bptt` for grouped models: chunks of ``k`` steps.

    Each chunk runs ``logits, state = model(x[:, :, s:s+k], state)``, backpropagates the
    sum over groups of each group's mean cross-entropy and takes one optimizer step; the
    state goes on to the next chunk detached.

    Shape:
        - x: ``(G, N, T, D)``; y: ``(G, N, T)`` int64 (``-100`` ignored)
        - output: the loss of every chunk and group, ``(chunks, G)``
    """
    expect_positive_int("k", k)
    losses = []
    for start in range(0, x.shape[2], k):
        logits, state = model(x[:, :, start : start + k], state)
        loss = group_losses(logits, y[:, :, start : start + k])
        for p in optimizer.params:
            p.grad = None
        loss.sum().backward()
        optimizer.step()
        losses.append(loss.detach())
        state = _detach(state)
    return torch.stack(losses)


def _detach(state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


# ------------------------------------------------------------------------------------------
# Character language models
# ------------------------------------------------------------------------------------------


@dataclass
class LMGroupHistory:
    """Training bits per character ``(steps, G)``, gradient norms ``(steps, G)`` and the
    validation bits per character ``(evaluations, G)`` after the steps in ``eval_steps``."""

    bpc: Tensor
    grad_norm: Tensor
    eval_steps: list[int]
    valid_bpc: Tensor


@torch.no_grad()
def evaluate_bpc_groups(model: nn.Module, ids: Tensor, streams: int = 8) -> Tensor:
    """Bits per character of every group on ``ids``, read as in
    :func:`rnn_course.language.training.evaluate_bpc`: ``streams`` contiguous streams,
    each from a zero state. Returns ``(G,)``."""
    was_training = model.training
    model.eval()
    try:
        batches = TBPTTBatches(ids, streams, 1)
        logits, _ = model(batches.inputs)  # (G, N, S, V)
        G = logits.shape[0]
        targets = batches.targets.expand(G, *batches.targets.shape)
        return group_losses(logits, targets) / LN2
    finally:
        model.train(was_training)


def train_char_lm_groups(
    model: nn.Module,
    train_ids: Tensor,
    valid_ids: Tensor | None,
    seeds: Sequence[int],
    *,
    steps: int,
    lr: float | Sequence[float] | Tensor,
    batch_size: int = 32,
    bptt: int = 32,
    clip_norm: float | None = 1.0,
    optimizer: str = "adam",
    batches: str = "tbptt",
    eval_every: int = 0,
) -> LMGroupHistory:
    """Train a :class:`~rnn_course.grouped.GroupedCharLM` as
    :func:`rnn_course.language.training.train_char_lm` trains each of its groups.

    With ``batches="tbptt"`` every group reads the same stateful streams (the data do not
    depend on the seed; the initial weights do) and carries its own state; with
    ``"windows"`` group ``g`` reads the random windows of seed ``seeds[g]``. Each group has
    its own learning rate (``lr``: one, or one per group), gradient clipping and optimizer
    state. Validation bits per character are measured every ``eval_every`` steps and after
    the last.
    """
    expect_choice("batches", batches, ("tbptt", "windows"))
    G = len(seeds)
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device
    opt = GroupOptimizer(params, _learning_rates(lr, G).to(device), optimizer)
    train_ids = train_ids.to(device)
    stream = TBPTTBatches(train_ids, batch_size, bptt) if batches == "tbptt" else None
    bpc, norms, valid, eval_steps = [], [], [], []
    state = None
    model.train()
    for step in range(steps):
        if stream is not None:
            inputs, targets, restart = stream.for_step(step)
            inputs, targets = inputs.expand(G, *inputs.shape), targets.expand(G, *targets.shape)
            state = None if restart else _detach(state)
        else:
            pairs = [
                random_windows(train_ids, batch_size, bptt, 1_000_003 * s + step) for s in seeds
            ]
            inputs = torch.stack([p[0] for p in pairs])
            targets = torch.stack([p[1] for p in pairs])
            state = None
        logits, state = model(inputs, state)  # (G, N, k, V)
        loss = group_losses(logits, targets)
        for p in params:
            p.grad = None
        loss.sum().backward()
        norms.append(clip_groups_(params, clip_norm))
        opt.step()
        bpc.append(loss.detach() / LN2)
        last = step == steps - 1
        due = eval_every and (step + 1) % eval_every == 0
        if valid_ids is not None and (last or due):
            eval_steps.append(step + 1)
            valid.append(evaluate_bpc_groups(model, valid_ids))
    empty = torch.empty(0, G)
    return LMGroupHistory(
        torch.stack(bpc), torch.stack(norms), eval_steps, torch.stack(valid) if valid else empty
    )
