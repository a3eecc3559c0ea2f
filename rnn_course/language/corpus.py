"""The book's own prose as a frozen character corpus, its vocabulary and TBPTT batches.

The corpus is the English text of the book's pages with code cells, math, MyST directives
and roles, tables and markup removed, one paragraph per line. It is *frozen*: the file
``rnn_course/language/data/book_corpus.txt`` is written once by

.. code-block:: console

    python -m rnn_course.language.corpus freeze          # reads book/*.md, writes the file

and versioned with the package, so that results do not drift when a page changes. Loading
never touches the book. Every tenth paragraph is validation text, the rest training text.

Truncated backpropagation through time (:class:`TBPTTBatches`) cuts the training text into
``N`` contiguous streams, one per batch row, and walks along them ``k`` characters at a
time: row ``n`` of batch ``b + 1`` continues row ``n`` of batch ``b``, so a model can carry
its state from one batch to the next and cut only the graph.
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnn_course.validation import expect_positive_int

DATA_DIR = Path(__file__).resolve().parent / "data"
CORPUS_PATH = DATA_DIR / "book_corpus.txt"
# pages without running prose (API listing, bibliography) and this corpus's own chapter
EXCLUDED_PAGES = ("api.md", "bibliography.md", "11_language.md")
VALID_EVERY = 10  # paragraph i is validation text when i % VALID_EVERY == VALID_EVERY - 1
# directives whose body is prose; every other directive (code cells, includes, math,
# figures) is dropped with its body
PROSE_DIRECTIVES = frozenset(
    {
        "admonition",
        "attention",
        "caution",
        "exercise",
        "hint",
        "important",
        "note",
        "seealso",
        "solution",
        "tip",
        "warning",
    }
)
# characters that may remain; everything else is mapped (below) or dropped
ALLOWED = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'\"()-/%+\n"
)
REPLACEMENTS = {
    "—": " - ",
    "–": "-",
    "’": "'",
    "‘": "'",
    "“": '"',
    "”": '"',
    "…": "...",
    "×": "x",
    "≈": "about",
    "→": "to",
    "≤": "at most",
    "≥": "at least",
}

_FENCE = re.compile(r"^\s*(`{3,}|:{3,})\s*(\{([\w:-]+)\})?(.*)$")
_DISPLAY_MATH = re.compile(r"\$\$.*?\$\$(\s*\([\w:.-]+\))?", re.DOTALL)
_INLINE_MATH = re.compile(r"\$[^$\n]+\$")
_ROLE = re.compile(r"\{[\w:-]+\}`[^`]*`")
_INLINE_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_LATEX_ENV = re.compile(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.DOTALL)
_HTML = re.compile(r"<!--.*?-->|<[^>\n]+>", re.DOTALL)


def _prose_lines(markdown: str) -> list[str]:
    """The lines of a MyST page outside code, non-prose directives and front matter."""
    lines = markdown.splitlines()
    if lines and lines[0].strip() == "---":  # YAML front matter
        end = next((i for i, ln in enumerate(lines[1:], 1) if ln.strip() == "---"), 0)
        lines = lines[end + 1 :]
    kept: list[str] = []
    stack: list[tuple[str, bool]] = []  # open fences: (fence, keep body)
    in_math = False  # inside a display-math block that spans lines
    for line in lines:
        if in_math or line.strip().startswith("$$"):
            if in_math or line.count("$$") == 1:
                in_math = in_math != ("$$" in line)  # a closing $$ ends the block
            kept.append("")  # display math separates paragraphs; its lines are dropped
            continue
        match = _FENCE.match(line)
        if match and stack and match.group(1).startswith(stack[-1][0]) and not line.strip("`: \t"):
            stack.pop()
            kept.append("")
            continue
        if match and not (stack and not stack[-1][1]):
            name = match.group(3)
            stack.append((match.group(1), name in PROSE_DIRECTIVES))
            kept.append("")
            continue
        if match and stack and not stack[-1][1] and match.group(2):
            stack.append((match.group(1), False))  # a directive nested in dropped text
            continue
        if stack and not stack[-1][1]:
            continue
        if stack and re.match(r"^\s*:[\w-]+:", line):  # a directive's option line
            continue
        kept.append(line)
    return kept


def _clean_paragraph(text: str) -> str:
    text = _DISPLAY_MATH.sub(" ", text)
    text = _LATEX_ENV.sub(" ", text)
    text = _INLINE_MATH.sub("", text)
    text = _ROLE.sub("", text)
    text = _INLINE_CODE.sub("", text)
    text = _LINK.sub(r"\1", text)
    text = _HTML.sub(" ", text)
    for old, new in REPLACEMENTS.items():
        text = text.replace(old, new)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if ch in ALLOWED or ch == "\t")
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\(\s*[,;]?\s*\)", "", text)  # brackets emptied by removed math or code
    text = re.sub(r"\s+([.,;:!?)])", r"\1", text)
    text = re.sub(r"([,;:])(\s*[,;:])+", r"\1", text)  # lists of removed symbols
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text


def markdown_to_prose(markdown: str) -> list[str]:
    """The paragraphs of English prose in one MyST Markdown page, markup removed."""
    paragraphs: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if block:
            text = _clean_paragraph(" ".join(block))
            if sum(ch.isalpha() for ch in text) >= 3:
                paragraphs.append(text)
            block.clear()

    for line in _prose_lines(markdown):
        stripped = line.strip()
        if not stripped or stripped.startswith("|") or re.match(r"^\([\w:.-]+\)=$", stripped):
            flush()  # blank line, table row or target label
            continue
        if stripped.startswith("#"):  # a heading is a paragraph of its own
            flush()
            block.append(stripped.lstrip("#"))
            flush()
            continue
        item = re.match(r"^([-*+]|\d+\.)\s+(.*)$", stripped)
        if item:  # a list item starts a new paragraph
            flush()
            stripped = item.group(2)
        block.append(stripped.lstrip("> "))
    flush()
    return paragraphs


def book_pages(book_dir: Path) -> list[Path]:
    """The pages that go into the corpus, in name order."""
    return [p for p in sorted(book_dir.glob("*.md")) if p.name not in EXCLUDED_PAGES]


def build_corpus(pages: Iterable[Path]) -> str:
    """The corpus text of ``pages``: one paragraph per line, ending with a newline."""
    paragraphs = [par for page in pages for par in markdown_to_prose(page.read_text())]
    return "\n".join(paragraphs) + "\n"


def freeze(book_dir: Path, out: Path = CORPUS_PATH) -> str:
    """Write the corpus of ``book_dir`` to ``out`` and return it."""
    text = build_corpus(book_pages(book_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="ascii")
    return text


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


def main(argv: list[str] | None = None) -> None:
    """``python -m rnn_course.language.corpus freeze [--book DIR] [--out FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m rnn_course.language.corpus")
    commands = parser.add_subparsers(dest="command", required=True)
    cmd = commands.add_parser("freeze", help="rewrite the frozen corpus from the book's pages")
    cmd.add_argument("--book", type=Path, default=Path("book"), help="folder of the pages")
    cmd.add_argument("--out", type=Path, default=CORPUS_PATH, help="corpus file to write")
    commands.add_parser("stats", help="sizes of the frozen corpus and its split")
    args = parser.parse_args(argv)
    if args.command == "freeze":
        text = freeze(args.book, args.out)
        print(f"wrote {len(text)} characters, {text.count(chr(10))} paragraphs to {args.out}")
    else:
        text = load_corpus()
        train, valid = split_corpus(text)
        vocab = Vocabulary.from_text(text)
        print(f"{len(text)} characters, vocabulary {len(vocab)}; ", end="")
        print(f"train {len(train)}, validation {len(valid)}")


if __name__ == "__main__":
    main()
