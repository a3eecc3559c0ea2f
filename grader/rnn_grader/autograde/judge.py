"""Turn what the sandbox returned into a verdict per test cell (trusted side only)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

from rnn_grader.autograde.sandbox import CheckResult
from rnn_grader.autograde.suite import Case, GradingSuite

_CELL_FRAME = re.compile(r'File "<cell (\w+)>"')


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
    result: CheckResult | None,
    suite: GradingSuite,
    cell_errors: dict[str, str],
    stubs: frozenset[str] = frozenset(),
) -> Verdict:
    """Compare every case of check ``name``; the first failing case gives the message."""
    cases = suite.cases(name)
    n_pub = sum(not c.hidden for c in cases)
    n_hid = len(cases) - n_pub
    deps = suite.dependencies.get(name, [name])
    broken = [
        f"the answer cell '{d}' raised {cell_errors[d].strip().splitlines()[-1]}"
        for d in deps
        if cell_errors.get(d)
    ]
    note = (" Note: " + "; ".join(broken) + ".") if broken else ""

    def fail(ename: str, message: str, timed_out: bool = False) -> Verdict:
        return Verdict(name, False, ename, message + note, n_pub, n_hid, timed_out)

    if result is None:
        return fail("RuntimeError", f"{name}: the check did not run")
    if result.failure is not None:
        return fail(result.ename, f"{name}: {result.failure}", result.ename == "TimeoutError")
    if len(result.outputs) != len(cases):
        return fail("RuntimeError", f"{name}: the grading worker returned an incomplete result")
    for case, outputs in zip(cases, result.outputs, strict=True):
        if not isinstance(outputs, dict):
            return fail("AssertionError", f"{name} ({case.label}): no outputs")
        if "error" in outputs and isinstance(outputs.get("error"), str):
            traceback = outputs.get("traceback")
            message = _raised(
                name,
                case,
                outputs["error"],
                traceback if isinstance(traceback, str) else "",
                stubs,
            )
            return fail("AssertionError", message)
        try:
            suite.compare(name, _plain(outputs), case)
        except AssertionError as exc:
            return fail("AssertionError", str(exc) or f"{name} ({case.label}): wrong result")
        except Exception as exc:  # the comparison must never crash the grader
            return fail(
                "AssertionError",
                f"{name} ({case.label}): the outputs could not be compared "
                f"({type(exc).__name__}: {exc})",
            )
    parts = [f"{n_pub} public"] + ([f"{n_hid} hidden"] if n_hid else [])
    return Verdict(name, True, "", f"{name}: all {' and '.join(parts)} cases passed.", n_pub, n_hid)


def _raised(
    name: str, case: Case, error: str, traceback: str = "", stubs: frozenset[str] = frozenset()
) -> str:
    """What to say when the student's code raised: the whole message only for public cases.

    A blank answer (the released stub raises ``NotImplementedError``) is said in words:
    the tested function when its own cell is still the stub (``stubs``), else the function
    whose cell raised (from the traceback's ``<cell f>`` frames). A
    message raised on a hidden case may carry its values (``raise ValueError(repr(x))``),
    and hidden cases stay secret, so only the exception's type is shown.
    """
    kind = error.split(":", 1)[0].strip() or "an exception"
    if kind == "NotImplementedError":
        cells = _CELL_FRAME.findall(traceback)
        stub = cells[-1] if cells else name
        if stub == name or name in stubs:
            return f"{name} ({case.label}): you have not implemented {name} yet"
        return f"{name} ({case.label}): {name} calls {stub}, which you have not implemented yet"
    if not case.hidden:
        return f"{name} ({case.label}): calling your code raised {error}"
    return (
        f"{name} ({case.label}): calling your code raised {kind} (the message is not shown: "
        "it could reveal the hidden inputs). Run the public checks, and try other sizes "
        "than theirs"
    )


def _plain(outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs as the worker sent them (already plain data; a shallow copy)."""
    return dict(outputs)


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
            out[gid] = Verdict(
                verdict.name,
                False,
                verdict.ename,
                verdict.message + note,
                verdict.n_public,
                verdict.n_hidden,
                verdict.timed_out,
            )
    return out


_STUB = re.compile(r"^\s*raise\s+NotImplementedError\b", re.M)


def stub_answers(answers: dict[str, str]) -> frozenset[str]:
    """The answer cells (by grade id) that still hold the released stub."""
    return frozenset(gid for gid, source in answers.items() if _STUB.search(source or ""))
