"""The trusted side of a grading package: cases, expected values, comparison, driver.

A grading package (:mod:`rnn_grader.checks` for this course) is one module exposing
``cases(name, *, hidden, secret)``, ``expected(name, case)``, ``mistakes(name, case)``,
``compare(name, outputs, expected, *, case_label, hidden, mistakes, inputs)``,
``call(name)``, ``DRIVERS_PATH`` (a self-contained NumPy file whose
``run(call, namespace, case)`` calls the student's functions), ``DEPENDENCIES`` and,
optionally, ``sandbox_files(assignment)`` (public data files the drivers read beside
themselves). Only the driver file and those files enter the sandbox; cases and expected
values are computed once per process.

Every failure of the package (a case that cannot be built, a reference that raises, a
comparison that crashes) is the grader's, never a student's: it raises
:class:`~rnn_grader.autograde.errors.GraderError`, which stops grading.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnn_grader.autograde.errors import GraderError
from rnn_grader.autograde.protocol import encode
from rnn_grader.autograde.sandbox import prepare_lib
from rnn_grader.student.selfcheck import CRITERION_KEY


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
        try:
            self.module = importlib.import_module(package)
            self.drivers_path = Path(self.module.DRIVERS_PATH).resolve()
            self.dependencies: dict[str, list[str]] = dict(getattr(self.module, "DEPENDENCIES", {}))
        except Exception as exc:
            raise GraderError(
                f"the grading package {package!r} cannot be loaded: {type(exc).__name__}: {exc}"
            ) from exc

    def call(self, name: str) -> Any:
        """What the driver's ``run`` receives for check ``name``."""
        try:
            return self.module.call(name)
        except Exception as exc:
            raise GraderError(f"check {name}: its call cannot be built: {_text(exc)}") from exc

    @functools.cache  # noqa: B019 - one suite per package and secret, kept for the process
    def cases(self, name: str) -> tuple[Case, ...]:
        """Public then hidden cases of check ``name`` with expected outputs."""
        mistakes = getattr(self.module, "mistakes", lambda name, case: {})
        out: list[Case] = []
        for hidden in (False, True):
            what = "hidden cases" if hidden else "public cases"
            try:
                inputs = self.module.cases(name, hidden=hidden, secret=self.secret)
            except Exception as exc:
                raise GraderError(
                    f"check {name}: its {what} cannot be built: {_text(exc)}"
                ) from exc
            for i, case in enumerate(inputs, start=1):
                label = f"{'hidden' if hidden else 'public'} case {i}"
                try:
                    expected = self.module.expected(name, case)
                except Exception as exc:
                    raise GraderError(
                        f"check {name}: the reference fails on {label}: {_text(exc)}"
                    ) from exc
                try:  # a hidden case's message names no mistake
                    known = {} if hidden else mistakes(name, case)
                except Exception as exc:
                    raise GraderError(
                        f"check {name}: the known mistakes fail on {label}: {_text(exc)}"
                    ) from exc
                out.append(Case(label, hidden, case, expected, known))
        return tuple(out)

    def inputs(self, name: str, *, hidden: bool) -> dict[str, Any]:
        """``{"call", "cases", "time_factor"}`` of check ``name`` for one phase (the worker's)."""
        cases = [c.inputs for c in self.cases(name) if c.hidden == hidden]
        return {"call": self.call(name), "cases": cases, "time_factor": self.time_factor(name)}

    def time_factor(self, name: str) -> float:
        """How many check limits a case of ``name`` may take: the package's, else 1."""
        factor = getattr(self.module, "time_factor", None)
        try:
            value = 1.0 if factor is None else float(factor(name))
        except Exception as exc:
            raise GraderError(f"check {name}: its time factor fails: {_text(exc)}") from exc
        if not 0 < value <= 100:
            raise GraderError(f"check {name}: its time factor {value} is not in (0, 100]")
        return value

    def compare(self, name: str, outputs: dict[str, Any], case: Case) -> None:
        """Raise ``AssertionError`` with the package's message when ``outputs`` are wrong.

        Any other exception is the comparison's own failure: ``GraderError``.
        """
        try:
            self.module.compare(
                name,
                outputs,
                case.expected,
                case_label=case.label,
                hidden=case.hidden,
                mistakes=case.mistakes,
                inputs=case.inputs,
            )
        except AssertionError:
            raise
        except Exception as exc:
            raise GraderError(
                f"check {name}: the comparison crashed on {case.label}: {_text(exc)}"
            ) from exc

    @functools.cache  # noqa: B019 - one suite per package and secret, kept for the process
    def lib(self, assignment: str) -> Path:
        """The folder the sandbox mounts: the drivers module and its public data files."""
        files_of = getattr(self.module, "sandbox_files", None)
        try:
            files = files_of(assignment) if files_of is not None else {}
        except Exception as exc:
            raise GraderError(
                f"the sandbox files of {assignment} cannot be built: {_text(exc)}"
            ) from exc
        return prepare_lib(self.drivers_name, self.drivers_path.read_text(), files)

    @property
    def drivers_name(self) -> str:
        """The drivers' module name in the sandbox (its file name without ``.py``)."""
        return self.drivers_path.stem

    def validate(
        self, names: list[str], frame_bytes: int | None = None, phase_bytes: int | None = None
    ) -> None:
        """Build every case of ``names`` and compare each reference with itself.

        Run before any student is graded, so that a broken check stops grading at once.
        With ``frame_bytes`` and ``phase_bytes`` (the protocol's limits), a correct
        submission's outputs must fit them with room to spare: one case in 90% of a frame,
        one phase's cases together in 70% of what a phase may send. Otherwise a correct
        notebook would fail for the grader's own sizes.
        """
        sent = {False: 0, True: 0}  # protocol bytes of a correct notebook per phase
        for name in names:
            self.call(name)
            for case in self.cases(name):
                if CRITERION_KEY in case.expected:  # judged by a criterion: no outputs to echo
                    continue
                if frame_bytes is not None:
                    size = len(encode({"kind": "case", "check": name, "outputs": case.expected}))
                    if size > 0.9 * frame_bytes:
                        raise GraderError(
                            f"check {name}: the outputs of {case.label} take {size} bytes, "
                            f"more than 90% of the protocol's frame of {frame_bytes} bytes"
                        )
                    sent[case.hidden] += size
                try:
                    self.compare(name, case.expected, case)
                except AssertionError as exc:
                    raise GraderError(
                        f"check {name}: the reference fails its own comparison on "
                        f"{case.label}: {exc}"
                    ) from exc
        for hidden, size in sent.items():
            if phase_bytes is not None and size > 0.7 * phase_bytes:
                which = "hidden" if hidden else "public"
                raise GraderError(
                    f"the {which} cases of {', '.join(names)} send {size} bytes, more than "
                    f"70% of the {phase_bytes} bytes a phase may send"
                )


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


@functools.cache
def load_suite(package: str, secret: bytes) -> GradingSuite:
    """The suite of ``package`` for the course ``secret``, built once per process."""
    return GradingSuite(package, secret)
