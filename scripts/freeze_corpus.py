"""Freeze the book's prose into the character corpus of ``rnn_course.language.corpus``.

The corpus is the English text of the book's pages with code cells, math, MyST directives
and roles, tables and markup removed, one paragraph per line. The pages are parsed as MyST
Markdown by markdown-it-py with the plugins MyST itself uses (``mdit_py_plugins``), so what
is prose is decided by the same parser that builds the book; only the paragraphs' text is
kept, and reduced to a small set of ASCII characters.

The corpus is frozen: ``rnn_course/language/data/book_corpus.txt`` is written by this
script and versioned with the package, so that results do not drift when a page changes.
It was frozen from the book's pages at the revision :data:`FROZEN_FROM`; from a clone of
the repository, with the book's environment (``make venv``)::

    python scripts/freeze_corpus.py --rev 44c3bdc   # that revision's pages: the same file
    python scripts/freeze_corpus.py                 # today's book/*.md (changes the corpus)

The test ``tests/test_language_corpus.py`` checks that the first command reproduces the
committed file. Refreezing from another revision changes the data of the chapter
"Language, measured": record that revision in :data:`FROZEN_FROM` and rebuild the chapter.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.amsmath import amsmath_plugin
from mdit_py_plugins.colon_fence import colon_fence_plugin
from mdit_py_plugins.deflist import deflist_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.front_matter import front_matter_plugin
from mdit_py_plugins.myst_blocks import myst_block_plugin
from mdit_py_plugins.myst_role import myst_role_plugin
from mdit_py_plugins.substitution import substitution_plugin

ROOT = Path(__file__).resolve().parents[1]
CORPUS_PATH = ROOT / "rnn_course" / "language" / "data" / "book_corpus.txt"
# the revision of the book whose pages the committed corpus was frozen from
FROZEN_FROM = "44c3bdcc7edc5cbda3021273720feb249874c02f"
# pages without running prose (API listing, bibliography) and this corpus's own chapter,
# whatever its number (it was 11_language.md at FROZEN_FROM)
EXCLUDED_PAGES = ("api.md", "bibliography.md")
EXCLUDED_SUFFIX = "_language.md"


def excluded(name: str) -> bool:
    """Whether page ``name`` stays out of the corpus."""
    return name in EXCLUDED_PAGES or name.endswith(EXCLUDED_SUFFIX)


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
# inline tokens whose text is not prose: code, math, roles, HTML, footnote marks
DROPPED_INLINE = frozenset(
    {
        "code_inline",
        "math_inline",
        "math_inline_double",
        "myst_role",
        "html_inline",
        "image",
        "footnote_ref",
        "substitution_inline",
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
_OPTION = re.compile(r"^\s*:[\w-]+:")


def myst_parser() -> MarkdownIt:
    """markdown-it-py set up as MyST parses the book (``_config.yml``'s extensions)."""
    return (
        MarkdownIt("commonmark")
        .enable("table")
        .use(front_matter_plugin)
        .use(myst_block_plugin)
        .use(myst_role_plugin)
        .use(footnote_plugin)
        .use(
            dollarmath_plugin,
            allow_labels=True,
            allow_space=True,
            allow_digits=True,
            double_inline=True,
        )
        .use(colon_fence_plugin)
        .use(amsmath_plugin)
        .use(deflist_plugin)
        .use(substitution_plugin)
    )


def _directive_body(content: str) -> str:
    """A directive's content without its options (``:key: value`` lines or YAML block)."""
    lines = content.splitlines()
    if lines and lines[0].strip() == "---":
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), 0)
        return "\n".join(lines[end + 1 :])
    start = 0
    while start < len(lines) and _OPTION.match(lines[start]):
        start += 1
    return "\n".join(lines[start:])


