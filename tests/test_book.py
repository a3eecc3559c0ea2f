"""Build the textbook and check the result, as files and in a real browser.

The build goes to ``_build/test`` (its own jupyter-cache included), so a developer's
``_build/html`` is never touched; the browser test reuses the same build (one per pytest run).
Every test here is slow: a clean build executes every chapter.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from playwright.sync_api import Browser

pytestmark = pytest.mark.slow

ASSIGNMENTS = ("rnn_bptt", "gated_cells", "deep_birnn")
# nbgrader's markers: none of them may reach a student-facing file
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION", "### BEGIN HIDDEN TESTS")


@dataclass(frozen=True)
class Build:
    """A finished book build: the HTML folder, the build log and the exit status."""

    html: Path
    log: str
    returncode: int


def _jupyter_book() -> list[str]:
    executable = Path(sys.executable).with_name("jupyter-book")
    return [str(executable if executable.exists() else shutil.which("jupyter-book"))]


@pytest.fixture(scope="session")
def book(repo_root: Path) -> Build:
    """Build the whole book once per pytest run into ``_build/test``."""
    output = repo_root / "_build" / "test"
    # Keep the executed notebooks (.jupyter_cache) but not Sphinx's incremental state:
    # an unchanged page is not re-read, and its warnings would go unseen.
    for stale in ("html", ".doctrees"):
        shutil.rmtree(output / "_build" / stale, ignore_errors=True)
    command = [*_jupyter_book(), "build", ".", "-W", "--keep-going"]
    command += ["--path-output", str(output)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=1800
    )
    return Build(output / "_build" / "html", result.stdout + result.stderr, result.returncode)


def _toc_files(repo_root: Path) -> list[str]:
    """Every document listed in ``_toc.yml``, as a path without suffix."""
    toc = yaml.safe_load((repo_root / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", [toc]):
        walk(part.get("chapters", []))
    return files


def _chapter_pages(book: Build, repo_root: Path) -> list[Path]:
    return [book.html / f"{name}.html" for name in _toc_files(repo_root)]


class _OutputText(HTMLParser):
    """Collects the text inside executed-cell outputs and the classes of output blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # > 0 while inside a cell_output element
        self.stack: list[bool] = []
        self.text: list[str] = []
        self.output_classes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        opens = "cell_output" in classes
        if self.depth or opens:
            self.output_classes.append(" ".join(classes))
        self.stack.append(opens)
        self.depth += opens

    def handle_endtag(self, tag: str) -> None:
        if self.stack:
            self.depth -= self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.text.append(data)


def _solution_lines(repo_root: Path) -> dict[str, list[str]]:
    """The code between the solution markers of every instructor notebook, per assignment."""
    found: dict[str, list[str]] = {}
    skip = {"_build", ".venv", "assignments", ".git", "release", "submitted", "autograded"}
    for notebook in repo_root.rglob("*.ipynb"):
        relative = notebook.relative_to(repo_root)
        if skip & set(relative.parts) or notebook.stem not in ASSIGNMENTS:
            continue
        cells = json.loads(notebook.read_text())["cells"]
        lines: list[str] = []
        for cell in cells:
            source = "".join(cell["source"])
            for block in re.findall(
                r"### BEGIN SOLUTION(.*?)### END SOLUTION", source, flags=re.DOTALL
            ):
                lines += [ln.strip() for ln in block.splitlines() if len(ln.strip()) >= 20]
        if lines:
            found.setdefault(notebook.stem, []).extend(lines)
    return found


# ------------------------------------------------------------------------------------------
# The build and its files
# ------------------------------------------------------------------------------------------


def test_build_succeeds(book: Build) -> None:
    assert book.returncode == 0, book.log[-5000:]
    assert "build succeeded" in book.log


def test_every_toc_page_is_built(book: Build, repo_root: Path) -> None:
    missing = [p for p in _chapter_pages(book, repo_root) if not p.is_file()]
    assert not missing, f"pages missing from the build: {missing}"
    assert (book.html / "index.html").is_file()


def test_mathjax_is_served_locally(book: Build, repo_root: Path) -> None:
    script = book.html / "_static" / "mathjax" / "tex-mml-chtml.js"
    assert script.is_file() and script.stat().st_size > 100_000
    fonts = list((book.html / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))
    assert fonts, "MathJax's CHTML fonts were not copied"
    page = (book.html / "book" / "03_vanishing_exploding.html").read_text()
    assert "_static/mathjax/tex-mml-chtml.js" in page
    assert "cdn.jsdelivr.net" not in page


