"""Grade many submissions in parallel with the trusted back end.

Local mode (``jobs`` processes): each process runs nbgrader's own autograde in-process
for one student at a time with :class:`TrustedExecute`, so the gradebook receives exactly
the entries ``nbgrader autograde`` writes. SQLite serializes the short write
transactions; a student whose autograde hit "database is locked" is retried.

Dask mode (``scheduler`` address): the sandbox runs (the expensive part) fan out to the
cluster as plain data; the trusted process then compares and writes the gradebook
serially, reusing those results (:data:`preprocessor.PRECOMPUTED`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import multiprocessing
import os
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from rnn_grader.autograde import preprocessor as pp
from rnn_grader.autograde.sandbox import SandboxLimits, SandboxReport, ensure_sandbox, run_sandbox

RETRIES = 3


@dataclass
class StudentResult:
    """The outcome of one student's submission."""

    student: str
    status: str  # "ok", "partial", "failed", "timed out" or "invalid notebook"
    score: float
    max_score: float
    tests: dict[str, bool] = field(default_factory=dict)  # test grade id -> passed
    seconds: float = 0.0
    error: str = ""


def load_config(root: Path, *, unsafe: bool = False) -> Any:
    """The course's ``nbgrader_config.py`` with the trusted back end guaranteed in place."""
    from traitlets.config.loader import PyFileConfigLoader

    from rnn_grader.autograde import configure
    from rnn_grader.autograde.preprocessor import TrustedExecute

    c = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    c.CourseDirectory.root = str(root)
    installed = "Autograde" in c and "autograde_preprocessors" in c.Autograde
    if not installed or TrustedExecute not in c.Autograde.autograde_preprocessors:
        configure(c)
    if unsafe:
        c.TrustedExecute.unsafe_no_sandbox = True
    return c


def list_students(root: Path, assignment: str, pattern: str = "*") -> list[str]:
    """Students with a submission of ``assignment`` whose id matches ``pattern``."""
    submitted = root / "submitted"
    if not submitted.is_dir():
        return []
    return sorted(
        d.name
        for d in submitted.iterdir()
        if (d / assignment).is_dir() and fnmatch.fnmatchcase(d.name, pattern)
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Wait for the lock instead of failing, let readers run during writes, fsync less."""
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA busy_timeout = 60000")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()


@functools.cache
def _install_sqlite_pragmas() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _sqlite_pragmas)


@functools.cache
def _api(root: Path, unsafe: bool):
    _install_sqlite_pragmas()
    warnings.filterwarnings("ignore")
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    c = load_config(root, unsafe=unsafe)
    return NbGraderAPI(CourseDirectory(config=c), config=c)


def autograde_student(root: str, assignment: str, student: str, unsafe: bool) -> dict[str, Any]:
    """nbgrader autograde for one student, in this process; returns success and summaries."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    t0 = time.perf_counter()
    api = _api(Path(root).resolve(), unsafe)
    result: dict[str, Any] = {}
    for attempt in range(RETRIES):
        pp.SUMMARIES.clear()
        result = api.autograde(assignment, student, force=True, create=True)
        if result.get("success") or "database is locked" not in str(result.get("log", "")):
            break
        time.sleep(0.2 * (attempt + 1))
    summaries = {
        k[2]: {gid: (v.passed, v.timed_out) for gid, v in s.verdicts.items()}
        for k, s in pp.SUMMARIES.items()
        if k[0] == student
    }
    error = "" if result.get("success") else str(result.get("error") or result.get("log"))
    sandbox_seconds = sum(s.seconds for k, s in pp.SUMMARIES.items() if k[0] == student)
    return {
        "sandbox_seconds": sandbox_seconds,
        "student": student,
        "success": bool(result.get("success")),
        "summaries": summaries,
        "error": error[-2000:],
        "seconds": time.perf_counter() - t0,
    }


def remote_sandbox(
    cells: list[dict[str, str]],
    checks: list[dict[str, Any]],
    drivers_source: str,
    limits: SandboxLimits,
    unsafe: bool,
) -> SandboxReport:
    """Run one notebook's sandbox on a Dask worker (which need not share the course files)."""
    with tempfile.TemporaryDirectory(prefix="rnng-drivers-") as tmp:
        path = Path(tmp) / "drivers.py"
        path.write_text(drivers_source)
        os.chmod(tmp, 0o755)
        return run_sandbox(cells, checks, path, limits=limits, unsafe=unsafe)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="grading", unit="nb", file=sys.stderr, disable=not enabled)


