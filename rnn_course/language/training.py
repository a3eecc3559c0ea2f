"""Training and evaluating character language models with truncated BPTT."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnn_course.language.corpus import TBPTTBatches, random_windows
from rnn_course.state import detach_state
from rnn_course.training import OPTIMIZERS, batch_seed, make_optimizer, optimizer_step
from rnn_course.validation import expect_choice, expect_positive_int

LN2 = math.log(2.0)


@dataclass(frozen=True)
class LMConfig:
    """Hyperparameters of :func:`train_char_lm`."""

    steps: int = 200  # optimizer steps
    batch_size: int = 32  # N streams (or windows) per batch
    bptt: int = 32  # k, the truncation length: characters per stream per step
    lr: float = 1e-2  # step size
    optimizer: str = "adam"  # "adam" or "sgd" (plain, no momentum)
    clip_norm: float | None = 1.0  # global gradient-norm threshold; None: no clipping
    seed: int = 0  # seeds torch (initial weights are the caller's) and the windows
    batches: str = "tbptt"  # "tbptt": stateful streams; "windows": random, state from zero
    eval_every: int = 0  # steps between validation measurements; 0: at the end only

    def __post_init__(self) -> None:
        expect_positive_int("steps", self.steps)
        expect_positive_int("batch_size", self.batch_size)
        expect_positive_int("bptt", self.bptt)
        expect_choice("batches", self.batches, ("tbptt", "windows"))
        expect_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be None or positive, got {self.clip_norm!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")


@dataclass
class LMHistory:
    """One entry per step (training loss in bits per character, gradient norm before clipping)
    and the validation bits per character at the steps in ``eval_steps``."""

    bpc: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    valid_bpc: list[float] = field(default_factory=list)


@torch.no_grad()
def evaluate_bpc(model: nn.Module, ids: Tensor, streams: int = 8) -> float:
    """Bits per character of ``model`` on ``ids``, read as ``streams`` contiguous streams.

    Each stream is read in one call from a zero state, so every character but the first of
    a stream is predicted from all of the stream before it.
    """
    was_training = model.training
    model.eval()
    try:
        batches = TBPTTBatches(ids, streams, 1)
        logits, _ = model(batches.inputs)  # (N, S, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batches.targets.reshape(-1))
        return loss.item() / LN2
    finally:
        model.train(was_training)


def train_char_lm(
    model: nn.Module, train_ids: Tensor, valid_ids: Tensor | None, config: LMConfig
) -> LMHistory:
    """Train a :class:`~rnn_course.language.models.CharLM` with truncated BPTT.

    With ``batches="tbptt"`` step ``s`` reads batch ``s mod len`` of
    :class:`~rnn_course.language.corpus.TBPTTBatches` and starts from the previous step's
    final state, detached (zeros at the start of every epoch); with ``"windows"`` it reads
    random windows of ``bptt`` characters from a zero state. The gradient's global norm is
    clipped to ``clip_norm`` (if set) by :func:`rnn_course.clip.clip_grad_norm_`.

    Returns:
        The :class:`LMHistory`; validation is measured every ``eval_every`` steps and after
        the last step, if ``valid_ids`` is given.
    """
    torch.manual_seed(config.seed)
    optimizer = make_optimizer(model, config.optimizer, config.lr)
    params = [p for p in model.parameters() if p.requires_grad]
    stream = (
        TBPTTBatches(train_ids, config.batch_size, config.bptt)
        if config.batches == "tbptt"
        else None
    )
    history = LMHistory()
    state = None
    model.train()
    for step in range(config.steps):
        if stream is not None:
            inputs, targets, restart = stream.for_step(step)
            state = None if restart else detach_state(state)
        else:
            seed = batch_seed(config.seed, step)
            inputs, targets = random_windows(train_ids, config.batch_size, config.bptt, seed)
            state = None
        logits, state = model(inputs, state)  # (N, k, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        norm = optimizer_step(optimizer, loss, params, config.clip_norm)
        history.bpc.append(loss.item() / LN2)
        history.grad_norm.append(norm.item())
        last = step == config.steps - 1
        due = config.eval_every and (step + 1) % config.eval_every == 0
        if valid_ids is not None and (last or due):
            history.eval_steps.append(step + 1)
            history.valid_bpc.append(evaluate_bpc(model, valid_ids))
    return history