def test_executed_pages_have_no_errors(book: Build, repo_root: Path) -> None:
    executed = 0
    for page in _chapter_pages(book, repo_root):
        parser = _OutputText()
        parser.feed(page.read_text())
        executed += bool(parser.output_classes)
        text = "".join(parser.text)
        assert "Traceback" not in text, f"{page.name}: a cell printed a traceback"
        for classes in parser.output_classes:
            assert "stderr" not in classes.split(), f"{page.name}: output on stderr"
            assert "error" not in classes.split(), f"{page.name}: an error output"
    assert executed >= 8, f"only {executed} pages have executed outputs"


def test_student_notebooks_are_downloadable(book: Build) -> None:
    downloads = book.html / "_downloads"
    names = {p.name for p in downloads.rglob("*.ipynb")} if downloads.is_dir() else set()
    for assignment in ASSIGNMENTS:
        assert f"{assignment}.ipynb" in names, f"{assignment}.ipynb is not under _downloads/"


def test_no_solution_leaks_into_assignment_pages(book: Build, repo_root: Path) -> None:
    pages = sorted((book.html / "book" / "assignments").glob("*.html"))
    downloads = sorted((book.html / "_downloads").rglob("*.ipynb"))
    assert {p.stem for p in pages} >= {*ASSIGNMENTS, "index"}
    solutions = _solution_lines(repo_root)
    assert set(solutions) == set(ASSIGNMENTS), "instructor notebooks with solutions not found"
    for path in [*pages, *downloads]:
        text = path.read_text()
        for marker in SOLUTION_MARKERS:
            assert marker not in text, f"{path.name} contains {marker!r}"
        if path.suffix == ".ipynb":
            # compare code, not JSON-escaped text
            cells = json.loads(text)["cells"]
            text = "\n".join("".join(c["source"]) for c in cells)
        # a later assignment may hand out an earlier one's solution as given code
        for line in solutions.get(path.stem, []):
            assert line not in text, f"{path.name} contains solution code: {line!r}"


def test_the_published_book_holds_no_instructor_code(book: Build, repo_root: Path) -> None:
    """No source page, no API entry of the grader, no definition of a graded function."""
    from rnn_grader.checks.registry import NAMES

    assert not (book.html / "_modules").exists(), "source pages (viewcode) are published"
    pages = sorted(book.html.rglob("*.html"))
    assert len(pages) > 20
    graded = re.compile(r"\bdef\s+(" + "|".join(NAMES) + r")\s*\(")
    grader = re.compile(r"\brnn_grader\.(checks|autograde|student)\.\w+\.\w+")
    for page in pages:
        text = page.read_text(errors="replace")
        plain = re.sub(r"<[^>]+>", "", text)
        found = graded.search(plain)
        assert not found, f"{page.relative_to(book.html)} defines {found.group(1)}"
        assert 'id="module-rnn_grader' not in text, f"{page.name} documents rnn_grader"
        assert not grader.search(plain), f"{page.name} documents grader internals"
    sources = [p.name for p in book.html.rglob("*.py")] + [
        p.name for p in (book.html / "_sources").rglob("*") if "rnn_grader" in p.name
    ]
    assert "reference.py" not in sources and "registry.py" not in sources


