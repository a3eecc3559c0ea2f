"""The frozen book corpus and the script that freezes it, its split and vocabulary, and
stateful TBPTT batches."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnn_course.bptt import detach_state
from rnn_course.language.corpus import (
    CORPUS_PATH,
    VALID_EVERY,
    TBPTTBatches,
    Vocabulary,
    load_corpus,
    random_windows,
    split_corpus,
)
from rnn_course.language.models import CharLM

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "freeze_corpus.py"


def load_script():
    """The freezing script as a module (it lives outside the package, in scripts/)."""
    spec = importlib.util.spec_from_file_location("freeze_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


freeze = load_script()

PAGE = """---
jupytext:
  text_representation: {extension: .md, format_name: myst}
---

# A chapter title

(some-label)=
## Prose with **markup**

The state $\\mathbf{h}^{(t)}$ is updated, see {cite}`elman1990finding` and
{doc}`02_bptt`; it has {glue:text}`n_params:,` parameters and `batch_first=True`.
Read [the docs](https://example.org) too.

$$
h_t = \\tanh(W h_{t-1} + x_t)
$$ (eq-label)

```{code-cell} ipython3
import torch
def secret_function():
    return torch.zeros(3)
```

| table | row |
| --- | --- |

```{exercise}
:label: ex-one

Explain why the gradient vanishes.
```

```{literalinclude} ../rnn_course/cells.py
:pyobject: RNNCell
```

- first item
- second item
"""

FORBIDDEN_CHARS = set("`$\\{}_*|<>#^~@[]")
CODE_MARKERS = (
    "import torch",
    "from rnn_course",
    "def ",
    "torch.",
    "(self",
    "np.",
    "```",
    ":label:",
    "code-cell",
    "=True",
)


def test_markdown_to_prose_keeps_prose_and_drops_code_and_math() -> None:
    paragraphs = freeze.markdown_to_prose(PAGE)
    text = "\n".join(paragraphs)
    assert paragraphs[0] == "A chapter title"
    assert "Prose with markup" in paragraphs
    assert "The state is updated, see and; it has parameters and." in text
    assert "Read the docs too." in text
    assert "Explain why the gradient vanishes." in text  # exercise body is prose
    assert "first item" in paragraphs and "second item" in paragraphs
    for word in ("secret_function", "tanh", "zeros", "table", "elman", "RNNCell", "eq-label"):
        assert word not in text
    assert not FORBIDDEN_CHARS & set(text)


def test_frozen_corpus_is_small_ascii_prose_without_code_or_math() -> None:
    text = load_corpus()
    assert text == CORPUS_PATH.read_text(encoding="ascii")
    assert 50_000 < len(text) < 400_000
    assert text.endswith("\n") and text.isascii()
    assert not FORBIDDEN_CHARS & set(text)
    for marker in CODE_MARKERS:
        assert marker not in text, marker
    lines = text.splitlines()
    assert all(line.strip() == line and line for line in lines)
    assert "Backpropagation through time" in text  # a chapter title made it in
    assert sum(len(line.split()) for line in lines) > 10_000


def test_split_sizes_and_membership() -> None:
    text = load_corpus()
    train, valid = split_corpus(text)
    lines = text.splitlines()
    n_valid = len(lines) // VALID_EVERY
    assert len(valid.splitlines()) == n_valid
    assert len(train.splitlines()) == len(lines) - n_valid
    assert valid.splitlines() == lines[VALID_EVERY - 1 :: VALID_EVERY]
    assert 0.05 < len(valid) / len(text) < 0.15


def test_split_rejects_a_degenerate_period() -> None:
    with pytest.raises(ValueError, match="valid_every"):
        split_corpus("a\nb\n", valid_every=1)


def test_vocabulary_is_the_sorted_character_set_and_round_trips() -> None:
    text = load_corpus()
    vocab = Vocabulary.from_text(text)
    assert list(vocab.chars) == sorted(set(text)) and len(vocab) == len(set(text))
    assert "\n" in vocab.chars and " " in vocab.chars
    sample = text[:2000]
    ids = vocab.encode(sample)
    assert ids.dtype == torch.int64 and ids.shape == (2000,)
    assert vocab.decode(ids) == sample
    with pytest.raises(KeyError):
        vocab.encode("$")


def test_tbptt_streams_continue_across_batches_and_targets_shift_by_one() -> None:
    ids = torch.arange(1000)
    batches = TBPTTBatches(ids, batch_size=4, bptt=7)
    S = (1000 - 1) // 4
    assert batches.stream_len == S and len(batches) == S // 7
    rows = torch.cat([batches[b][0] for b in range(len(batches))], dim=1)  # (N, len·k)
    targets = torch.cat([batches[b][1] for b in range(len(batches))], dim=1)
    for n in range(4):
        expected = ids[n * S : n * S + len(batches) * 7]
        assert torch.equal(rows[n], expected)
        assert torch.equal(targets[n], expected + 1)
    x, y, restart = batches.for_step(len(batches) + 2)
    assert not restart and torch.equal(x, batches[2][0]) and torch.equal(y, batches[2][1])
    assert batches.for_step(len(batches))[2] and batches.for_step(0)[2]
    with pytest.raises(IndexError):
        batches[len(batches)]
    with pytest.raises(ValueError, match="bptt"):
        TBPTTBatches(torch.arange(20), batch_size=4, bptt=10)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_carried_detached_state_equals_one_pass_over_the_stream(cell: str) -> None:
    torch.manual_seed(0)
    V = 11
    ids = torch.randint(0, V, (400,))
    batches = TBPTTBatches(ids, batch_size=3, bptt=9)
    model = CharLM(cell, V, 8).double()
    state, pieces = None, []
    for b in range(5):
        x, _ = batches[b]
        logits, state = model(x, detach_state(state))
        pieces.append(logits)
    stepwise = torch.cat(pieces, dim=1)  # (N, 5k, V)
    whole, _ = model(torch.cat([batches[b][0] for b in range(5)], dim=1))
    torch.testing.assert_close(stepwise, whole)


def test_random_windows_are_deterministic_and_shifted() -> None:
    ids = torch.arange(500)
    x, y = random_windows(ids, 6, 10, seed=3)
    x2, y2 = random_windows(ids, 6, 10, seed=3)
    x3, _ = random_windows(ids, 6, 10, seed=4)
    assert torch.equal(x, x2) and torch.equal(y, y2) and not torch.equal(x, x3)
    assert torch.equal(y, x + 1) and x.shape == (6, 10)


def test_freeze_script_writes_the_corpus_of_a_book_folder(tmp_path: Path) -> None:
    book = tmp_path / "book"
    book.mkdir()
    (book / "01_a.md").write_text(PAGE)
    (book / "api.md").write_text("# API\n\nThis page is excluded.\n")
    out = tmp_path / "corpus.txt"
    freeze.main(["--book", str(book), "--out", str(out)])
    text = out.read_text()
    assert text == freeze.build_corpus([PAGE])
    assert "excluded" not in text and "A chapter title" in text


def test_the_script_reproduces_the_committed_corpus(tmp_path: Path) -> None:
    """Run as documented, from the pages of the revision the corpus was frozen from."""
    out = tmp_path / "corpus.txt"
    subprocess.run(
        [sys.executable, str(SCRIPT), "--rev", freeze.FROZEN_FROM, "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    assert out.read_text(encoding="ascii") == CORPUS_PATH.read_text(encoding="ascii")


MYST = """
Classification (many to one)
: a whole sequence gets one label.

:::{note}
A note in a colon fence.
:::

```{tip}
---
class: dropdown
---
A tip with YAML options.
```

% a comment the reader never sees

+++

```{math}
:label: eq-x
x = 1
```

A paragraph with a footnote[^one] and a {{ substitution }}.

[^one]: The footnote's own text is prose too.
"""


def test_myst_constructs_are_read_as_myst_reads_them() -> None:
    paragraphs = freeze.markdown_to_prose(MYST)
    assert paragraphs[0] == "Classification (many to one): a whole sequence gets one label."
    assert "A note in a colon fence." in paragraphs
    assert "A tip with YAML options." in paragraphs
    assert "A paragraph with a footnote and a." in paragraphs
    text = "\n".join(paragraphs)
    for dropped in ("comment", "dropdown", "eq-x", "x = 1", "class"):
        assert dropped not in text


def test_the_runtime_package_parses_no_markdown() -> None:
    """Loading the corpus never reads the book, nor imports a Markdown parser."""
    code = (
        "import sys, rnn_course.language.corpus as c; c.load_corpus(); "
        "print(any(m.split('.')[0] in ('markdown_it', 'mdit_py_plugins') for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
    import rnn_course.language.corpus as corpus

    assert not hasattr(corpus, "markdown_to_prose") and not hasattr(corpus, "freeze")
