"""Copying detected: every submission's answers against each other and against the solutions.

The course's solutions are public, so the easiest way to cheat is to copy them, and the
course secret does nothing against that (hidden cases only stop answers that do not
compute). ``rnn-course similarity <a>`` compares the code each student wrote (answer
cells and the cells they added) with every other submission and with ``solutions/``,
using `copydetect <https://github.com/blingenf/copydetect>`_: winnowed fingerprints of
the token stream, as MOSS computes them, with variable names and comments filtered out,
so renaming variables does not hide a copy. The released template (function headers,
docstrings, stubs) is boilerplate and does not count. The result is one self-contained
HTML page (no network needed), ranked by similarity with the matching code of each pair
side by side and highlighted, in ``exports/<a>/similarity.html``.
"""

from __future__ import annotations

import html
import json
import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SOLUTION = "SOLUTIONS"
_MARKER = re.compile(r"^\s*### (BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$", re.M)


@dataclass(frozen=True)
class Pair:
    """Two files whose code overlaps: the share of each one's code found in the other."""

    first: str
    second: str
    score: float  # the larger of the two shares
    shares: tuple[float, float]
    code: tuple[str, str] = ("", "")  # each side's code, HTML-escaped by copydetect, with
    # the shared parts in highlight spans


@dataclass
class SimilarityReport:
    """The ranked pairs above the threshold, and the HTML report."""

    html: Path
    flagged: list[Pair] = field(default_factory=list)


def _cells(nb: dict) -> list[dict]:
    return [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def _grade_id(cell: dict) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if isinstance(meta, dict) else None


def student_code(nb: dict, released: dict) -> str:
    """What the student wrote: answer cells and added or changed cells, minus the template."""
    provided = {_source(c).strip() for c in _cells(released) if not _is_answer(c)}
    parts = []
    for cell in _cells(nb):
        text = _source(cell)
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if isinstance(meta, dict) and meta.get("grade") and not meta.get("solution"):
            continue  # a test cell
        if not _is_answer(cell) and text.strip() in provided:
            continue
        parts.append(text)
    return "\n\n".join(parts) + "\n"


def _is_answer(cell: dict) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return isinstance(meta, dict) and bool(meta.get("solution")) and not meta.get("grade")


def solution_code(nb: dict) -> str:
    """The instructor's answer cells, solution markers removed."""
    parts = [_MARKER.sub("", _source(c)) for c in _cells(nb) if _is_answer(c)]
    return "\n\n".join(parts) + "\n"


def template_code(released: dict) -> str:
    """The answer cells as released: headers, docstrings and stubs (boilerplate)."""
    return "\n\n".join(_source(c) for c in _cells(released) if _is_answer(c)) + "\n"


def similarity_report(
    root: Path, assignment: str, *, threshold: float = 0.5, out: Path | None = None
) -> SimilarityReport:
    """Compare every submission of ``assignment`` with the others and with the solutions."""
    from copydetect import CopyDetector

    if not 0 < threshold < 1:
        raise ValueError(f"the threshold must be between 0 and 1, got {threshold}")
    released_path = root / "assignments" / assignment / f"{assignment}.ipynb"
    solution_path = root / "solutions" / assignment / f"{assignment}.ipynb"
    for path in (released_path, solution_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing (run `rnn-course release` first)")
    released = json.loads(released_path.read_text())
    submissions = sorted((root / "submitted").glob(f"*/{assignment}/{assignment}.ipynb"))
    if len(submissions) < 1:
        raise FileNotFoundError(f"no submissions of {assignment} in {root / 'submitted'}")
    out = out or root / "exports" / assignment / "similarity.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rnn-similarity-") as tmp:
        folder = Path(tmp)
        detector = CopyDetector(
            extensions=["py"], display_t=threshold, autoopen=False, silent=True,
            out_file=str(out), force_language="python",
        )  # fmt: skip
        for path in submissions:
            student = path.parent.parent.name
            try:
                nb = json.loads(path.read_text())
            except (OSError, ValueError):
                logging.warning("similarity: %s is not a readable notebook", path)
                continue
            file = folder / f"{student}.py"
            file.write_text(student_code(nb, released))
            detector.add_file(str(file), "testref")
        solutions = folder / f"{SOLUTION}.py"
        solutions.write_text(solution_code(json.loads(solution_path.read_text())))
        detector.add_file(str(solutions), "ref")
        boilerplate = folder / "template.py"
        boilerplate.write_text(template_code(released))
        detector.add_file(str(boilerplate), "boilerplate")
        detector.run()
        pairs = []
        for test_sim, ref_sim, test_f, ref_f, code_1, code_2, _ in detector.get_copied_code_list():
            shares = (float(test_sim), float(ref_sim))
            first, second = Path(test_f).stem, Path(ref_f).stem
            pairs.append(Pair(first, second, max(shares), shares, (code_1, code_2)))
    flagged = sorted(
        (p for p in pairs if p.score > threshold), key=lambda p: (-p.score, p.first, p.second)
    )
    out.write_text(render(assignment, flagged, threshold, len(submissions)), encoding="utf-8")
    return SimilarityReport(out, flagged)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Similar answers: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table.rank {{ border-collapse: collapse; margin-bottom: 2em; }}
table.rank td, table.rank th {{ border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: left; }}
section {{ margin: 2em 0; border-top: 2px solid #888; }}
.pair {{ display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }}
pre {{ background: #f7f7f7; padding: 0.6em; white-space: pre-wrap; font-size: 12px; }}
.highlight-red {{ background: #ffd0cc; }}
.highlight-green {{ background: #d2f5d0; }}
</style></head><body>
<h1>Similar answers: {title}</h1>
<p>{count} submissions compared with each other and with the solutions
(<code>{solution}</code>); pairs whose shared code exceeds {threshold:.0%} of either side,
most similar first. Shared code is highlighted. Similar code is a reason to look, not a
verdict: short functions of the same formula can look alike.</p>
<table class="rank"><tr><th>#</th><th>submission</th><th>compared with</th>
<th>share of the first</th><th>share of the second</th></tr>
{rows}
</table>
{sections}
</body></html>
"""


def render(assignment: str, pairs: list[Pair], threshold: float, count: int) -> str:
    """The report page: a ranked table, then each pair's code side by side."""
    rows, sections = [], []
    for i, p in enumerate(pairs, start=1):
        a, b = html.escape(p.first), html.escape(p.second)
        rows.append(
            f'<tr><td><a href="#pair{i}">{i}</a></td><td>{a}</td><td>{b}</td>'
            f"<td>{p.shares[0]:.0%}</td><td>{p.shares[1]:.0%}</td></tr>"
        )
        sections.append(
            f'<section id="pair{i}"><h2>{i}. {a} and {b}: {p.score:.0%}</h2>'
            f'<div class="pair"><div><h3>{a}</h3><pre>{p.code[0]}</pre></div>'
            f"<div><h3>{b}</h3><pre>{p.code[1]}</pre></div></div></section>"
        )
    return PAGE.format(
        title=html.escape(assignment),
        count=count,
        solution=SOLUTION,
        threshold=threshold,
        rows="\n".join(rows) or '<tr><td colspan="5">no pair above the threshold</td></tr>',
        sections="\n".join(sections),
    )
