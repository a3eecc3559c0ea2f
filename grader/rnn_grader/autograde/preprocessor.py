"""``TrustedExecute``: the nbgrader preprocessor that replaces ``Execute`` when autograding.

Instead of running the notebook in a kernel with the grader's permissions, it

1. reads from the gradebook (never from the student's copy) which cells are answers,
   which are tests and which are read-only setup cells;
2. sends the student's answer cells and the inputs of every test to a sandboxed worker
   (:mod:`rnn_grader.autograde.sandbox`), which returns only outputs;
3. compares those outputs here with expected values computed once per process;
4. writes each test cell's outputs (a stdout line, or an ``error`` output) so that
   nbgrader's ``SaveAutoGrades`` scores it as usual, and replaces the test cell's source
   by its public part (hidden tests are summarized, never shown).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.api import Gradebook
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Float, Int, Unicode

from rnn_grader.autograde.judge import Verdict, add_dependency_notes, judge, stub_answers
from rnn_grader.autograde.sandbox import (
    SandboxLimits,
    SandboxReport,
    missing_protections,
    run_sandbox,
)
from rnn_grader.autograde.suite import GradingSuite, load_suite
from rnn_grader.secret import load as load_secret

#: Sandbox reports computed elsewhere (e.g. on Dask workers), keyed by
#: (student, assignment, notebook); the preprocessor uses and removes them.
PRECOMPUTED: dict[tuple[str, str, str], SandboxReport] = {}
#: What the last run decided for each notebook, for the command-line report.
SUMMARIES: dict[tuple[str, str, str], NotebookSummary] = {}

HIDDEN_RE = re.compile(
    r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.S | re.M
)


@dataclass(frozen=True)
class Layout:
    """What the gradebook says about one notebook of an assignment."""

    answers: tuple[str, ...]  # grade ids of autograded answer cells
    tests: tuple[str, ...]  # grade ids of autograded test cells
    setup: tuple[str, ...]  # sources of read-only code cells (only their imports run)
    test_sources: dict[str, str] = field(default_factory=dict)


@dataclass
class NotebookSummary:
    """Per-notebook outcome for reports: verdict per test grade id, answer-cell errors."""

    verdicts: dict[str, Verdict]
    cell_errors: dict[str, str]
    seconds: float
    runs: int


@functools.cache
def gradebook_layout(db_url: str, assignment: str, notebook: str) -> Layout:
    """Answer, test and setup cells of ``notebook`` as recorded by ``generate_assignment``."""
    with Gradebook(db_url) as gb:
        nb = gb.find_notebook(notebook, assignment)
        sources = {s.name: s for s in nb.source_cells}
        grade = {g.name for g in nb.grade_cells}
        solution = {s.name for s in nb.solution_cells}
        answers = tuple(sorted(n for n in solution - grade if sources[n].cell_type == "code"))
        tests = tuple(sorted(n for n in grade - solution if sources[n].cell_type == "code"))
        setup = tuple(
            s.source
            for name, s in sorted(sources.items())
            if s.cell_type == "code" and s.locked and name not in grade | solution
        )
        test_sources = {n: sources[n].source for n in tests}
    return Layout(answers, tests, setup, test_sources)


@functools.cache
def gradebook_cell_names(db_url: str, assignment: str, notebook: str) -> frozenset[str]:
    """Every grade id the gradebook records for ``notebook`` (any kind of cell)."""
    with Gradebook(db_url) as gb:
        nb = gb.find_notebook(notebook, assignment)
        return frozenset(s.name for s in nb.source_cells)


def check_name(grade_id: str) -> str:
    """``test_rnn_backward`` -> ``rnn_backward``."""
    return grade_id[5:] if grade_id.startswith("test_") else grade_id


def grade_id_of(cell: NotebookNode) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    gid = meta.get("grade_id") if isinstance(meta, dict) else None
    return gid if isinstance(gid, str) else None


def answer_cells(nb: NotebookNode, layout: Layout) -> list[dict[str, str]]:
    """Setup imports, then the student's answer cells in notebook order (first copy of each)."""
    cells = [{"id": f"setup{i}", "kind": "setup", "source": s} for i, s in enumerate(layout.setup)]
    seen: set[str] = set()
    for cell in nb.cells:
        gid = grade_id_of(cell)
        if cell.get("cell_type") == "code" and gid in layout.answers and gid not in seen:
            seen.add(gid)
            cells.append({"id": gid, "kind": "answer", "source": str(cell.get("source", ""))})
    return cells


def public_source(source: str, n_hidden: int) -> str:
    """The test cell's source with the hidden region replaced by a neutral summary."""
    summary = (
        f"# Hidden tests: {n_hidden} more cases with other sizes and values, run by the\n"
        "# trusted grader; their code and reference values are not shown.\n"
    )
    return HIDDEN_RE.sub(summary if n_hidden else "", source).rstrip() + "\n"


def set_test_outputs(cell: NotebookNode, verdict: Verdict, source: str) -> None:
    """Write the verdict as outputs nbgrader's ``SaveAutoGrades`` understands."""
    cell.source = public_source(source, verdict.n_hidden)
    cell.execution_count = None
    if verdict.passed:
        cell.outputs = [new_output("stream", name="stdout", text=verdict.message + "\n")]
    else:
        cell.outputs = [
            new_output(
                "error",
                ename=verdict.ename,
                evalue=verdict.message,
                traceback=[f"{verdict.ename}: {verdict.message}"],
            )
        ]


