"""What grading runs of a submitted notebook: its code cells in order, checks where tests stand.

Grading runs the notebook the student ran. :func:`build_plan` turns a submitted notebook
into the :class:`~rnn_grader.autograde.session.Step` list the sandboxed worker executes:

* the instructor's read-only code cells (the setup), with their source from the
  gradebook, never from the student's copy;
* every answer cell (the first cell carrying each answer's grade id);
* every other code cell the student added or changed: helpers, imports, constants,
  prints and scratch cells count, as they do in the student's kernel; a second copy of
  an answer cell runs too, so the last definition wins, as in the kernel;
* a check where each test cell stands (a test cell the student deleted is checked after
  every other step).

Code cells that are exactly as released (the provided gradient checks and experiments)
are left out: they define nothing a graded function may rely on, and running the
instructor's experiments for every student would only cost time. IPython syntax (magics,
``!`` commands, ``?`` help) is turned into Python by IPython's own input transformer, as
Jupyter does; the worker then runs ``%time``-like magics' statements and ignores the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager
from nbformat import NotebookNode

from rnn_grader.autograde.session import Step


@dataclass(frozen=True)
class Layout:
    """What the gradebook and the release say about one notebook of an assignment."""

    answers: frozenset[str]  # grade ids of autograded answer cells
    tests: tuple[str, ...]  # grade ids of autograded test cells, in notebook order
    setup: dict[str, str]  # grade id -> source of each read-only code cell that is no test
    test_sources: dict[str, str]  # grade id -> the test cell's source (hidden part included)
    provided: frozenset[str]  # normalized sources of the released plain code cells


def check_name(grade_id: str) -> str:
    """``test_rnn_backward`` -> ``rnn_backward``."""
    return grade_id[5:] if grade_id.startswith("test_") else grade_id


def grade_id_of(cell: NotebookNode) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    gid = meta.get("grade_id") if isinstance(meta, dict) else None
    return gid if isinstance(gid, str) else None


def normalized(source: str) -> str:
    """A cell's source without trailing spaces and surrounding blank lines."""
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def provided_sources(path: Path) -> frozenset[str]:
    """Normalized sources of the code cells without nbgrader metadata in a released notebook."""
    if not path.is_file():
        return frozenset()
    nb = nbformat.read(path, as_version=4)
    return frozenset(
        normalized(str(c.source))
        for c in nb.cells
        if c.cell_type == "code" and grade_id_of(c) is None and str(c.source).strip()
    )


_TRANSFORMER = TransformerManager()


def as_python(source: str) -> str:
    """``source`` with IPython syntax turned into Python, exactly as IPython does it.

    ``%time f(x)`` becomes ``get_ipython().run_line_magic('time', 'f(x)')``; plain Python
    is returned unchanged. Text the transformer cannot handle is returned as it is.
    """
    if not any(ch in source for ch in "%!?"):
        return source
    try:
        return _TRANSFORMER.transform_cell(source)
    except Exception:
        return source


def build_plan(nb: NotebookNode, layout: Layout) -> list[Step]:
    """The steps that grade ``nb``, in notebook order (see the module's description)."""
    steps: list[Step] = []
    seen: set[str] = set()
    for number, cell in enumerate(nb.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        gid = grade_id_of(cell)
        source = str(cell.get("source", ""))
        if gid is not None and gid not in seen:
            if gid in layout.tests:
                seen.add(gid)
                steps.append(Step(gid, "check", check=check_name(gid), number=number))
                continue
            if gid in layout.setup:
                seen.add(gid)
                steps.append(Step(gid, "setup", as_python(layout.setup[gid]), number=number))
                continue
            if gid in layout.answers:
                seen.add(gid)
                steps.append(Step(gid, "answer", as_python(source), number=number))
                continue
        if not source.strip() or normalized(source) in layout.provided:
            continue
        steps.append(Step(f"cell_{number}", "cell", as_python(source), number=number))
    for gid in layout.tests:  # deleted by the student: checked at the end
        if gid not in seen:
            steps.append(Step(gid, "check", check=check_name(gid)))
    return steps
