"""The trusted side of a grading package: cases, expected values, comparison, drivers.

A grading package (``rnn_course.grading`` for this course) provides the modules
``cases`` (``cases(name, *, hidden) -> list[dict]``), ``expected``
(``expected(name, case) -> dict``), ``compare`` (``compare(name, outputs, expected, *,
case_label)`` raising ``AssertionError``) and ``drivers.py``, a self-contained NumPy file
whose ``run(name, namespace, case)`` calls the student's functions. Only ``drivers.py``
enters the sandbox; cases and expected values are computed once per process.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Case:
    """One input of a check, with its trusted expected outputs."""

    label: str  # e.g. "public case 2", shown in messages
    hidden: bool
    inputs: dict[str, Any]
    expected: dict[str, Any]


class GradingSuite:
    """Cases and expected values of every check, computed once and cached."""

    def __init__(self, package: str) -> None:
        self.package = package
        self._cases = importlib.import_module(f"{package}.cases")
        self._expected = importlib.import_module(f"{package}.expected")
        self._compare = importlib.import_module(f"{package}.compare")
        drivers = importlib.import_module(f"{package}.drivers")
        self.drivers_path = Path(drivers.__file__).resolve()
        self.dependencies: dict[str, list[str]] = dict(getattr(drivers, "DEPENDENCIES", {}))

    @functools.cache  # noqa: B019 - one suite per package, kept for the process lifetime
    def cases(self, name: str) -> tuple[Case, ...]:
        """Public then hidden cases of check ``name`` with expected outputs."""
        out: list[Case] = []
        for hidden in (False, True):
            for i, inputs in enumerate(self._cases.cases(name, hidden=hidden), start=1):
                label = f"{'hidden' if hidden else 'public'} case {i}"
                out.append(Case(label, hidden, inputs, self._expected.expected(name, inputs)))
        return tuple(out)

    def compare(self, name: str, outputs: dict[str, Any], case: Case) -> None:
        """Raise ``AssertionError`` with the package's message when ``outputs`` are wrong."""
        self._compare.compare(name, outputs, case.expected, case_label=case.label)


@functools.cache
def load_suite(package: str) -> GradingSuite:
    """The suite of ``package``, imported once per process."""
    return GradingSuite(package)
