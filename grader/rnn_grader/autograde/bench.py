"""Benchmark: trusted grading (1 and 2 jobs) against stock in-kernel ``nbgrader autograde``.

``python -m rnn_grader.autograde.bench [--submissions M] [--assignment A]`` copies the
course (``nbgrader_config.py``, source and release folders) into a temporary directory,
creates M synthetic submissions (a third correct, a third blank, a third with one answer
broken), grades them with the trusted back end serially and with two jobs, then with stock
nbgrader (the notebook executed in a kernel), and prints seconds per notebook and the
speed-up. Uses the ``rnn-course grade`` code path; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

SOLUTION_RE = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.M)


def _dirs(course: Path) -> tuple[str, str]:
    from traitlets.config.loader import PyFileConfigLoader

    c = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    cd = c.get("CourseDirectory", {})
    return cd.get("source_directory", "source"), cd.get("release_directory", "release")


def make_course(course: Path, dest: Path, assignment: str, *, trusted: bool) -> Path:
    """Copy the course's config and notebooks to ``dest`` and release ``assignment``."""
    source, release = _dirs(course)
    dest.mkdir(parents=True)
    shutil.copy(course / "nbgrader_config.py", dest / "course_config.py")
    shutil.copytree(course / source / assignment, dest / source / assignment)
    lines = [
        "c = get_config()",
        "load_subconfig('course_config.py')",
        f"c.CourseDirectory.root = {str(dest)!r}",
        "c.CourseDirectory.db_url = 'sqlite:///' + " + repr(str(dest / "gradebook.db")),
        "from nbgrader.converters.autograde import Autograde",
        "c.Autograde.autograde_preprocessors = Autograde.autograde_preprocessors.default()",
        "c.Autograde.sanitize_preprocessors = Autograde.sanitize_preprocessors.default()",
    ]
    if trusted:
        lines += ["from rnn_grader.autograde import configure", "configure(c)"]
    (dest / "nbgrader_config.py").write_text("\n".join(lines) + "\n")
    _nbgrader(dest, "generate_assignment", assignment, "--force")
    del release
    return dest


def _nbgrader(root: Path, *args: str) -> float:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    t0 = time.perf_counter()
    subprocess.run(["nbgrader", *args], cwd=root, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def submissions(root: Path, assignment: str, m: int) -> None:
    """Write ``m`` submissions: correct, blank and one-answer-broken, in turn."""
    source, release = _dirs(root)
    src = nbformat.read(root / source / assignment / f"{assignment}.ipynb", as_version=4)
    answers = {
        c.metadata["nbgrader"]["grade_id"]: SOLUTION_RE.sub("", c.source)
        for c in src.cells
        if c.metadata.get("nbgrader", {}).get("solution")
        and not c.metadata["nbgrader"].get("grade")
        and c.cell_type == "code"
    }
    for i in range(m):
        nb = nbformat.read(root / release / assignment / f"{assignment}.ipynb", as_version=4)
        kind = ("correct", "blank", "broken")[i % 3]
        broken_one = sorted(answers)[i % len(answers)] if answers else None
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in answers and kind != "blank":
                cell.source = answers[gid]
                if kind == "broken" and gid == broken_one:
                    cell.source += "\n\n" + _breaker(gid)
        folder = root / "submitted" / f"s{i:03d}_{kind}" / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")


def _breaker(name: str) -> str:
    """Redefine ``name`` to return a wrong result of the right kind."""
    return (
        f"_orig_{name} = {name}\n"
        f"def {name}(*args, **kwargs):\n"
        f"    out = _orig_{name}(*args, **kwargs)\n"
        "    if isinstance(out, tuple):\n"
        "        return tuple(o * 1.5 if hasattr(o, 'shape') else o for o in out)\n"
        "    return out * 1.5 if hasattr(out, 'shape') else out\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=6)
    parser.add_argument("--assignment", default="rnn_bptt")
    parser.add_argument("--course-dir", default=".")
    parser.add_argument("--skip-stock", action="store_true", help="only the trusted back end")
    args = parser.parse_args(argv)
    from rnn_grader.autograde.runner import grade

    course = Path(args.course_dir).resolve()
    m, a = args.submissions, args.assignment
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnng-bench-") as tmp:
        for label, jobs in (("trusted, 1 job", 1), ("trusted, 2 jobs", 2)):
            root = make_course(course, Path(tmp) / f"t{jobs}", a, trusted=True)
            submissions(root, a, m)
            t0 = time.perf_counter()
            results = grade(root, a, jobs=jobs, progress=False)
            seconds = time.perf_counter() - t0
            statuses = sorted({r.status for r in results})
            rows.append((label, seconds, statuses))
        if not args.skip_stock:
            root = make_course(course, Path(tmp) / "stock", a, trusted=False)
            submissions(root, a, m)
            rows.append(("stock nbgrader (in-kernel)", _nbgrader(root, "autograde", a), []))
    print(f"{m} submissions of {a!r}, {os.cpu_count()} cores")
    for label, seconds, statuses in rows:
        extra = f"  statuses: {', '.join(statuses)}" if statuses else ""
        print(f"  {label:<28} {seconds:7.2f} s total  {seconds / m:6.3f} s/notebook{extra}")
    speedup = rows[0][1] / rows[1][1]
    print(f"  speed-up of 2 jobs over 1: {speedup:.2f}x")
    if not args.skip_stock:
        print(f"  trusted (2 jobs) vs stock: {rows[2][1] / rows[1][1]:.2f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
