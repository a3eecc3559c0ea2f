"""Turn what the two phases returned into a verdict per test cell (trusted side only).

Public cases ran in a process that never held a hidden input, so their messages are as
rich as the self-check's: what differs and where, the student's own exception. A hidden
case's message is one of a fixed list (:data:`HIDDEN_VERDICTS`), decided here from the
outputs and the expected values; no text from the hidden phase's process, and nothing
that depends on a hidden input beyond that choice, reaches the student.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rnn_grader.autograde.phase import PhaseReport
from rnn_grader.autograde.protocol import Unsupported
from rnn_grader.autograde.session import CaseResult, CheckResult, Failure, Step
from rnn_grader.autograde.suite import Case, GradingSuite
from rnn_grader.autograde.text import printable
from rnn_grader.student import selfcheck

_CELL_FRAME = re.compile(r'File "<cell (\w+)>"')
#: Everything a student may read about a failing hidden case, by cause.
HIDDEN_VERDICTS = {
    "raised": "your code raised an exception",
    "memory": "your code exceeded the memory limit",
    "structure": "your code returned the wrong type or shape",
    "timeout": "your code exceeded the time limit",
    "budget": "your code exceeded the time limit of the whole notebook",
    "crash": "your code stopped the grading worker",
    "protocol": "your code stopped the grading worker",
    "output": "your code printed more than the output limit",
}
HIDDEN_ADVICE = (
    " Hidden cases have other sizes and values than the public ones; their inputs, and "
    "anything your code says about them, are never shown."
)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one test cell."""

    name: str  # the graded function, e.g. "rnn_backward"
    passed: bool
    ename: str  # exception class shown in the notebook ("" when passed)
    message: str  # the compare message, or the success line
    n_public: int
    n_hidden: int
    timed_out: bool = False


def judge(
    name: str,
    public: CheckResult | None,
    hidden: CheckResult | None,
    suite: GradingSuite,
    note: str = "",
    stubs: frozenset[str] = frozenset(),
) -> Verdict:
    """The verdict of check ``name``: its first failing public case, else hidden case."""
    cases = suite.cases(name)
    pub = [c for c in cases if not c.hidden]
    hid = [c for c in cases if c.hidden]

    def fail(ename: str, message: str, timed_out: bool = False) -> Verdict:
        return Verdict(name, False, ename, message + note, len(pub), len(hid), timed_out)

    for group, result in ((pub, public), (hid, hidden)):
        if not group:
            continue
        if result is None:
            raise _missing(name, group[0])
        for k, case in enumerate(group):
            if k < len(result.cases):
                message = (
                    _hidden_case(name, case, result.cases[k], suite)
                    if case.hidden
                    else _public_case(name, case, result.cases[k], suite, stubs)
                )
                if message:
                    return fail("AssertionError", message)
            elif result.failure is not None:
                return _stopped(name, case, result.failure, suite, fail)
            else:
                raise _missing(name, case)
    parts = [f"{len(pub)} public"] + ([f"{len(hid)} hidden"] if hid else [])
    return Verdict(
        name, True, "", f"{name}: all {' and '.join(parts)} cases passed.", len(pub), len(hid)
    )


def _missing(name: str, case: Case) -> Exception:
    from rnn_grader.autograde.errors import GraderError

    return GraderError(f"check {name}: the grading worker returned nothing for {case.label}")


def _stopped(name: str, case: Case, failure: Failure, suite: GradingSuite, fail: Any) -> Verdict:
    timed_out = failure.kind in ("timeout", "budget")
    ename = "TimeoutError" if timed_out else "RuntimeError"
    if case.hidden:
        return fail(ename, f"{name} ({case.label}): {HIDDEN_VERDICTS[failure.kind]}.", timed_out)
    return fail(ename, f"{name} ({case.label}): {failure.detail}", timed_out)


def _public_case(
    name: str, case: Case, result: CaseResult, suite: GradingSuite, stubs: frozenset[str]
) -> str:
    """The message of a failing public case ("" when it passed)."""
    if result.outputs is None:
        if result.error:
            return _raised(name, case, printable(result.error), result.traceback, stubs)
        return f"{name} ({case.label}): your code {HIDDEN_VERDICTS[result.category or 'raised']}"
    outputs = {k: _printable_values(v) for k, v in result.outputs.items()}
    try:
        suite.compare(name, outputs, case)
    except AssertionError as exc:
        return printable(str(exc), 4000) or f"{name} ({case.label}): wrong result"
    return ""


def _printable_values(value: Any) -> Any:
    """Strings a student's code returned, made safe to print (other values unchanged)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, Unsupported):
        return Unsupported(printable(value.type_name, 100))
    return value


def _hidden_case(name: str, case: Case, result: CaseResult, suite: GradingSuite) -> str:
    """The fixed message of a failing hidden case ("" when it passed)."""
    prefix = f"{name} ({case.label}): "
    if result.outputs is None:
        return prefix + HIDDEN_VERDICTS[result.category or "raised"] + "." + HIDDEN_ADVICE
    try:
        suite.compare(name, result.outputs, case)
    except AssertionError:
        pass
    else:
        return ""
    return prefix + _difference(result.outputs, case.expected) + "." + HIDDEN_ADVICE


def _difference(outputs: dict[str, Any], expected: dict[str, Any]) -> str:
    """Which of the contract's outputs differ, or that the structure is wrong."""
    if "raised" in expected:
        return "your code did not raise the required error"
    if "raised" in outputs or outputs.get("__raised__") is True:
        return HIDDEN_VERDICTS["raised"]
    if "__error__" in outputs:  # the driver found the wrong structure
        return HIDDEN_VERDICTS["structure"]
    if selfcheck.CRITERION_KEY in expected:
        problem = selfcheck.criterion_problem(outputs, expected[selfcheck.CRITERION_KEY])
        return selfcheck.CRITERION_VERDICTS[problem[0]] if problem else "your outputs differ"
    differing = []
    for key, want in expected.items():
        got = outputs.get(key)
        if isinstance(want, dict):
            if not isinstance(got, dict) or sorted(got) != sorted(want):
                return HIDDEN_VERDICTS["structure"]
            pairs = [(f"{key}[{k!r}]", got[k], w) for k, w in want.items()]
        else:
            pairs = [(key, got, want)]
        for label, g, w in pairs:
            state = _close(g, w)
            if state == "structure":
                return HIDDEN_VERDICTS["structure"]
            if state == "differs":
                differing.append(label)
    if not differing:
        return "your outputs differ from the expected ones"
    if len(differing) == 1:
        return f"output {differing[0]} differs"
    return f"outputs {', '.join(differing[:-1])} and {differing[-1]} differ"


