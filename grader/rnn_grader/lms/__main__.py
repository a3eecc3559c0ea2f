"""``python -m rnn_grader.lms {collect,grades,feedback} <assignment>``, in the course root."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run one step of the LMS round trip; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m rnn_grader.lms", description=__doc__)
    parser.add_argument("command", choices=["collect", "grades", "feedback"])
    parser.add_argument("assignment")
    parser.add_argument("--course-dir", default=".", help="course root (default: .)")
    parser.add_argument(
        "--include-ungraded",
        action="store_true",
        help="grades: export submissions whose written answers are not graded yet",
    )
    args = parser.parse_args(argv)
    root = Path(args.course_dir).resolve()
    if not (root / "nbgrader_config.py").is_file():
        print(f"no nbgrader_config.py in {root}: run this in the course root", file=sys.stderr)
        return 2
    from rnn_grader.lms.course import collect, export_grades, package_feedback

    try:
        if args.command == "collect":
            print(collect(root, args.assignment).table())
        elif args.command == "grades":
            out, rows = export_grades(root, args.assignment, include_ungraded=args.include_ungraded)
            pending = [r for r in rows if r.needs_manual_grade]
            late = [r for r in rows if r.late]
            print(f"wrote {out.relative_to(root)}: {len(rows)} submissions")
            if pending:
                what = "exported with the points so far" if args.include_ungraded else "left blank"
                print(f"{len(pending)} still need manual grading (formgrader), {what}:")
                print("\n".join(f"  {r.user_id}  {r.name}" for r in pending))
            if late:
                print(f"{len(late)} submitted late: " + ", ".join(r.user_id for r in late))
            print(f"details: {out.parent.relative_to(root) / 'summary.csv'}")
        else:
            bundle, files = package_feedback(root, args.assignment)
            print(f"{len(files)} feedback files for upload in {bundle.relative_to(root)}")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