def grade(
    root: Path,
    assignment: str,
    *,
    jobs: int | None = None,
    students: str = "*",
    scheduler: str | None = None,
    unsafe: bool = False,
    progress: bool = True,
) -> list[StudentResult]:
    """Autograde every matching submission; return one result per student."""
    root = Path(root).resolve()
    ensure_sandbox(unsafe)
    ids = list_students(root, assignment, students)
    if scheduler:
        raw = _grade_dask(root, assignment, ids, scheduler, unsafe, progress)
    else:
        raw = _grade_local(root, assignment, ids, jobs or os.cpu_count() or 1, unsafe, progress)
    return collect(root, assignment, raw)


def warm_up(root: Path, assignment: str, unsafe: bool) -> None:
    """Load the config and compute every expected value once, before workers fork."""
    from nbgrader.api import Gradebook

    api = _api(root.resolve(), unsafe)
    te = pp.TrustedExecute(config=api.config)
    suite = te.suite()
    with Gradebook(api.coursedir.db_url) as gb:
        names = [nb.name for nb in gb.find_assignment(assignment).notebooks]
    for name in names:
        layout = pp.gradebook_layout(api.coursedir.db_url, assignment, name)
        for gid in layout.tests:
            # an unknown check is reported per test cell by the preprocessor
            with contextlib.suppress(Exception):
                suite.cases(pp.check_name(gid))


def _grade_local(root, assignment, ids, jobs, unsafe, progress) -> dict[str, dict]:
    out: dict[str, dict] = {}
    warm_up(root, assignment, unsafe)
    if jobs <= 1:
        with _progress(len(ids), progress) as bar:
            for s in ids:
                out[s] = autograde_student(str(root), assignment, s, unsafe)
                bar.update()
        return out
    # fork: the workers inherit the loaded config and the expected values computed above
    # (once per assignment); the pool starts before any thread (progress bar) exists.
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(autograde_student, str(root), assignment, s, unsafe): s for s in ids}
        with _progress(len(ids), progress) as bar:
            for fut in as_completed(futures):
                s = futures[fut]
                try:
                    out[s] = fut.result()
                except Exception as exc:  # a dead worker process: that student only
                    out[s] = {"student": s, "success": False, "summaries": {}, "error": repr(exc)}
                bar.update()
    return out


def _grade_dask(root, assignment, ids, scheduler, unsafe, progress) -> dict[str, dict]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    api = _api(root.resolve(), unsafe)
    c = api.config
    te = pp.TrustedExecute(config=c)
    suite = te.suite()
    drivers_source = suite.drivers_path.read_text()
    db_url = api.coursedir.db_url
    with Client(scheduler) as client:
        futures = {}
        for s in ids:
            for path in sorted((root / "submitted" / s / assignment).glob("*.ipynb")):
                try:
                    nb = nbformat.read(path, as_version=4)
                    layout = pp.gradebook_layout(db_url, assignment, path.stem)
                except Exception:
                    continue  # nbgrader reports the invalid notebook below
                cells, checks, _ = pp.sandbox_request(nb, layout, suite)
                fut = client.submit(
                    remote_sandbox, cells, checks, drivers_source, te.limits(), unsafe, pure=False
                )
                futures[fut] = (s, assignment, path.stem)
        with _progress(len(futures), progress) as bar:
            for fut in dask_completed(futures):
                # a failed remote run is simply redone locally by the preprocessor
                with contextlib.suppress(Exception):
                    pp.PRECOMPUTED[futures[fut]] = fut.result()
                bar.update()
    out = {}
    for s in ids:  # serial gradebook writes, in this process
        out[s] = autograde_student(str(root), assignment, s, unsafe)
    pp.PRECOMPUTED.clear()
    return out


def collect(root: Path, assignment: str, raw: dict[str, dict]) -> list[StudentResult]:
    """Read the scores back from the gradebook and classify each student."""
    from nbgrader.api import Gradebook, MissingEntry

    results = []
    with Gradebook(_api(root.resolve(), False).coursedir.db_url) as gb:
        total = float(gb.find_assignment(assignment).max_code_score)
        for s, info in sorted(raw.items()):
            tests: dict[str, bool] = {}
            timed_out = False
            for verdicts in info.get("summaries", {}).values():
                for gid, (passed, late) in verdicts.items():
                    tests[gid] = passed
                    timed_out |= late
            score, max_score = 0.0, total
            try:
                sub = gb.find_submission(assignment, s)
                for nb in sub.notebooks:
                    for g in nb.grades:
                        if g.cell_type == "code" and not g.needs_manual_grade:
                            score += g.auto_score or 0.0
            except MissingEntry:
                pass
            if not info.get("success"):
                status = "invalid notebook"
            elif timed_out:
                status = "timed out"
            elif max_score and score >= max_score:
                status = "ok"
            elif score > 0:
                status = "partial"
            else:
                status = "failed"
            results.append(
                StudentResult(
                    s,
                    status,
                    score,
                    max_score,
                    tests,
                    info.get("seconds", 0.0),
                    info.get("error", ""),
                )
            )
    return results
