"""The trusted side of a grading package: cases, expected values, comparison, driver.

A grading package (:mod:`rnn_grader.checks` for this course) is one module exposing
``cases(name, *, hidden, secret)``, ``expected(name, case)``, ``mistakes(name, case)``,
``compare(name, outputs, expected, *, case_label, hidden, mistakes)``, ``call(name)``,
``DRIVERS_PATH`` (a self-contained NumPy file whose ``run(call, namespace, case)`` calls the
student's functions) and ``DEPENDENCIES``. Only the driver file enters the sandbox; cases
and expected values are computed once per process.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Case:
    """One input of a check, with its trusted expected outputs."""

    label: str  # e.g. "public case 2", shown in messages
    hidden: bool
    inputs: dict[str, Any]
    expected: dict[str, Any]
    mistakes: dict[str, dict[str, Any]] = field(default_factory=dict)


class GradingSuite:
    """Cases and expected values of every check, computed once and cached."""

    def __init__(self, package: str, secret: bytes) -> None:
        self.package = package
        self.secret = secret
        self.module = importlib.import_module(package)
        self.drivers_path = Path(self.module.DRIVERS_PATH).resolve()
        self.dependencies: dict[str, list[str]] = dict(getattr(self.module, "DEPENDENCIES", {}))

    def call(self, name: str) -> Any:
        """What the driver's ``run`` receives for check ``name``."""
        return self.module.call(name)

    @functools.cache  # noqa: B019 - one suite per package and secret, kept for the process
    def cases(self, name: str) -> tuple[Case, ...]:
        """Public then hidden cases of check ``name`` with expected outputs."""
        mistakes = getattr(self.module, "mistakes", lambda name, case: {})
        out: list[Case] = []
        for hidden in (False, True):
            inputs = self.module.cases(name, hidden=hidden, secret=self.secret)
            for i, case in enumerate(inputs, start=1):
                label = f"{'hidden' if hidden else 'public'} case {i}"
                out.append(
                    Case(
                        label,
                        hidden,
                        case,
                        self.module.expected(name, case),
                        mistakes(name, case),
                    )
                )
        return tuple(out)

    def compare(self, name: str, outputs: dict[str, Any], case: Case) -> None:
        """Raise ``AssertionError`` with the package's message when ``outputs`` are wrong."""
        self.module.compare(
            name,
            outputs,
            case.expected,
            case_label=case.label,
            hidden=case.hidden,
            mistakes=case.mistakes,
            inputs=case.inputs,
        )


@functools.cache
def load_suite(package: str, secret: bytes) -> GradingSuite:
    """The suite of ``package`` for the course ``secret``, built once per process."""
    return GradingSuite(package, secret)
