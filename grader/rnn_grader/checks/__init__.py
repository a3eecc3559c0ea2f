"""The course's checks, in the interface the trusted grader loads.

This module is ``TrustedExecute.grading_package``.

A grading package exposes ``cases(name, *, hidden, secret)``, ``expected(name, case)``,
``mistakes(name, case)``, ``compare(name, outputs, expected, *, case_label, hidden,
mistakes)``, ``call(name)`` (what the sandboxed driver's ``run`` receives), ``DRIVERS_PATH``
(a self-contained NumPy file with ``run(call, namespace, case)``), ``DEPENDENCIES`` and
``sandbox_files(assignment)`` (the public data the self-check reads beside itself), and
optionally ``time_factor(name)`` (how many check limits a case of ``name`` may take).
Everything here comes from one registry, :mod:`rnn_grader.checks.registry`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnn_grader.checks.base import wrong_error
from rnn_grader.checks.registry import ASSIGNMENTS, CHECKS, DEPENDENCIES, NAMES, get
from rnn_grader.student import selfcheck

DRIVERS_PATH = Path(selfcheck.__file__).resolve()

__all__ = [
    "ASSIGNMENTS",
    "CHECKS",
    "DEPENDENCIES",
    "DRIVERS_PATH",
    "NAMES",
    "call",
    "cases",
    "compare",
    "expected",
    "mistakes",
    "sandbox_files",
    "time_factor",
]


def cases(name: str, *, hidden: bool, secret: bytes | None = None) -> list[dict[str, Any]]:
    """Public inputs of check ``name``, or the hidden ones drawn from the course ``secret``."""
    return get(name).cases(hidden=hidden, secret=secret)


def expected(name: str, case: dict[str, Any]) -> dict[str, Any]:
    """Reference outputs of check ``name`` on ``case``."""
    return get(name).expected(case)


def mistakes(name: str, case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Outputs of the known mistakes of check ``name`` on ``case``, keyed by their hint."""
    return get(name).mistakes(case)


def call(name: str) -> dict[str, Any]:
    """How the driver calls the student's functions for check ``name`` (plain data)."""
    return get(name).call


def time_factor(name: str) -> float:
    """How many check time limits one case of check ``name`` may take (training checks)."""
    return float(get(name).call.get("time_factor", 1))


def compare(
    name: str,
    outputs: dict[str, Any],
    expected: dict[str, Any],
    *,
    case_label: str,
    hidden: bool = False,
    mistakes: dict[str, dict[str, Any]] | None = None,
    inputs: dict[str, Any] | None = None,
) -> None:
    """Raise ``AssertionError`` with the self-check's message when ``outputs`` are wrong.

    For hidden cases the message names what differs but shows no value of the case; for
    public ones the case's ``inputs`` give the sizes that say where an output differs. A
    case that must raise passes only with the error the check requires
    (:func:`~rnn_grader.checks.base.wrong_error`).
    """
    if isinstance(outputs, dict) and "raised" in outputs and "raised" in expected:
        problem = wrong_error(str(outputs["raised"]), expected)
        if problem:
            raise selfcheck.CheckFailed(selfcheck.wrap(f"{name} ({case_label}): {problem}"))
    selfcheck.compare(
        name,
        outputs,
        expected,
        case_label=case_label,
        hint=get(name).hint,
        mistakes=mistakes,
        show_values=not hidden,
        sizes=selfcheck.sizes_of(inputs) if inputs is not None and not hidden else None,
    )


def sandbox_files(assignment: str) -> dict[str, bytes]:
    """Files beside the drivers in the sandbox: ``public_checks.json``, as students have it.

    With it, a student's own ``check(...)`` call in a cell runs in the sandbox as it does
    on their laptop.
    """
    from rnn_grader import release

    return {selfcheck.DATA_FILE: release.dumps(release.public_data(assignment)).encode()}
