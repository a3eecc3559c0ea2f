"""Grade many submissions in parallel with the trusted back end.

Local mode (``jobs`` processes): each process runs nbgrader's own autograde in-process
for one student at a time with :class:`TrustedExecute`, so the gradebook receives exactly
the entries ``nbgrader autograde`` writes. SQLite serializes the short write
transactions; a student whose autograde hit "database is locked" is retried.

Dask mode (``scheduler`` address): the sandbox runs (the expensive part) fan out to the
cluster as plain data; the trusted process decides each notebook's verdicts as its
result arrives, keeps only those (a few lines per notebook, in a
:class:`~rnn_grader.autograde.store.GradingStore`), then writes the gradebook serially
with nbgrader, which reads the verdicts from the store. Dask's wire format
is pickle, so whoever can talk to the scheduler can run code on the workers and in the
grader: a ``tls://`` scheduler with Dask's security settings (CA, certificate and key,
see :func:`dask_security`) is required for any address that is not loopback, unless the
instructor explicitly allows plain TCP (:func:`check_scheduler_address`).
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnn_grader.autograde import grading
from rnn_grader.autograde.checksums import quiet_gradebook
from rnn_grader.autograde.errors import GraderError
from rnn_grader.autograde.grading import Phases
from rnn_grader.autograde.guard import NotebookRejected, notebook_limit, read_notebook
from rnn_grader.autograde.plan import build_plan
from rnn_grader.autograde.preprocessor import TrustedExecute
from rnn_grader.autograde.regrade import needs_grading, record_problem
from rnn_grader.autograde.sandbox import (
    SandboxLimits,
    ensure_sandbox,
    missing_protections,
    prepare_lib,
)
from rnn_grader.autograde.session import Step
from rnn_grader.autograde.store import GradingStore
from rnn_grader.autograde.text import printable
from rnn_grader.gradebook_url import course_db_url

RETRIES = 3


def load_config(root: Path, *, unsafe: bool = False) -> Any:
    """The course's ``nbgrader_config.py`` with the trusted back end guaranteed in place."""
    from traitlets.config.loader import PyFileConfigLoader

    from rnn_grader.autograde import configure
    from rnn_grader.autograde.preprocessor import TrustedExecute

    c = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    c.CourseDirectory.root = str(root)
    if "db_url" in c.CourseDirectory:  # a relative SQLite path means the course root's
        c.CourseDirectory.db_url = course_db_url(root, str(c.CourseDirectory.db_url))
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
def _api(root: Path, unsafe: bool, store: str):
    _install_sqlite_pragmas()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    c = load_config(root, unsafe=unsafe)
    c.TrustedExecute.store = store
    return NbGraderAPI(CourseDirectory(config=c), config=c)


#: The last line of a traceback that ends in a GraderError: "<module>.GraderError: text".
_GRADER_ERROR = f"{GraderError.__module__}.{GraderError.__name__}: "


def autograde_student(
    root: str, assignment: str, student: str, unsafe: bool, store: str
) -> dict[str, Any]:
    """nbgrader autograde for one student, in this process; returns success and summaries.

    Raises:
        GraderError: grading this student hit a failure of the grader itself.
    """
    t0 = time.perf_counter()
    api = _api(Path(root).resolve(), unsafe, store)
    result: dict[str, Any] = {}
    for attempt in range(RETRIES):
        with quiet_gradebook():
            result = api.autograde(assignment, student, force=True, create=True)
        if result.get("success") or "database is locked" not in str(result.get("log", "")):
            break
        time.sleep(0.2 * (attempt + 1))
    error = "" if result.get("success") else str(result.get("error") or result.get("log"))
    for line in reversed(error.splitlines()):
        if line.startswith(_GRADER_ERROR):  # nbgrader's API catches everything: re-raise
            raise GraderError(line[len(_GRADER_ERROR) :])
    summaries = GradingStore(store).summaries(student)
    rejected = (
        ""
        if result.get("success")
        else _rejection(f"{result.get('log', '')}\n{result.get('error', '')}")
    )
    return {
        "student": student,
        "success": bool(result.get("success")),
        "summaries": {s["key"][2]: s["tests"] for s in summaries},
        "failures": [f for s in summaries for f in s["failures"]],
        "sandbox_seconds": sum(s["seconds"] for s in summaries),
        "error": error[-2000:],
        "rejected": rejected,
        "seconds": time.perf_counter() - t0,
    }


