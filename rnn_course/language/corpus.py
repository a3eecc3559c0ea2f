"""The book's own prose as a frozen character corpus, its vocabulary and TBPTT batches.

The corpus is the English text of the book's pages with code cells, math, MyST directives
and roles, tables and markup removed, one paragraph per line. It is *frozen*: the file
``rnn_course/language/data/book_corpus.txt`` is written by the repository's script
``scripts/freeze_corpus.py`` (which parses the pages with markdown-it-py, as MyST does)
and versioned with the package, so that results do not drift when a page changes. Loading
never touches the book. Every tenth paragraph is validation text, the rest training text.
``python -m rnn_course.language.corpus`` prints the sizes of the corpus and its split.

Truncated backpropagation through time (:class:`TBPTTBatches`) cuts the training text into
``N`` contiguous streams, one per batch row, and walks along them ``k`` characters at a
time: row ``n`` of batch ``b + 1`` continues row ``n`` of batch ``b``, so a model can carry
its state from one batch to the next and cut only the graph.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnn_course.validation import expect_positive_int

DATA_DIR = Path(__file__).resolve().parent / "data"
CORPUS_PATH = DATA_DIR / "book_corpus.txt"
VALID_EVERY = 10  # paragraph i is validation text when i % VALID_EVERY == VALID_EVERY - 1


def load_corpus(path: Path = CORPUS_PATH) -> str:
    """The frozen corpus text."""
    return path.read_text(encoding="ascii")


def split_corpus(text: str, valid_every: int = VALID_EVERY) -> tuple[str, str]:
    """Training and validation text: every ``valid_every``-th paragraph (line) is validation."""
    expect_positive_int("valid_every", valid_every)
    if valid_every < 2:
        raise ValueError(f"valid_every must be at least 2, got {valid_every}")
    lines = text.splitlines()
    train = [ln for i, ln in enumerate(lines) if i % valid_every != valid_every - 1]
    valid = [ln for i, ln in enumerate(lines) if i % valid_every == valid_every - 1]
    return "\n".join(train) + "\n", "\n".join(valid) + "\n"


@dataclass(frozen=True)
class Vocabulary:
    """The characters of a text, sorted; ids are positions in ``chars``."""

    chars: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        """``(len(text),)`` int64 ids; raises ``KeyError`` on a character outside the vocabulary."""
        index = {c: i for i, c in enumerate(self.chars)}
        return torch.tensor([index[c] for c in text], dtype=torch.int64)

    def decode(self, ids: Tensor | Iterable[int]) -> str:
        values = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        return "".join(self.chars[i] for i in values)


class TBPTTBatches:
    """Stateful batches for truncated BPTT over one long id sequence.

    The first ``N·S + 1`` ids, ``S = (len(ids) - 1) // N``, are cut into ``N`` streams of
    ``S`` inputs; the target of each input is the id after it. Batch ``b`` holds steps
    ``b·k … b·k + k - 1`` of every stream, so row ``n`` of batch ``b + 1`` continues row
    ``n`` of batch ``b``. ``len()`` is the number of whole batches, ``S // k``.

    Args:
        ids: ``(L,)`` int64.
        batch_size: N streams.
        bptt: k, steps per batch (the truncation length).

    Shape:
        - ``batches[b]``: inputs ``(N, k)`` and targets ``(N, k)``, int64
    """

    def __init__(self, ids: Tensor, batch_size: int, bptt: int) -> None:
        N = expect_positive_int("batch_size", batch_size)
        k = expect_positive_int("bptt", bptt)
        S = (ids.numel() - 1) // N
        if k > S:
            raise ValueError(
                f"{ids.numel()} ids make streams of {S} steps, fewer than bptt={k}; "
                "use fewer streams or a shorter truncation"
            )
        self.batch_size, self.bptt, self.stream_len = N, k, S
        self.inputs = ids[: N * S].view(N, S)  # (N, S)
        self.targets = ids[1 : N * S + 1].view(N, S)  # (N, S)

    def __len__(self) -> int:
        return self.stream_len // self.bptt

    def __getitem__(self, b: int) -> tuple[Tensor, Tensor]:
        if not 0 <= b < len(self):
            raise IndexError(f"batch index {b} out of range for {len(self)} batches")
        cols = slice(b * self.bptt, (b + 1) * self.bptt)
        return self.inputs[:, cols], self.targets[:, cols]

    def for_step(self, step: int) -> tuple[Tensor, Tensor, bool]:
        """The batch of training step ``step`` (epochs wrap) and whether the state restarts."""
        b = step % len(self)
        inputs, targets = self[b]
        return inputs, targets, b == 0


def random_windows(ids: Tensor, batch_size: int, length: int, seed: int) -> tuple[Tensor, Tensor]:
    """``batch_size`` windows of ``length`` inputs at random offsets, and their next ids.

    Shape:
        - output: inputs ``(N, length)`` and targets ``(N, length)``, int64
    """
    N = expect_positive_int("batch_size", batch_size)
    T = expect_positive_int("length", length)
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - T, (N, 1), generator=gen)
    index = starts + torch.arange(T + 1)  # (N, T + 1)
    windows = ids[index]
    return windows[:, :-1], windows[:, 1:]


def main() -> None:
    """``python -m rnn_course.language.corpus``: the sizes of the frozen corpus and its split."""
    text = load_corpus()
    train, valid = split_corpus(text)
    vocab = Vocabulary.from_text(text)
    print(f"{len(text)} characters, vocabulary {len(vocab)}; ", end="")
    print(f"train {len(train)}, validation {len(valid)}")


if __name__ == "__main__":
    main()