def _inline_text(token: Token) -> str:
    """The prose of an inline token: its text, without code, math, roles or markup."""
    parts = []
    for child in token.children or []:
        if child.type in ("text", "text_special"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type in DROPPED_INLINE:
            continue
    return "".join(parts)


def _blocks(md: MarkdownIt, markdown: str) -> Iterator[str]:
    """The raw text of every prose block (heading, paragraph, list item) in order; a
    definition list's term opens its definition's first paragraph (``term: definition``)."""
    in_table = 0
    term: str | None = None  # a definition list's term, until its definition comes
    in_term = False
    for token in md.parse(markdown):
        if token.type == "table_open":
            in_table += 1
        elif token.type == "table_close":
            in_table -= 1
        elif token.type in ("dt_open", "dt_close"):
            in_term = token.type == "dt_open"
        elif token.type == "inline" and not in_table:
            text = _inline_text(token)
            if in_term:
                term = text
            elif term is not None:
                yield f"{term}: {text}"
                term = None
            else:
                yield text
        elif token.type in ("fence", "colon_fence") and token.info.startswith("{"):
            name = token.info[1:].split("}", 1)[0]
            if name in PROSE_DIRECTIVES:
                yield from _blocks(md, _directive_body(token.content))


def clean_paragraph(text: str) -> str:
    """ASCII prose: typography mapped, other characters dropped, emptied brackets removed."""
    for old, new in REPLACEMENTS.items():
        text = text.replace(old, new)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if ch in ALLOWED or ch == "\t")
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\(\s*[,;]?\s*\)", "", text)  # brackets emptied by removed math or code
    text = re.sub(r"\s+([.,;:!?)])", r"\1", text)
    text = re.sub(r"([,;:])(\s*[,;:])+", r"\1", text)  # lists of removed symbols
    text = re.sub(r"\(\s+", "(", text)
    return re.sub(r"\s+", " ", text).strip()


def markdown_to_prose(markdown: str, md: MarkdownIt | None = None) -> list[str]:
    """The paragraphs of English prose in one MyST Markdown page, markup removed."""
    md = md or myst_parser()
    paragraphs = []
    for block in _blocks(md, markdown):
        text = clean_paragraph(block)
        if sum(ch.isalpha() for ch in text) >= 3:
            paragraphs.append(text)
    return paragraphs


def build_corpus(pages: Iterable[str]) -> str:
    """The corpus text of the pages' Markdown: one paragraph per line, ending with a newline."""
    md = myst_parser()
    paragraphs = [par for page in pages for par in markdown_to_prose(page, md)]
    return "\n".join(paragraphs) + "\n"


def pages_in_folder(book: Path) -> list[str]:
    """The Markdown of the pages that go into the corpus, in name order."""
    return [p.read_text() for p in sorted(book.glob("*.md")) if not excluded(p.name)]


def pages_at_revision(revision: str, repo: Path = ROOT) -> list[str]:
    """The same pages as :func:`pages_in_folder`, at a git revision of the repository."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=True
        ).stdout

    names = sorted(
        Path(path).name
        for path in git("ls-tree", "--name-only", f"{revision}:book").split()
        if path.endswith(".md")
    )
    return [git("show", f"{revision}:book/{name}") for name in names if not excluded(name)]


def main(argv: list[str] | None = None) -> str:
    """``python scripts/freeze_corpus.py [--book DIR | --rev REV] [--out FILE]``."""
    parser = argparse.ArgumentParser(
        prog="python scripts/freeze_corpus.py", description=__doc__.split("\n\n")[0]
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--book", type=Path, default=ROOT / "book", help="folder of the pages")
    source.add_argument(
        "--rev",
        help=f"read the pages at this git revision ({FROZEN_FROM[:7]} is the committed corpus's)",
    )
    parser.add_argument("--out", type=Path, default=CORPUS_PATH, help="corpus file to write")
    args = parser.parse_args(argv)
    pages = pages_at_revision(args.rev) if args.rev else pages_in_folder(args.book)
    text = build_corpus(pages)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="ascii")
    print(f"wrote {len(text)} characters, {text.count(chr(10))} paragraphs to {args.out}")
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