# ------------------------------------------------------------------------------------------
# The pages in a browser
# ------------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def server(book: Build) -> Iterator[str]:
    """Serve the built HTML on 127.0.0.1 (random port) from a background thread."""
    # test_build_succeeds judges the warnings; here the pages only need to exist
    assert (book.html / "index.html").is_file(), "the book produced no HTML"
    handler = functools.partial(_QuietHandler, directory=str(book.html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _all_pages(html: Path) -> list[Path]:
    skip = {"_static", "_sources", "_downloads", "_images"}
    return sorted(p for p in html.rglob("*.html") if not skip & set(p.relative_to(html).parts))


@functools.cache
def _ids(path: Path) -> frozenset[str]:
    return frozenset(re.findall(r'\bid="([^"]+)"', path.read_text()))


def _broken_links(page: Path, html: Path, hrefs: list[str]) -> list[str]:
    broken = []
    for href in hrefs:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
            continue
        target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
        if target.is_dir():
            target = target / "index.html"
        exists = target.is_file() and html.resolve() in target.resolve().parents
        anchored = exists and (
            not parts.fragment
            or target.suffix != ".html"
            or unquote(parts.fragment) in _ids(target.resolve())
        )
        if not anchored:
            broken.append(href)
    return broken


# visible text of the page without code blocks, where "$$" or "\[" can legitimately appear
_VISIBLE_TEXT = """() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll('pre, code, script, style, mjx-container, .MathJax_Preview')
      .forEach(e => e.remove());
  return body.innerText;
}"""

_IMAGES = """() => Array.from(document.images).map(img => ({
  src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth}))"""

# Open every collapsed block (dropdown solutions, hidden code inputs) so that what they
# contain is laid out and can be measured.
_EXPAND = """() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  document.querySelectorAll('.toggle-hidden').forEach(e => e.classList.remove('toggle-hidden'));
  document.querySelectorAll('button.toggle-button')
      .forEach(b => b.classList.remove('toggle-button-hidden'));
}"""

# The article's text in three parts: prose (no code, no math), the code and output blocks
# that are not Python inputs, and the text of the rendered mathematics (MathJax keeps a
# MathML copy of every formula for assistive technology).
_ARTICLE_TEXT = """() => {
  const article = document.querySelector('article') || document.body;
  const prose = article.cloneNode(true);
  prose.querySelectorAll('pre, script, style, .MathJax_Preview, .cell_input, .cell_output')
      .forEach(e => e.remove());
  // inline code and formulas stand in the sentence as one placeholder word each, so that
  // "a `b` and `c` and d" does not read as a doubled "and"
  prose.querySelectorAll('code, mjx-container').forEach(e => e.replaceWith(' \u2026 '));
  const blocks = Array.from(article.querySelectorAll('pre'))
      .filter(e => !e.closest('.cell_input')).map(e => e.textContent);
  const math = Array.from(article.querySelectorAll('mjx-container'))
      .map(e => (e.querySelector('mjx-assistive-mml') || e).textContent);
  return {prose: prose.innerText, blocks: blocks, math: math};
}"""

# Display equations whose rendered width exceeds the width of the block that holds them
_WIDE_EQUATIONS = """() => Array.from(document.querySelectorAll('mjx-container[display="true"]'))
  .map(c => {
    const math = c.querySelector('mjx-math');
    const column = c.parentElement.getBoundingClientRect().width;
    const width = math ? math.getBoundingClientRect().width : 0;
    const mml = c.querySelector('mjx-assistive-mml');
    return {width: width, column: column, text: (mml ? mml.textContent : '').slice(0, 80)};
  })
  .filter(e => e.column > 0 && e.width > e.column + 1)"""

# Figures (images that Sphinx copied to _images/, not the theme's icons) that are not in a
# <figure> with a numbered caption
_UNCAPTIONED = """() => Array.from(document.querySelectorAll('img')).filter(img => {
    if (!(img.getAttribute('src') || '').includes('_images/')) return false;
    const figure = img.closest('figure');
    const caption = figure && figure.querySelector('figcaption');
    return !(caption && caption.querySelector('.caption-number')
             && caption.textContent.trim().length > 0);
  }).map(img => img.getAttribute('src'))"""

# Lines of the chapters' own code (cell inputs) longer than 80 characters
_LONG_CODE_LINES = """() => Array.from(document.querySelectorAll('article div.cell_input pre'))
  .flatMap(e => e.textContent.split('\\n'))
  .filter(line => line.length > 80)"""

# Code and output blocks whose text runs past the right edge of their box (cut off)
_CUT_OFF_BLOCKS = """() => Array.from(document.querySelectorAll('article pre'))
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => e.textContent.slice(0, 60))"""

# MyST syntax that only shows up in rendered text when the parser did not understand it
RAW_MYST = re.compile(
    r"```\{|:::\{|\{(?:cite(?::[a-z]+)?|doc|ref|numref|eq|term|download|math|glue(?::[a-z]+)?"
    r"|prf:ref|abbr|sub|sup|code-cell|literalinclude|figure|exercise|solution|admonition)\}"
    r"|^\([A-Za-z0-9_-]+\)=$",
    flags=re.MULTILINE,
)
DOUBLED_WORD = re.compile(r"\b([A-Za-z]+) +\1\b", flags=re.IGNORECASE)
QUOTED = re.compile(r"\u201c[^\u201d\n]{0,200}\u201d|\"[^\"\n]{0,200}\"")


def _excerpt(text: str, match: re.Match[str], width: int = 40) -> str:
    start, end = max(match.start() - width, 0), match.end() + width
    return " ".join(text[start:end].split())


def _text_problems(relative: str, texts: dict[str, object]) -> list[str]:
    """Raw MyST, doubled words and a literal backslash-underscore in a page's text."""
    problems: list[str] = []
    prose = str(texts["prose"])
    blocks = [str(b) for b in texts["blocks"]]  # type: ignore[union-attr]
    math = [str(m) for m in texts["math"]]  # type: ignore[union-attr]
    for text in [prose, *blocks]:
        for match in RAW_MYST.finditer(text):
            problems.append(f"{relative}: raw MyST {match.group()!r} in {_excerpt(text, match)!r}")
    # quoted material (a generated sample such as "the the the") may repeat on purpose
    unquoted = QUOTED.sub(" \u2026 ", prose)
    for match in DOUBLED_WORD.finditer(unquoted):
        problems.append(f"{relative}: doubled word in {_excerpt(unquoted, match)!r}")
    for text in [prose, *math]:
        for match in re.finditer(r"\\_", text):
            problems.append(f"{relative}: literal '\\_' in {_excerpt(text, match)!r}")
    return problems


def page_problems(page: object, relative: str) -> list[str]:
    """What a reader would see as broken on the loaded ``page`` (a Playwright page).

    Raw MyST, doubled words, a literal ``\\_``, display equations wider than their column,
    figures without a numbered caption, code blocks cut off at their right edge and, in the
    chapters, lines of code longer than 80 characters. Collapsed blocks are opened first, so the
    solutions of exercises are checked too.
    """
    page.evaluate(_EXPAND)  # type: ignore[attr-defined]
    problems = _text_problems(relative, page.evaluate(_ARTICLE_TEXT))  # type: ignore[attr-defined]
    for wide in page.evaluate(_WIDE_EQUATIONS):  # type: ignore[attr-defined]
        problems.append(
            f"{relative}: display equation {wide['width']:.0f} px wide in a "
            f"{wide['column']:.0f} px column: {wide['text']!r}"
        )
    for src in page.evaluate(_UNCAPTIONED):  # type: ignore[attr-defined]
        problems.append(f"{relative}: figure without a numbered caption: {src}")
    if re.fullmatch(r"book/\d\d_\w+\.html", relative):
        for line in page.evaluate(_LONG_CODE_LINES):  # type: ignore[attr-defined]
            problems.append(f"{relative}: code line of {len(line)} characters: {line!r}")
    for start in page.evaluate(_CUT_OFF_BLOCKS):  # type: ignore[attr-defined]
        problems.append(f"{relative}: a code block is cut off at its right edge: {start!r}")
    return problems


def test_pages_render_in_a_browser(
    book: Build, server: str, repo_root: Path, browser: Browser
) -> None:
    pages = _all_pages(book.html)
    assert len(pages) >= len(_toc_files(repo_root))
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        requested: list[str] = []
        context.on("request", lambda request: requested.append(request.url))
        page = context.new_page()
        for path in pages:
            relative = path.relative_to(book.html).as_posix()
            page.goto(f"{server}/{relative}", wait_until="load")
            has_math = page.locator(".math").count() > 0
            if has_math:
                page.wait_for_function(
                    "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
                )
                page.evaluate("() => MathJax.startup.promise")
                if page.locator("mjx-container").count() == 0:
                    problems.append(f"{relative}: math not rendered by MathJax")
                text = page.evaluate(_VISIBLE_TEXT)
                for raw in ("$$", "\\[", "\\("):
                    if raw in text:
                        problems.append(f"{relative}: raw {raw!r} left in the page")
            problems += page_problems(page, relative)
            for image in page.evaluate(_IMAGES):
                if not image["complete"] or image["width"] == 0:
                    problems.append(f"{relative}: image not loaded: {image['src']}")
            if page.locator(".output.error, .output.stderr, .stderr").count():
                problems.append(f"{relative}: error or stderr output")
            outputs = " ".join(page.locator(".cell_output").all_inner_texts())
            if "Traceback" in outputs:
                problems.append(f"{relative}: traceback in an output")
            hrefs = page.eval_on_selector_all(
                "a[href]", "els => els.map(e => e.getAttribute('href'))"
            )
            # index.html redirects to the root page: resolve links against where we ended up
            shown = book.html / unquote(urlsplit(page.url).path).lstrip("/")
            problems += [
                f"{relative}: broken link {h}" for h in _broken_links(shown, book.html, hrefs)
            ]
            if relative == "book/03_vanishing_exploding.html":
                shots = repo_root / "_build" / "screenshots"
                shots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shots / "ch03.png"), full_page=True)
    finally:
        context.close()
    external = {urlsplit(u).netloc for u in requested if not u.startswith((server, "data:"))}
    assert not external, f"pages requested resources from the network: {sorted(external)}"
    assert not problems, "\n".join(problems)
