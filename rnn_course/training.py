"""A small, deterministic training loop for the book's experiments."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from rnn_course.clip import clip_grad_norm_, grad_norm
from rnn_course.tasks import IGNORE_INDEX, Batch
from rnn_course.validation import expect_choice, expect_positive_int

# a training batch for step s has seed SEED_STRIDE * config.seed + s; evaluation batches
# count down from EVAL_OFFSET so that they never coincide with a training batch
SEED_STRIDE = 1_000_003
EVAL_OFFSET = 1_000_000


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :func:`train`."""

    steps: int = 300  # optimizer steps, each on a fresh batch
    lr: float = 1e-2  # larger than Adam's 1e-3: the models and tasks are small
    batch_size: int = 32  # read by make_batch closures; train does not resize batches
    clip_norm: float | None = 1.0  # threshold of the global gradient norm; None: no clipping
    optimizer: str = "adam"  # "adam" or "sgd" (plain, no momentum)
    seed: int = 0  # seeds torch and derives every batch's seed
    log_every: int = 10  # steps between progress-bar updates
    progress: bool = False  # show a tqdm bar on stderr

    def __post_init__(self) -> None:
        expect_positive_int("steps", self.steps)
        expect_positive_int("batch_size", self.batch_size)
        expect_positive_int("log_every", self.log_every)
        if not (isinstance(self.lr, int | float) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.clip_norm is not None and not (
            isinstance(self.clip_norm, int | float) and self.clip_norm > 0
        ):
            raise ValueError(f"clip_norm must be None or a positive number, got {self.clip_norm!r}")
        expect_choice("optimizer", self.optimizer, OPTIMIZERS)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")


@dataclass
class History:
    """What happened during :func:`train`, one entry per step."""

    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)  # global 2-norm before clipping
    accuracy: list[float] = field(default_factory=list)  # on the step's batch; nan if regression
    final_accuracy: float = math.nan  # on a fresh batch after training; nan if regression


def batch_seed(seed: int, step: int) -> int:
    """The seed of the batch of training step ``step`` (``step < 0``: evaluation batches)."""
    return SEED_STRIDE * seed + (step if step >= 0 else EVAL_OFFSET - step)


def task_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy for integer targets (per sequence or per step, -100 ignored), else MSE.

    Args:
        logits: ``(N, C)`` or ``(N, T, C)``; for a regression the targets' shape.
        targets: ``(N,)`` or ``(N, T)`` int64 class indices, or float regression targets.
    """
    if targets.is_floating_point():
        return F.mse_loss(logits, targets)
    C = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, C), targets.reshape(-1), ignore_index=IGNORE_INDEX)


def _accuracy_from_logits(logits: Tensor, targets: Tensor) -> float:
    if targets.is_floating_point():
        return math.nan
    mask = targets != IGNORE_INDEX
    correct = (logits.argmax(-1) == targets) & mask
    return (correct.sum() / mask.sum().clamp(min=1)).item()


@torch.no_grad()
def accuracy(model: nn.Module, batch: Batch) -> float:
    """The fraction of correct argmax predictions (targets -100 excluded), in eval mode.

    Args:
        model: maps ``inputs (N, T, D)`` to logits ``(N, C)`` or ``(N, T, C)``.
        batch: integer targets ``(N,)`` or ``(N, T)``.
    """
    if batch.targets.is_floating_point():
        raise ValueError(f"accuracy needs integer class targets, got dtype {batch.targets.dtype}")
    was_training = model.training
    model.eval()
    try:
        return _accuracy_from_logits(model(batch.inputs), batch.targets)
    finally:
        model.train(was_training)


OPTIMIZERS = ("adam", "sgd")


def make_optimizer(model: nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    """The optimizer of the book's experiments over all of ``model``'s parameters.

    Args:
        model: whose parameters are optimized.
        name: ``"adam"`` (:class:`torch.optim.Adam`) or ``"sgd"`` (plain
            :class:`torch.optim.SGD`, no momentum).
        lr: the step size.
    """
    expect_choice("optimizer", name, OPTIMIZERS)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    return torch.optim.SGD(model.parameters(), lr=lr)


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    loss: Tensor,
    params: list[Tensor],
    clip_norm: float | None,
) -> Tensor:
    """One update: backpropagate ``loss``, clip the global gradient norm, step.

    Returns the gradient norm *before* clipping (a 0-dim tensor, no host sync), measured
    even when ``clip_norm`` is ``None``.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = grad_norm(params) if clip_norm is None else clip_grad_norm_(params, clip_norm)
    optimizer.step()
    return norm


def train(
    model: nn.Module,
    make_batch: Callable[[int, torch.device], Batch],
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None,
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
) -> History:
    """Train ``model`` for ``config.steps`` steps, each on a fresh batch, and record it.

    Every step draws ``make_batch(batch_seed(config.seed, step), device)``, computes
    ``loss_fn(model(inputs), targets)``, backpropagates, records the global gradient norm,
    clips it to ``config.clip_norm`` with :func:`rnn_course.clip.clip_grad_norm_` (if set)
    and takes an optimizer step. ``torch.manual_seed(config.seed)`` is called first, so a
    run is reproducible given the model's initial weights.

    Args:
        model: maps ``inputs`` to predictions; moved to ``device`` if one is given.
        make_batch: ``(seed, device) -> Batch``; use a closure to fix the task's sizes.
        loss_fn: ``(predictions, targets) -> scalar``; ``None`` for :func:`task_loss`.
        config: the hyperparameters.
        device: where to train; default the device of the model's parameters.

    Returns:
        The :class:`History`; ``final_accuracy`` is measured on a fresh batch.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not callable(make_batch):
        raise TypeError(f"make_batch must be callable, got {type(make_batch).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    model.to(device)
    loss_fn = task_loss if loss_fn is None else loss_fn
    torch.manual_seed(config.seed)
    optimizer = make_optimizer(model, config.optimizer, config.lr)
    params = [p for p in model.parameters() if p.requires_grad]
    history = History()
    model.train()
    bar = tqdm(range(config.steps), disable=not config.progress, file=sys.stderr, leave=False)
    for step in bar:
        batch = make_batch(batch_seed(config.seed, step), device)
        predictions = model(batch.inputs)
        loss = loss_fn(predictions, batch.targets)
        norm = optimizer_step(optimizer, loss, params, config.clip_norm)
        history.loss.append(loss.item())
        history.grad_norm.append(norm.item())
        history.accuracy.append(_accuracy_from_logits(predictions.detach(), batch.targets))
        if config.progress and (step + 1) % config.log_every == 0:
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}", acc=f"{history.accuracy[-1]:.3f}")
    bar.close()
    final = make_batch(batch_seed(config.seed, -1), device)
    if not final.targets.is_floating_point():
        history.final_accuracy = accuracy(model, final)
    return history
