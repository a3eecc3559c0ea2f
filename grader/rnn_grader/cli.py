"""``rnn-course``: every command an instructor runs in a term, in the course root.

=================  =============================================================
command            what it does
=================  =============================================================
``secret``         create the course secret (once per course)
``release``        student notebooks and their self-check files in ``assignments/``
``collect A``      import the LMS download (or ``--exchange``: nbgrader's exchange)
``autograde A``    grade what changed since it was graded (``--force``: everything)
``grade A``        the same as ``autograde``
``written A``      which written answers still need grading (formgrader)
``feedback A``     offline HTML feedback, named for the LMS's re-upload
``grades A``       the LMS's gradebook import, with the late policy applied
``similarity A``   an HTML report of similar answers, the solutions included
``report A``       the class report from the gradebook, without grading
=================  =============================================================

Exit status: 0 when everything was done, 1 when some students could not be handled
(each is listed with the reason), 2 when the instructor's side failed (configuration,
secret, sandbox, a broken check): then nothing of the run is final.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

OK, SOME_STUDENTS, INSTRUCTOR = 0, 1, 2


class CommandError(Exception):
    """The instructor's side cannot proceed; the message says why and what to do."""


def _course(args: argparse.Namespace) -> Path:
    root = Path(args.course_dir).resolve()
    if not (root / "nbgrader_config.py").is_file():
        raise CommandError(f"no nbgrader_config.py in {root}: run this in the course root")
    return root


def cmd_secret(args: argparse.Namespace) -> int:
    from rnn_grader.secret import create

    try:
        path = create(Path(args.course_dir).resolve(), force=args.force)
    except FileExistsError as exc:
        raise CommandError(str(exc)) from None
    print(f"wrote {path}: keep it private and out of version control (git ignores it)")
    return OK