def _rejection(log: str) -> str:
    """The reason a notebook was refused before grading, from nbgrader's log ("" if none)."""
    marker = f"{NotebookRejected.__module__}.{NotebookRejected.__name__}: "
    for line in reversed(log.splitlines()):
        if marker in line:
            return line.split(marker, 1)[1].strip()[:500]
        if line.startswith("NotebookRejected: "):
            return line.split(": ", 1)[1].strip()[:500]
    return ""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_scheduler_address(address: str, security: Any, allow_insecure_tcp: bool) -> None:
    """Refuse a Dask address whose traffic anyone on the network could read or forge.

    ``tls://`` (or ``wss://``) needs ``security`` (Dask's TLS settings); plain ``tcp://``
    (or ``ws://``, or no scheme) is accepted only for a loopback host, or when the
    instructor opts in with ``allow_insecure_tcp``. Raises ``ValueError`` with the reason.
    """
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    host = rest.rsplit(":", 1)[0] if rest.count(":") == 1 or rest.startswith("[") else rest
    host = host.split("/")[0]
    if scheme in ("tls", "wss"):
        if security is None:
            raise ValueError(
                f"{address}: a TLS scheduler needs the CA, certificate and key "
                "(--tls-ca-file, --tls-cert, --tls-key)"
            )
        return
    if scheme == "inproc":
        return
    if scheme not in ("tcp", "ws"):
        raise ValueError(f"{address}: unsupported scheduler scheme {scheme!r}")
    if is_loopback(host) or allow_insecure_tcp:
        return
    raise ValueError(
        f"{address}: refusing plain {scheme.upper()} to a host that is not this machine. "
        "Dask sends pickles: anyone who reaches that port runs code on the workers and in "
        "this grader. Use a tls:// scheduler with --tls-ca-file/--tls-cert/--tls-key, or "
        "pass --allow-insecure-tcp on a network only you can reach."
    )


def dask_security(ca_file: str | None, cert: str | None, key: str | None) -> Any:
    """Dask ``Security`` for mutual TLS (every party presents a certificate of ``ca_file``)."""
    if not (ca_file or cert or key):
        return None
    if not (ca_file and cert):
        raise ValueError("TLS needs at least --tls-ca-file and --tls-cert (and --tls-key)")
    for path in (ca_file, cert, key):
        if path and not Path(path).is_file():
            raise ValueError(f"TLS file not found: {path}")
    from distributed.security import Security

    return Security(
        tls_ca_file=ca_file,
        tls_client_cert=cert,
        tls_client_key=key,
        require_encryption=True,
    )


def remote_phases(
    steps: list[Step],
    public: dict[str, dict],
    hidden: dict[str, dict],
    drivers: str,
    drivers_source: str,
    files: dict[str, bytes],
    limits: SandboxLimits,
    unsafe: bool,
) -> Phases:
    """Run a notebook's two phases on a Dask worker (which need not share the course files)."""
    lib = prepare_lib(drivers, drivers_source, files)
    return grading.phases_for(steps, public, hidden, lib, drivers, limits, unsafe)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="grading", unit="nb", file=sys.stderr, disable=not enabled)


@dataclass
class GradingRun:
    """What one ``grade`` call did: students graded (raw outcomes) and skipped (why)."""

    graded: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    db_url: str = ""


def grade(
    root: Path,
    assignment: str,
    *,
    jobs: int | None = None,
    students: str = "*",
    force: bool = False,
    scheduler: str | None = None,
    unsafe: bool = False,
    progress: bool = True,
    security: Any = None,
    allow_insecure_tcp: bool = False,
) -> GradingRun:
    """Autograde the matching submissions that changed since they were graded (or all).

    A submission is graded when it was never graded, or its notebook differs from the
    one graded (:func:`~rnn_grader.autograde.regrade.needs_grading`); ``force`` grades
    every matching one. Manual grades stay graded unless the cell they grade changed
    (:class:`~rnn_grader.autograde.regrade.KeepManualGrades`). ``security`` (see
    :func:`dask_security`) and ``allow_insecure_tcp`` apply to a Dask ``scheduler`` only.

    Raises:
        GraderError: a check, the reference, the comparison, a worker or the cluster
            failed: no grade of this run can be trusted, and the run stops.
    """
    root = Path(root).resolve()
    if scheduler:
        check_scheduler_address(scheduler, security, allow_insecure_tcp)
    with tempfile.TemporaryDirectory(prefix="rnng-store-") as store:
        api = _api(root, unsafe, store)
        te = TrustedExecute(config=api.config)
        ensure_sandbox(unsafe, te.require_cgroup)
        for item in missing_protections(unsafe):
            print(f"warning: sandbox protection missing - {item}", file=sys.stderr)
        run = GradingRun(db_url=api.coursedir.db_url)
        todo = []
        for s in list_students(root, assignment, students):
            need, why = needs_grading(root, api.coursedir, assignment, s)
            if force or need:
                todo.append(s)
            else:
                run.skipped[s] = why
        if not todo:
            return run
        warm_up(root, assignment, unsafe, store)
        if scheduler:
            raw = _grade_dask(root, assignment, todo, scheduler, unsafe, progress, security, store)
        else:
            jobs = jobs or os.cpu_count() or 1
            raw = _grade_local(root, assignment, todo, jobs, unsafe, progress, store)
        for s, info in raw.items():
            record_problem(root, assignment, s, "" if info.get("success") else _problem(info))
        run.graded = raw
        return run