def sandbox_request(
    nb: NotebookNode, layout: Layout, suite: GradingSuite
) -> tuple[list[dict[str, str]], list[dict[str, Any]], dict[str, str]]:
    """Cells and checks to send to the worker; checks the suite does not know are refused."""
    checks, unknown = [], {}
    for gid in layout.tests:
        name = check_name(gid)
        try:
            cases = [c.inputs for c in suite.cases(name)]
            checks.append({"name": name, "call": suite.call(name), "cases": cases})
        except Exception as exc:  # an unknown name or a broken case generator
            unknown[name] = f"{type(exc).__name__}: {exc}"
    return answer_cells(nb, layout), checks, unknown


@functools.cache
def _warn_missing(log: Any, unsafe: bool) -> None:
    """Say once per process which protections this machine cannot give the sandbox."""
    for item in missing_protections(unsafe):
        log.warning("Sandbox protection missing - %s", item)


class TrustedExecute(NbGraderPreprocessor):
    """Grade test cells with a sandboxed worker instead of executing the notebook."""

    grading_package = Unicode(
        "rnn_grader.checks", help="Module with cases, expected, compare, call and the driver."
    ).tag(config=True)
    course_root = Unicode(
        "", help="Where the course secret file lives (default: CourseDirectory.root or '.')."
    ).tag(config=True)
    check_timeout = Float(10.0, help="Wall seconds for one check (all its cases).").tag(config=True)
    notebook_timeout = Float(120.0, help="Wall seconds for everything a notebook runs.").tag(
        config=True
    )
    memory_limit = Int(
        1 << 30, help="Address-space limit (RLIMIT_AS) of each process in the sandbox (bytes)."
    ).tag(config=True)
    sandbox_memory = Int(
        1 << 30,
        help="Memory of all the sandbox's processes together (bytes), enforced by a cgroup.",
    ).tag(config=True)
    cpu_limit = Float(
        1.0, help="CPUs one sandbox may use at once (cgroup CPU quota; 0 = equal share only)."
    ).tag(config=True)
    require_cgroup = Bool(
        False,
        help="Refuse to grade where no memory cgroup can be created (instead of warning).",
    ).tag(config=True)
    max_notebook_bytes = Int(
        4 * 1024 * 1024,
        help="Largest submitted notebook file; a larger one is not parsed and that student's "
        "notebook is reported as not graded.",
    ).tag(config=True)
    max_frame_bytes = Int(
        16 * 1024 * 1024, help="Largest message the sandbox may send (bytes)."
    ).tag(config=True)
    max_processes = Int(32, help="Processes the sandbox may run at once.").tag(config=True)
    max_output_bytes = Int(256 << 10, help="Printed output before the worker is killed.").tag(
        config=True
    )
    unsafe_no_sandbox = Bool(
        False, help="Run student code WITHOUT bubblewrap (limits only). Unsafe."
    ).tag(config=True)

    def limits(self) -> SandboxLimits:
        return SandboxLimits(
            check_timeout=self.check_timeout,
            notebook_timeout=self.notebook_timeout,
            cpu_seconds=max(1, int(self.notebook_timeout) + 5),
            memory_bytes=self.memory_limit,
            sandbox_memory_bytes=self.sandbox_memory,
            cpu_cores=self.cpu_limit,
            max_frame_bytes=self.max_frame_bytes,
            require_cgroup=self.require_cgroup,
            max_processes=self.max_processes,
            max_output_bytes=self.max_output_bytes,
        )

    def suite(self) -> GradingSuite:
        """The grading suite for this course's secret (``MissingSecret`` without one)."""
        root = self.course_root or self.config.get("CourseDirectory", {}).get("root", "") or "."
        return load_suite(self.grading_package, load_secret(root))

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        _warn_missing(self.log, self.unsafe_no_sandbox)
        info = resources["nbgrader"]
        key = (info["student"], info["assignment"], info["notebook"])
        layout = gradebook_layout(info["db_url"], info["assignment"], info["notebook"])
        suite = self.suite()
        cells, checks, unknown = sandbox_request(nb, layout, suite)
        report = PRECOMPUTED.pop(key, None)
        if report is None:
            report = run_sandbox(
                cells,
                checks,
                suite.drivers_path,
                limits=self.limits(),
                unsafe=self.unsafe_no_sandbox,
            )
        answers = {c["id"]: c["source"] for c in cells if c.get("kind") == "answer"}
        stubs = stub_answers(answers)
        verdicts: dict[str, Verdict] = {}
        for gid in layout.tests:
            name = check_name(gid)
            if name in unknown:
                verdicts[gid] = Verdict(
                    name, False, "RuntimeError", f"{name}: no trusted check ({unknown[name]})", 0, 0
                )
            else:
                verdicts[gid] = judge(name, report.checks.get(name), suite, report.cells, stubs)
        verdicts = add_dependency_notes(verdicts, answers, suite.dependencies)
        done: set[str] = set()
        for cell in nb.cells:
            gid = grade_id_of(cell)
            if gid in verdicts and gid not in done and cell.get("cell_type") == "code":
                done.add(gid)
                set_test_outputs(cell, verdicts[gid], layout.test_sources[gid])
        SUMMARIES[key] = NotebookSummary(verdicts, dict(report.cells), report.seconds, report.runs)
        self.log.info(
            "Trusted grading of %s: %d/%d tests passed in %.2f s (%d sandbox runs)",
            "/".join(key),
            sum(v.passed for v in verdicts.values()),
            len(verdicts),
            report.seconds,
            report.runs,
        )
        return nb, resources
