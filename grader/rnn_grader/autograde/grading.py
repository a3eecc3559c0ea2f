"""Grade one notebook: its steps in two sandboxed phases, then a verdict per test cell.

1. The **public phase** runs the notebook's steps with each check's public cases. Its
   process never holds a hidden input, so what it says (the student's exceptions and
   tracebacks) may appear in feedback, as it does in the student's own ``check()``.
2. The **hidden phase** runs the same steps in fresh workers with the hidden cases. Its
   process sends no text; cells that stopped a public worker are left out from the start.

The verdicts are decided here, on the trusted side (:mod:`rnn_grader.autograde.judge`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rnn_grader.autograde.judge import (
    Verdict,
    add_dependency_notes,
    cell_notes,
    judge,
    stub_answers,
)
from rnn_grader.autograde.phase import PhaseReport, run_phase
from rnn_grader.autograde.sandbox import SandboxLimits
from rnn_grader.autograde.session import Step
from rnn_grader.autograde.suite import GradingSuite


@dataclass(frozen=True)
class Phases:
    """What a notebook's two phases produced."""

    public: PhaseReport
    hidden: PhaseReport

    @property
    def seconds(self) -> float:
        return self.public.seconds + self.hidden.seconds

    @property
    def runs(self) -> int:
        return self.public.runs + self.hidden.runs

    @property
    def memory_peak(self) -> int | None:
        peaks = [p for p in (self.public.memory_peak, self.hidden.memory_peak) if p is not None]
        return max(peaks) if peaks else None


def checks_of(steps: list[Step]) -> list[str]:
    """The checks the steps run, in order."""
    return [s.check for s in steps if s.kind == "check"]


def run_phases(
    steps: list[Step],
    suite: GradingSuite,
    lib: Path,
    limits: SandboxLimits,
    unsafe: bool = False,
) -> Phases:
    """Run both phases of a notebook here."""
    names = checks_of(steps)
    public = {n: suite.inputs(n, hidden=False) for n in names}
    hidden = {n: suite.inputs(n, hidden=True) for n in names}
    return phases_for(steps, public, hidden, lib, suite.drivers_name, limits, unsafe)


def phases_for(
    steps: list[Step],
    public: dict[str, dict],
    hidden: dict[str, dict],
    lib: Path,
    drivers: str,
    limits: SandboxLimits,
    unsafe: bool,
) -> Phases:
    """Both phases from plain inputs (what a remote sandbox host runs)."""
    first = run_phase(
        steps, public, mode="public", lib=lib, drivers=drivers, limits=limits, unsafe=unsafe
    )
    second = run_phase(
        steps,
        hidden,
        mode="hidden",
        lib=lib,
        drivers=drivers,
        limits=limits,
        unsafe=unsafe,
        skip=frozenset(first.skipped),
    )
    return Phases(first, second)


def verdicts(steps: list[Step], phases: Phases, suite: GradingSuite) -> dict[str, Verdict]:
    """Test grade id -> verdict, with notes on the cells and checks each one relies on."""
    answers = {s.id: s.source for s in steps if s.kind == "answer"}
    stubs = stub_answers(answers)
    out: dict[str, Verdict] = {}
    for step in steps:
        if step.kind != "check":
            continue
        relied = suite.dependencies.get(step.check, [step.check])
        verdict = judge(
            step.check,
            phases.public.checks.get(step.check),
            phases.hidden.checks.get(step.check),
            suite,
            stubs=stubs,
        )
        if not verdict.passed:
            note = cell_notes(steps, phases.public, step.id, relied)
            verdict = Verdict(
                verdict.name,
                False,
                verdict.ename,
                verdict.message + note,
                verdict.n_public,
                verdict.n_hidden,
                verdict.timed_out,
            )
        out[step.id] = verdict
    return add_dependency_notes(out, answers, suite.dependencies)