def _close(got: Any, want: Any) -> str:
    """``"ok"``, ``"differs"`` or ``"structure"`` for one output against its expected value."""
    if isinstance(want, np.ndarray):
        if not isinstance(got, np.ndarray) or got.shape != want.shape or got.dtype != want.dtype:
            return "structure"
        finite = bool(np.all(np.isfinite(got)))
        return "ok" if finite and np.allclose(got, want, rtol=1e-6, atol=1e-8) else "differs"
    scalar_array = isinstance(got, np.ndarray) and got.shape == () and got.dtype.kind in "fiu"
    number = isinstance(got, int | float | np.number) and not isinstance(got, bool)
    if not (number or scalar_array):
        return "structure"
    return "ok" if np.isclose(float(got), float(want), rtol=1e-6, atol=1e-8) else "differs"


def _raised(
    name: str, case: Case, error: str, traceback: str = "", stubs: frozenset[str] = frozenset()
) -> str:
    """What to say when the student's code raised on a public case.

    A blank answer (the released stub raises ``NotImplementedError``) is said in words:
    the tested function when its own cell is still the stub (``stubs``), else the function
    whose cell raised (from the traceback's ``<cell f>`` frames).
    """
    kind = error.split(":", 1)[0].strip() or "an exception"
    if kind == "NotImplementedError":
        cells = _CELL_FRAME.findall(traceback)
        stub = cells[-1] if cells else name
        if stub == name or name in stubs:
            return f"{name} ({case.label}): you have not implemented {name} yet"
        return f"{name} ({case.label}): {name} calls {stub}, which you have not implemented yet"
    if kind == "MemoryError":
        return f"{name} ({case.label}): your code exceeded the memory limit ({error})"
    return f"{name} ({case.label}): calling your code raised {error}"


def cell_notes(steps: list[Step], public: PhaseReport, before: str, relied: list[str]) -> str:
    """What went wrong in the cells a check relies on, from the public phase only.

    ``relied`` names the answer cells the check relies on; every other cell before the
    test cell (``before``) that a graded function can see and that raised is named by its
    number.
    """
    broken = []
    position = {s.id: i for i, s in enumerate(steps)}
    end = position.get(before, len(steps))
    for step in steps[:end]:
        if step.kind == "check" or step.optional:
            continue
        if step.id in public.skipped:
            what = public.skipped[step.id].detail
        elif public.cells.get(step.id):
            what = "raised " + printable(public.cells[step.id].strip().splitlines()[-1], 300)
        else:
            continue
        if step.kind == "answer" and step.id in relied:
            broken.append(f"the answer cell '{step.id}' {what}")
        elif step.kind == "cell":
            broken.append(f"your cell {step.number} (before the test cell) {what}")
    return (" Note: " + "; ".join(broken[:3]) + ".") if broken else ""


def add_dependency_notes(
    verdicts: dict[str, Verdict], answers: dict[str, str], dependencies: dict[str, list[str]]
) -> dict[str, Verdict]:
    """Point failing checks at the failing functions they rely on, directly or not.

    A check relies on the functions its call runs (the forward of a backward check), on
    the graded functions that the student's answer cell names (``lstm_backward`` calling
    ``lstm_step_backward``), and on what those rely on in turn. When one of them fails its
    own check, the failing check's message says so: that is where to look first.

    Args:
        verdicts: test grade id -> verdict, as judged.
        answers: answer cell grade id (the function's name) -> the student's source.
        dependencies: check name -> the functions its call runs.
    """
    graded = {v.name for v in verdicts.values()}
    failing = {v.name for v in verdicts.values() if not v.passed}

    def direct(name: str) -> set[str]:
        relied = set(dependencies.get(name, []))
        try:
            tree = ast.parse(answers.get(name, ""))
            relied |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        except (SyntaxError, ValueError, RecursionError):
            pass
        return (relied & graded) - {name}

    out = dict(verdicts)
    for gid, verdict in verdicts.items():
        if verdict.passed:
            continue
        seen: set[str] = set()
        todo = list(direct(verdict.name))
        while todo:
            dep = todo.pop()
            if dep not in seen:
                seen.add(dep)
                todo.extend(direct(dep))
        culprits = sorted((seen & failing) - {verdict.name})
        if culprits:
            names = " and ".join(f"your {c} (test_{c})" for c in culprits)
            verb = "fails its own check" if len(culprits) == 1 else "fail their own checks"
            note = f" Note: this check relies on {names}, which {verb}: fix that first."
            out[gid] = replace(verdict, message=verdict.message + note)
    return out


_STUB = re.compile(r"^\s*raise\s+NotImplementedError\b", re.M)


def stub_answers(answers: dict[str, str]) -> frozenset[str]:
    """The answer cells (by grade id) that still hold the released stub."""
    return frozenset(gid for gid, source in answers.items() if _STUB.search(source or ""))
