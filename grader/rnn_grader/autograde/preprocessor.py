"""``TrustedExecute``: the nbgrader preprocessor that replaces ``Execute`` when autograding.

Instead of running the notebook in a kernel with the grader's permissions, it

1. reads from the gradebook (never from the student's copy) which cells are answers,
   which are tests and which are read-only setup cells, and from the release which code
   cells were provided;
2. runs the notebook as the student ran it (:mod:`rnn_grader.autograde.plan`): the
   setup, every answer cell and every cell the student added or changed, in notebook
   order, with a check where each test cell stands, in sandboxed workers, first with the
   public cases and then, in fresh workers, with the hidden ones
   (:mod:`rnn_grader.autograde.grading`);
3. compares the outputs here with expected values computed once per process;
4. writes each test cell's outputs (a stdout line, or an ``error`` output) so that
   nbgrader's ``SaveAutoGrades`` scores it as usual, and replaces the test cell's source
   by its public part (hidden tests are summarized, never shown).

A failure of the grader itself (a broken check, a worker that cannot start) raises
:class:`~rnn_grader.autograde.errors.GraderError`, which stops grading instead of
becoming a student's failed test.
"""

from __future__ import annotations

import re
from pathlib import Path

from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Float, Int, Unicode

from rnn_grader.autograde import grading
from rnn_grader.autograde.judge import Verdict
from rnn_grader.autograde.plan import Layout, build_plan, check_name, grade_id_of, provided_sources
from rnn_grader.autograde.sandbox import SandboxLimits, missing_protections
from rnn_grader.autograde.store import GradingStore
from rnn_grader.autograde.suite import GradingSuite, load_suite
from rnn_grader.secret import load as load_secret

HIDDEN_RE = re.compile(
    r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.S | re.M
)


def gradebook_layout(db_url: str, assignment: str, notebook: str, released: Path) -> Layout:
    """Answer, test and setup cells of ``notebook`` as recorded by ``generate_assignment``.

    ``released`` is the student version of the notebook; its plain code cells are the
    provided ones, which grading leaves out while they are unchanged.
    """
    with Gradebook(db_url) as gb:
        nb = gb.find_notebook(notebook, assignment)
        sources = {s.name: s for s in nb.source_cells}
        grade = {g.name for g in nb.grade_cells}
        solution = {s.name for s in nb.solution_cells}
        answers = frozenset(n for n in solution - grade if sources[n].cell_type == "code")
        tests = tuple(sorted(n for n in grade - solution if sources[n].cell_type == "code"))
        setup = {
            name: s.source
            for name, s in sorted(sources.items())
            if s.cell_type == "code" and s.locked and name not in grade | solution
        }
        test_sources = {n: sources[n].source for n in tests}
    return Layout(answers, tests, setup, test_sources, provided_sources(released))


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


class TrustedExecute(NbGraderPreprocessor):
    """Grade test cells with sandboxed workers instead of executing the notebook."""

    grading_package = Unicode(
        "rnn_grader.checks", help="Module with cases, expected, compare, call and the driver."
    ).tag(config=True)
    course_root = Unicode(
        "", help="Where the course secret file lives (default: CourseDirectory.root or '.')."
    ).tag(config=True)
    check_timeout = Float(10.0, help="Wall seconds for one check (all its cases).").tag(config=True)
    cell_timeout = Float(
        30.0,
        help="Wall seconds for one code cell (as nbgrader's Execute.timeout); a slower "
        "cell is left out and noted.",
    ).tag(config=True)
    optional_timeout = Float(
        30.0,
        help="Wall seconds, per phase, for the cells no graded function needs (scratch "
        "cells, experiments); once spent, the rest of them are left out.",
    ).tag(config=True)
    notebook_timeout = Float(
        120.0, help="Wall seconds for everything a notebook runs, in each of its two phases."
    ).tag(config=True)
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
    store = Unicode(
        "", help="Folder of precomputed verdicts and of summaries for reports (set by rnn-course)."
    ).tag(config=True)

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)
        self._layouts: dict[tuple[str, str, str], Layout] = {}
        self._validated: set[str] = set()
        self._warned = False

    def limits(self) -> SandboxLimits:
        return SandboxLimits(
            check_timeout=self.check_timeout,
            cell_timeout=self.cell_timeout,
            optional_seconds=self.optional_timeout,
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
        return load_suite(self.grading_package, load_secret(self._root()))

    def _root(self) -> str:
        return self.course_root or self.config.get("CourseDirectory", {}).get("root", "") or "."

    def layout(self, db_url: str, assignment: str, notebook: str) -> Layout:
        """The notebook's layout, read once per grading run."""
        key = (db_url, assignment, notebook)
        if key not in self._layouts:
            coursedir = CourseDirectory(config=self.config)
            folder = Path(coursedir.format_path(coursedir.release_directory, ".", assignment))
            released = folder / f"{notebook}.ipynb"
            self._layouts[key] = gradebook_layout(db_url, assignment, notebook, released)
        return self._layouts[key]

    def validate(self, suite: GradingSuite, assignment: str, layout: Layout) -> None:
        """Build every check of the notebook once; a broken one stops grading (GraderError)."""
        names = [check_name(gid) for gid in layout.tests]
        key = f"{assignment}:{','.join(names)}"
        if key not in self._validated:
            limits = self.limits()
            suite.validate(names, limits.max_frame_bytes, limits.max_message_bytes)
            suite.lib(assignment)
            self._validated.add(key)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        if not self._warned:
            self._warned = True
            for item in missing_protections(self.unsafe_no_sandbox):
                self.log.warning("Sandbox protection missing - %s", item)
        info = resources["nbgrader"]
        key = (info["student"], info["assignment"], info["notebook"])
        layout = self.layout(info["db_url"], info["assignment"], info["notebook"])
        suite = self.suite()
        self.validate(suite, info["assignment"], layout)
        steps = build_plan(nb, layout)
        store = GradingStore(self.store) if self.store else None
        decided = store.take_verdicts(key) if store is not None else None
        if decided is None:
            phases = grading.run_phases(
                steps, suite, suite.lib(info["assignment"]), self.limits(), self.unsafe_no_sandbox
            )
            verdicts = grading.verdicts(steps, phases, suite)
            seconds, runs = phases.seconds, phases.runs
        else:
            verdicts, seconds, runs = decided
        done: set[str] = set()
        for cell in nb.cells:
            gid = grade_id_of(cell)
            if gid in verdicts and gid not in done and cell.get("cell_type") == "code":
                done.add(gid)
                set_test_outputs(cell, verdicts[gid], layout.test_sources[gid])
        if store is not None:
            store.put_summary(key, verdicts, seconds, runs)
        self.log.info(
            "Trusted grading of %s: %d/%d tests passed in %.2f s (%d sandbox runs)",
            "/".join(key),
            sum(v.passed for v in verdicts.values()),
            len(verdicts),
            seconds,
            runs,
        )
        return nb, resources