def cmd_release(args: argparse.Namespace) -> int:
    from rnn_grader import release
    from rnn_grader.checks import registry

    root = _course(args)
    os.chdir(root)
    names = args.assignments or list(registry.ASSIGNMENTS)
    try:
        release.release(
            names, Path("assignments"), Path("_config.yml"), generate=not args.no_generate
        )
    except (RuntimeError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    return OK


def cmd_collect(args: argparse.Namespace) -> int:
    root = _course(args)
    if args.exchange:
        import subprocess

        done = subprocess.run(["nbgrader", "collect", args.assignment, "--update"], cwd=root)
        return OK if done.returncode == 0 else SOME_STUDENTS
    from rnn_grader.lms.course import collect

    try:
        report = collect(root, args.assignment)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(report.table())
    return SOME_STUDENTS if report.errors else OK


def cmd_autograde(args: argparse.Namespace) -> int:
    from rnn_grader.autograde.errors import GraderError
    from rnn_grader.autograde.report import class_results, status_table, write_report
    from rnn_grader.autograde.runner import check_scheduler_address, dask_security, grade
    from rnn_grader.autograde.sandbox import SandboxUnavailable
    from rnn_grader.autograde.text import printable
    from rnn_grader.secret import MissingSecret
    from rnn_grader.secret import load as load_secret

    root = _course(args)
    if args.jobs < 1:
        raise CommandError(f"--jobs must be a positive integer, got {args.jobs}")
    try:
        load_secret(root)
        security = dask_security(args.tls_ca_file, args.tls_cert, args.tls_key)
        if args.scheduler:
            check_scheduler_address(args.scheduler, security, args.allow_insecure_tcp)
        run = grade(
            root,
            args.assignment,
            jobs=args.jobs,
            students=args.students,
            force=args.force,
            scheduler=args.scheduler,
            unsafe=args.unsafe_no_sandbox,
            progress=not args.no_progress,
            security=security,
            allow_insecure_tcp=args.allow_insecure_tcp,
        )
    except (MissingSecret, SandboxUnavailable, ValueError) as exc:
        raise CommandError(str(exc)) from None
    except GraderError as exc:
        raise CommandError(f"grading stopped, no grade of this run is final: {exc}") from None
    if not run.graded and not run.skipped:
        print(f"no submissions of {args.assignment!r} match {args.students!r}", file=sys.stderr)
        return SOME_STUDENTS
    for student, why in sorted(run.skipped.items()):
        print(printable(f"skipped {student}: {why}", 200))
    if run.skipped:
        print(f"{len(run.skipped)} skipped (rnn-course autograde --force regrades them)")
    results = class_results(root, args.assignment, run.db_url)
    folder = Path(args.report_dir) if args.report_dir else root / "grading-report" / args.assignment
    paths = write_report(results, folder)
    graded = [r for r in results if r.student in run.graded]
    if graded:
        print(status_table(graded))
    for r in graded:  # what happened to each student not fully graded
        if r.status != "ok" and r.error:
            print(printable(f"{r.student}: {' '.join(r.error.split())}", 400))
    print(f"class report ({len(results)} submissions): {paths['summary.txt'].parent}")
    failed = [r for r in graded if r.status in ("invalid notebook", "not graded")]
    return SOME_STUDENTS if failed else OK


def cmd_report(args: argparse.Namespace) -> int:
    from rnn_grader.autograde.report import class_results, status_table, write_report
    from rnn_grader.lms.course import load_settings

    root = _course(args)
    results = class_results(root, args.assignment, load_settings(root).db_url)
    if not results:
        raise CommandError(f"no submissions of {args.assignment!r} in {root / 'submitted'}")
    folder = root / "grading-report" / args.assignment
    paths = write_report(results, folder)
    print(status_table(results))
    print(f"report: {paths['summary.txt'].parent}")
    return OK


def cmd_written(args: argparse.Namespace) -> int:
    from rnn_grader.lms.course import load_settings, written_status

    root = _course(args)
    rows = written_status(root, args.assignment, load_settings(root))
    pending = [r for r in rows if r.pending]
    width = max([len("student")] + [len(r.student) for r in rows])
    print(f"{'student':<{width}}  graded  pending")
    for r in rows:
        print(f"{r.student:<{width}}  {r.graded:>6}  {', '.join(r.pending)}")
    print(f"{len(rows) - len(pending)} of {len(rows)} submissions fully graded")
    if pending:
        print("grade the rest in formgrader: PATH=$PWD/.venv/bin:$PATH jupyter lab")
    return OK


def cmd_feedback(args: argparse.Namespace) -> int:
    from rnn_grader.feedback.generate import generate_feedback

    root = _course(args)
    try:
        bundle, files, failed = generate_feedback(
            root, args.assignment, progress=not args.no_progress
        )
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    print(f"{len(files)} feedback files; for the LMS's re-upload: {bundle.relative_to(root)}")
    for student, why in failed.items():
        print(f"no feedback for {student}: {why}")
    return SOME_STUDENTS if failed else OK


def cmd_grades(args: argparse.Namespace) -> int:
    from rnn_grader.lms.course import export_grades

    root = _course(args)
    try:
        out, rows = export_grades(root, args.assignment, include_ungraded=args.include_ungraded)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    pending = [r for r in rows if r.needs_manual_grade]
    late = [r for r in rows if r.late_percent or r.late]
    print(f"wrote {out.relative_to(root)}: {len(rows)} submissions")
    if pending:
        what = "exported with the points so far" if args.include_ungraded else "left blank"
        print(f"{len(pending)} still need grading (formgrader), {what}:")
        print("\n".join(f"  {r.user_id}  {r.name}" for r in pending))
    if late:
        print(f"{len(late)} submitted late: " + ", ".join(r.user_id for r in late))
    for r in late:
        print(f"  {r.user_id} {r.name}: {r.late_rule}")
    print(f"details, with the late policy applied: {out.parent.relative_to(root) / 'summary.csv'}")
    return OK


def cmd_similarity(args: argparse.Namespace) -> int:
    from rnn_grader.similarity import similarity_report

    root = _course(args)
    try:
        report = similarity_report(
            root, args.assignment, threshold=args.threshold, out=args.out and Path(args.out)
        )
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    for pair in report.flagged:
        print(f"{pair.score:6.1%}  {pair.first}  {pair.second}")
    print(f"{len(report.flagged)} pairs above {args.threshold:.0%}; report: {report.html}")
    return OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnn-course",
        description="Every command an instructor runs in a term, in the course root.",
        epilog="Exit status: 0 done, 1 some students could not be handled, 2 instructor error.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--course-dir", default=".", help="course root (default: the current one)")

    def add(name: str, run: Callable[[argparse.Namespace], int], text: str, **kw):
        p = sub.add_parser(name, parents=[common], help=text, description=text, **kw)
        p.set_defaults(run=run)
        return p

    s = add("secret", cmd_secret, "create the course secret (once per course)")
    s.add_argument("--force", action="store_true", help="replace an existing secret")
    r = add("release", cmd_release, "release student notebooks and their self-check files")
    r.add_argument("assignments", nargs="*", help="default: every assignment")
    r.add_argument("--no-generate", action="store_true", help="skip nbgrader generate_assignment")
    c = add("collect", cmd_collect, "import the LMS download of an assignment into submitted/")
    c.add_argument("assignment")
    c.add_argument("--exchange", action="store_true", help="collect from nbgrader's exchange")
    for name in ("autograde", "grade"):
        g = add(
            name,
            cmd_autograde,
            "autograde the submissions that changed since they were graded, in sandboxes",
        )
        g.add_argument("assignment")
        g.add_argument("--force", action="store_true", help="regrade every matching submission")
        g.add_argument(
            "--jobs",
            type=int,
            default=os.cpu_count() or 1,
            help="parallel processes (default: cores)",
        )
        g.add_argument("--students", default="*", help="glob over student ids (default: all)")
        g.add_argument("--scheduler", default=None, help="Dask scheduler (tls://host:8786)")
        g.add_argument("--tls-ca-file", default=None, help="Dask TLS: CA certificate (PEM)")
        g.add_argument("--tls-cert", default=None, help="Dask TLS: this client's certificate")
        g.add_argument("--tls-key", default=None, help="Dask TLS: this client's private key")
        g.add_argument(
            "--allow-insecure-tcp",
            action="store_true",
            help="allow a plain tcp:// scheduler on another host (anyone reaching it runs "
            "code here)",
        )
        g.add_argument(
            "--unsafe-no-sandbox",
            action="store_true",
            help="run student code WITHOUT bubblewrap (only where it cannot work)",
        )
        g.add_argument("--report-dir", default=None, help="default: grading-report/<assignment>")
        g.add_argument("--no-progress", action="store_true", help="no progress bar")
    w = add("written", cmd_written, "which written answers still need grading")
    w.add_argument("assignment")
    f = add("feedback", cmd_feedback, "HTML feedback for every graded student, named for the LMS")
    f.add_argument("assignment")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    e = add("grades", cmd_grades, "the LMS's gradebook import, with the late policy applied")
    e.add_argument("assignment")
    e.add_argument(
        "--include-ungraded",
        action="store_true",
        help="export submissions whose written answers are not graded yet",
    )
    m = add("similarity", cmd_similarity, "report similar answer cells, the solutions included")
    m.add_argument("assignment")
    m.add_argument("--threshold", type=float, default=0.5, help="flag pairs above (default 0.5)")
    m.add_argument("--out", default=None, help="default: exports/<assignment>/similarity.html")
    p = add("report", cmd_report, "write the class report from the gradebook, without grading")
    p.add_argument("assignment")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rnn-course`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return INSTRUCTOR


if __name__ == "__main__":
    sys.exit(main())
