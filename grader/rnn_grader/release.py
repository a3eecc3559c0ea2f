"""Write what a student needs beside each released notebook: the self-check and its data.

``python -m rnn_grader.release [ASSIGNMENT ...]`` (run by ``make release`` after
``nbgrader generate_assignment``) writes into ``assignments/<assignment>/``:

* ``selfcheck.py``, a copy of :mod:`rnn_grader.student.selfcheck` (NumPy only);
* ``public_checks.json``: for every check of the assignment, how its functions are called,
  its general hint, and its public cases with inputs, expected outputs and the outputs of
  known mistakes, all computed here from the reference.

No hidden case and no reference code leaves this package.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rnn_grader.checks import registry
from rnn_grader.student import selfcheck

FORMAT = 1


def public_data(assignment: str) -> dict[str, Any]:
    """The public-check data of ``assignment`` as JSON-ready plain data."""
    if assignment not in registry.ASSIGNMENTS:
        known = ", ".join(registry.ASSIGNMENTS)
        raise ValueError(f"assignment must be one of {known}; got {assignment!r}")
    checks = {}
    for name in registry.ASSIGNMENTS[assignment]:
        check = registry.get(name)
        cases = [
            {
                "inputs": selfcheck.encode(case),
                "expected": selfcheck.encode(check.expected(case)),
                "mistakes": selfcheck.encode(check.mistakes(case)),
            }
            for case in check.cases(hidden=False)
        ]
        checks[name] = {"call": check.call, "hint": check.hint, "cases": cases}
    return {"format": FORMAT, "assignment": assignment, "checks": checks}


def dumps(data: dict[str, Any]) -> str:
    """Deterministic JSON (floats written exactly, keys in order)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=True) + "\n"


def write(assignment: str, release_dir: Path) -> list[Path]:
    """Write ``selfcheck.py`` and ``public_checks.json`` into ``release_dir/<assignment>``."""
    folder = Path(release_dir) / assignment
    folder.mkdir(parents=True, exist_ok=True)
    data_path = folder / selfcheck.DATA_FILE
    data_path.write_text(dumps(public_data(assignment)), encoding="utf-8")
    code_path = folder / "selfcheck.py"
    shutil.copyfile(selfcheck.__file__, code_path)
    return [code_path, data_path]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rnn_grader.release", description=__doc__.splitlines()[0]
    )
    parser.add_argument("assignments", nargs="*", help="default: every assignment")
    parser.add_argument("--release-dir", default="assignments", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one reduction order, so the data does not change with the machine
    for assignment in args.assignments or list(registry.ASSIGNMENTS):
        for path in write(assignment, args.release_dir):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
