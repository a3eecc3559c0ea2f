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

A cell is *needed* when a graded function can see what it does: it binds a graded
function, or a global that an answer cell reads, or a global read by another needed
cell, or it reaches names in ways that cannot be told (``exec``, ``globals()``,
``setattr``, star imports). A code cell exactly as released (a provided gradient check
or experiment) that is not needed is left out; one that is needed runs where it stands,
as in the kernel: a student whose NumPy alias is called ``xp`` sees it replaced by the
experiment's ``xp = x.copy()`` in both. A student's own cell that is not needed (a
scratch cell, an experiment, a plot) is *optional*: it runs while the optional cells of
the phase have time left (``SandboxLimits.optional_seconds``), and is left out after,
so slow experiments can never cost a graded function its points.

IPython syntax (magics, ``!`` commands, ``?`` help) is turned into Python by IPython's
own input transformer, as Jupyter does; the worker then runs ``%time``-like magics'
statements and ignores the rest.
"""

from __future__ import annotations

import ast
import symtable
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


#: Calls through which a cell can bind or change names that no assignment shows.
DYNAMIC = frozenset({"exec", "eval", "globals", "vars", "locals", "setattr", "delattr"})


def reads(source: str) -> frozenset[str]:
    """Every global name ``source`` reads: at the top level, or inside its functions."""
    try:
        top = symtable.symtable(source, "<cell>", "exec")
    except (SyntaxError, ValueError, RecursionError):
        return frozenset()
    names: set[str] = set()
    tables = [top]
    while tables:
        table = tables.pop()
        tables.extend(table.get_children())
        for symbol in table.get_symbols():
            if symbol.is_referenced() and (table is top or symbol.is_global()):
                names.add(symbol.get_name())
    return frozenset(names)


def binds(source: str) -> frozenset[str] | None:
    """Every name ``source`` may bind or change; None when that cannot be told.

    Over-approximates: names assigned inside functions count, and so does the base name
    of an attribute or item assignment (``np.x = 1`` changes ``np``).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names.update(node.names)
        elif isinstance(node, ast.Attribute | ast.Subscript) and isinstance(
            node.ctx, ast.Store | ast.Del
        ):
            base = node.value
            while isinstance(base, ast.Attribute | ast.Subscript):
                base = base.value
            if not isinstance(base, ast.Name):
                return None
            names.add(base.id)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in DYNAMIC
        ):
            return None
    return frozenset(names)


def _needed(answers: list[Step], others: list[Step], graded: frozenset[str]) -> set[str]:
    """Ids of the cells a graded function can see (a fixed point over the names).

    A cell is needed when it binds a name that a graded function's call may read: the
    graded functions themselves, the globals the answer cells read, and, in turn, the
    globals read by every cell needed so far (a cell whose bindings cannot be told is
    needed).
    """
    seen = set(graded).union(*(reads(s.source) for s in answers))
    bound = {s.id: binds(s.source) for s in others}
    needed: set[str] = set()
    changed = True
    while changed:
        changed = False
        for step in others:
            names = bound[step.id]
            if step.id not in needed and (names is None or names & seen):
                needed.add(step.id)
                seen |= reads(step.source)
                changed = True
    return needed


def build_plan(nb: NotebookNode, layout: Layout) -> list[Step]:
    """The steps that grade ``nb``, in notebook order (see the module's description)."""
    steps = _all_steps(nb, layout)
    answers = [s for s in steps if s.kind == "answer"]
    others = [s for s in steps if s.kind in ("cell", "provided")]
    needed = _needed(answers, others, layout.answers)
    out = []
    for s in steps:
        if s.kind == "provided" and s.id not in needed:
            continue  # an unchanged experiment that nothing graded can see
        if s.kind in ("cell", "provided"):
            s = Step(s.id, "cell", s.source, number=s.number, optional=s.id not in needed)
        out.append(s)
    return out


def _all_steps(nb: NotebookNode, layout: Layout) -> list[Step]:
    """Every code cell as a step; unchanged released cells have the kind ``provided``."""
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
        if not source.strip():
            continue
        kind = "provided" if normalized(source) in layout.provided else "cell"
        steps.append(Step(f"cell_{number}", kind, as_python(source), number=number))
    for gid in layout.tests:  # deleted by the student: checked at the end
        if gid not in seen:
            steps.append(Step(gid, "check", check=check_name(gid)))
    return steps
