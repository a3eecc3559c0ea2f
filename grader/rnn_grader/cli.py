"""The ``rnn-course`` command line (instructor side).

``rnn-course secret [--force]``, once per course: creates the course secret from which
hidden cases are drawn (``.course-secret`` in the course root, ignored by git).

``rnn-course grade <assignment> [--jobs N] [--students GLOB] [--scheduler ADDRESS
[--tls-ca-file CA --tls-cert CERT --tls-key KEY | --allow-insecure-tcp]]
[--unsafe-no-sandbox]``, run in the course root: trusted parallel autograding with a
status table and a report under ``grading-report/<assignment>/``. A Dask scheduler that
is not on this machine must be ``tls://`` with the TLS files, unless plain TCP is
explicitly allowed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnn-course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("secret", help="create the course secret (once per course)")
    s.add_argument("--course-dir", default=".", help="course root (default: current directory)")
    s.add_argument("--force", action="store_true", help="replace an existing secret")
    g = sub.add_parser("grade", help="autograde an assignment in sandboxes, in parallel")
    g.add_argument("assignment")
    g.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel processes (default: number of cores)",
    )
    g.add_argument("--students", default="*", help="glob over student ids (default: all)")
    g.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address: tls://host:8786 (with the TLS files), or tcp:// on loopback",
    )
    g.add_argument("--tls-ca-file", default=None, help="Dask TLS: CA certificate (PEM)")
    g.add_argument("--tls-cert", default=None, help="Dask TLS: this client's certificate (PEM)")
    g.add_argument("--tls-key", default=None, help="Dask TLS: this client's private key (PEM)")
    g.add_argument(
        "--allow-insecure-tcp",
        action="store_true",
        help="allow a plain tcp:// scheduler on another host (anyone reaching it runs code here)",
    )
    g.add_argument(
        "--unsafe-no-sandbox",
        action="store_true",
        help="run student code WITHOUT bubblewrap (only where it cannot work)",
    )
    g.add_argument("--course-dir", default=".", help="course root (default: current directory)")
    g.add_argument(
        "--report-dir",
        default=None,
        help="where to write the report (default: grading-report/<assignment>)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rnn-course`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    root = Path(args.course_dir).resolve()
    if args.command == "secret":
        from rnn_grader.secret import create

        try:
            path = create(root, force=args.force)
        except FileExistsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {path}: keep it private and out of version control (git ignores it)")
        return 0
    if args.jobs < 1:
        print(f"--jobs must be a positive integer, got {args.jobs}", file=sys.stderr)
        return 2
    if not (root / "nbgrader_config.py").is_file():
        print(f"no nbgrader_config.py in {root}: run this in the course root", file=sys.stderr)
        return 2
    from rnn_grader.autograde.errors import GraderError
    from rnn_grader.autograde.report import status_table, write_report
    from rnn_grader.autograde.runner import check_scheduler_address, dask_security, grade
    from rnn_grader.autograde.sandbox import SandboxUnavailable
    from rnn_grader.autograde.text import printable
    from rnn_grader.secret import MissingSecret
    from rnn_grader.secret import load as load_secret

    try:
        load_secret(root)
    except MissingSecret as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    try:
        security = dask_security(args.tls_ca_file, args.tls_cert, args.tls_key)
        if args.scheduler:
            check_scheduler_address(args.scheduler, security, args.allow_insecure_tcp)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        results = grade(
            root,
            args.assignment,
            jobs=args.jobs,
            students=args.students,
            scheduler=args.scheduler,
            unsafe=args.unsafe_no_sandbox,
            progress=not args.no_progress,
            security=security,
            allow_insecure_tcp=args.allow_insecure_tcp,
        )
    except SandboxUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except GraderError as exc:
        print(f"error: grading stopped, no grade of this run is final: {exc}", file=sys.stderr)
        return 2
    if not results:
        print(f"no submissions of {args.assignment!r} match {args.students!r}", file=sys.stderr)
        return 1
    folder = Path(args.report_dir) if args.report_dir else root / "grading-report" / args.assignment
    paths = write_report(results, folder)
    print(status_table(results))
    for r in results:  # what happened to each student not fully graded
        if r.status != "ok" and r.error:
            print(printable(f"{r.student}: {' '.join(r.error.split())}", 400))
    print(f"report: {paths['summary.txt'].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