def _problem(info: dict[str, Any]) -> str:
    return printable(info.get("rejected") or info.get("error") or "not graded", 500)


def warm_up(root: Path, assignment: str, unsafe: bool, store: str) -> None:
    """Build every check of the assignment once, before any student: a broken one stops here.

    Raises:
        GraderError: naming the check and the cause.
    """
    from nbgrader.api import Gradebook

    api = _api(root.resolve(), unsafe, store)
    te = TrustedExecute(config=api.config)
    suite = te.suite()
    with Gradebook(api.coursedir.db_url) as gb:
        names = [nb.name for nb in gb.find_assignment(assignment).notebooks]
    for name in names:
        te.validate(suite, assignment, te.layout(api.coursedir.db_url, assignment, name))


def _grade_local(root, assignment, ids, jobs, unsafe, progress, store) -> dict[str, dict]:
    out: dict[str, dict] = {}
    if jobs <= 1:
        with _progress(len(ids), progress) as bar:
            for s in ids:
                out[s] = autograde_student(str(root), assignment, s, unsafe, store)
                bar.update()
        return out
    # fork: the workers inherit the loaded config and the expected values computed by
    # warm_up (once per assignment); the pool starts before any thread (progress bar) exists.
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {
            pool.submit(autograde_student, str(root), assignment, s, unsafe, store): s for s in ids
        }
        with _progress(len(ids), progress) as bar:
            for fut in as_completed(futures):
                s = futures[fut]
                try:
                    out[s] = fut.result()
                except GraderError:
                    for other in futures:
                        other.cancel()
                    raise
                except Exception as exc:  # a dead worker process: that student only
                    out[s] = {"student": s, "success": False, "summaries": {}, "error": repr(exc)}
                bar.update()
    return out


def sanitized(nb: Any, config: Any, resources: dict[str, Any]) -> Any:
    """``nb`` after the course's sanitize preprocessors, as ``nbgrader autograde`` runs them."""
    from nbgrader.converters.autograde import Autograde
    from traitlets.utils.importstring import import_item

    section = config.get("Autograde", {})
    classes = section.get("sanitize_preprocessors", Autograde.sanitize_preprocessors.default())
    for cls in classes:
        cls = import_item(cls) if isinstance(cls, str) else cls
        nb, resources = cls(config=config).preprocess(nb, resources)
    return nb


def _grade_dask(
    root, assignment, ids, scheduler, unsafe, progress, security, store
) -> dict[str, dict]:
    from distributed import Client
    from distributed import as_completed as dask_completed

    api = _api(root.resolve(), unsafe, store)
    c = api.config
    te = TrustedExecute(config=c)
    suite = te.suite()
    drivers_source = suite.drivers_path.read_text()
    files_of = getattr(suite.module, "sandbox_files", None)
    files = files_of(assignment) if files_of is not None else {}
    db_url = api.coursedir.db_url
    limit = notebook_limit(c)
    results = GradingStore(store)
    with Client(scheduler, security=security) as client:
        futures: dict[Any, tuple[tuple[str, str, str], list[Step]]] = {}
        for s in ids:
            for path in sorted((root / "submitted" / s / assignment).glob("*.ipynb")):
                key = (s, assignment, path.stem)
                info = {"student": s, "assignment": assignment, "notebook": path.stem}
                try:
                    nb = read_notebook(path, limit)
                    nb = sanitized(nb, c, {"nbgrader": {**info, "db_url": db_url}})
                    steps = build_plan(nb, te.layout(db_url, assignment, path.stem))
                except Exception:
                    continue  # nbgrader reports the invalid notebook in the serial pass
                names = grading.checks_of(steps)
                fut = client.submit(
                    remote_phases,
                    steps,
                    {n: suite.inputs(n, hidden=False) for n in names},
                    {n: suite.inputs(n, hidden=True) for n in names},
                    suite.drivers_name,
                    drivers_source,
                    files,
                    te.limits(),
                    unsafe,
                    pure=False,
                )
                futures[fut] = (key, steps)
        with _progress(len(futures), progress) as bar:
            for fut in dask_completed(list(futures)):
                key, steps = futures.pop(fut)
                try:
                    phases = fut.result()
                except BaseException as exc:
                    raise GraderError(
                        f"the Dask cluster could not grade {'/'.join(key)}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                verdicts = grading.verdicts(steps, phases, suite)
                results.put_verdicts(key, verdicts, phases.seconds, phases.runs)
                fut.release()
                bar.update()
    out = {}
    for s in ids:  # serial gradebook writes, in this process
        out[s] = autograde_student(str(root), assignment, s, unsafe, store)
    return out
