"""One phase of grading a notebook: its steps in sandboxed workers, restarted past failures.

A notebook is graded in two phases (see :mod:`rnn_grader.autograde.grading`): the public
cases, then the hidden ones, each in workers of its own. Within a phase a worker runs
every step in notebook order. When a step stops the worker (it runs past its time limit,
kills the worker, prints too much, forges a message or exhausts the sandbox's memory),
the step is charged with a :class:`~rnn_grader.autograde.session.Failure` and a fresh
worker runs the notebook again without it, as long as the phase's time budget lasts.
Checks that already finished are not run again.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnn_grader.autograde.errors import GraderError
from rnn_grader.autograde.protocol import ProtocolError, encode
from rnn_grader.autograde.pump import Closed, Deadline, Message, Printed, Pump
from rnn_grader.autograde.sandbox import (
    SandboxLimits,
    Worker,
    ensure_sandbox,
    missing_protections,
)
from rnn_grader.autograde.session import CheckResult, Failure, Mode, Session, Step

#: Seconds a worker may take to start (interpreter, NumPy, the drivers) before it is
#: considered broken; a worker that cannot start is the grader's problem, not a student's.
STARTUP_SECONDS = 60.0
#: Printed bytes kept, before the worker reports ready, to explain a worker that cannot start.
STARTUP_TEXT = 2000


@dataclass
class PhaseReport:
    """Everything one phase of one notebook produced."""

    mode: Mode
    cells: dict[str, str] = field(default_factory=dict)  # step id -> "" or its error
    skipped: dict[str, Failure] = field(default_factory=dict)  # cells a run could not finish
    left_out: set[str] = field(default_factory=set)  # optional cells without time left
    checks: dict[str, CheckResult] = field(default_factory=dict)
    runs: int = 0  # worker processes started (> 1 after a failure)
    seconds: float = 0.0
    protocol_bytes: int = 0  # bytes the workers sent, all runs together
    memory_peak: int | None = None  # most memory a sandbox's cgroup held (bytes)
    oom_kills: int = 0  # processes the kernel killed for exceeding the cgroup's memory
    missing: tuple[str, ...] = ()  # protections that could not be applied to this phase


def run_phase(
    steps: list[Step],
    checks: dict[str, dict[str, Any]],
    *,
    mode: Mode,
    lib: Path,
    drivers: str,
    limits: SandboxLimits | None = None,
    unsafe: bool = False,
    skip: set[str] | frozenset[str] = frozenset(),
) -> PhaseReport:
    """Run ``steps`` in sandboxed workers; each check step runs the cases in ``checks``.

    Args:
        steps: the notebook's steps in order (:mod:`rnn_grader.autograde.plan`).
        checks: check name -> ``{"call", "cases", "time_factor"}`` for this phase.
        mode: ``"public"`` or ``"hidden"`` (a hidden worker sends no text).
        lib: the folder of the drivers module and its data
            (:func:`~rnn_grader.autograde.sandbox.prepare_lib`).
        drivers: the drivers' module name in ``lib``.
        limits: the sandbox's limits.
        unsafe: run without bubblewrap (the instructor's explicit opt-out).
        skip: ids of steps to leave out from the start (cells that stopped a worker in an
            earlier phase).

    Raises:
        GraderError: a worker could not start, before any student code ran.
    """
    limits = limits or SandboxLimits()
    ensure_sandbox(unsafe, limits.require_cgroup)
    report = PhaseReport(mode, missing=missing_protections(unsafe))
    t0 = time.monotonic()
    budget_end = t0 + limits.notebook_timeout
    skipped = set(skip)
    cases = {name: len(spec["cases"]) for name, spec in checks.items()}
    check_steps = [s for s in steps if s.kind == "check" and s.check in checks]
    optional_left = limits.optional_seconds
    while True:
        run = _Run(steps, checks, cases, skipped, mode, lib, drivers, limits, unsafe, budget_end)
        failure = run.go(report, optional_left)
        optional_left -= run.optional_spent
        report.left_out.update(run.session.left_out)
        report.runs += 1
        for sid, error in run.session.cells.items():
            report.cells.setdefault(sid, error)
        report.checks.update(run.session.checks)
        skipped |= {s.id for s in check_steps if s.check in report.checks}
        step = run.session.next_step
        if failure is None or step is None:
            break
        if step.kind == "check":
            report.checks[step.check] = CheckResult(step.check, failure=failure)
        else:
            report.skipped[step.id] = failure
        skipped.add(step.id)
        out_of_time = failure.kind == "budget" or time.monotonic() >= budget_end
        if out_of_time or report.runs > len(steps):
            budget = Failure(
                "budget",
                f"time limit of {limits.notebook_timeout:g} s for the whole notebook exceeded",
            )
            for s in check_steps:
                report.checks.setdefault(s.check, CheckResult(s.check, failure=budget))
            break
    report.seconds = time.monotonic() - t0
    return report


class _Run:
    """One worker process over the steps not skipped."""

    def __init__(
        self,
        steps: list[Step],
        checks: dict[str, dict[str, Any]],
        cases: dict[str, int],
        skip: set[str],
        mode: Mode,
        lib: Path,
        drivers: str,
        limits: SandboxLimits,
        unsafe: bool,
        budget_end: float,
    ) -> None:
        self.steps, self.checks, self.skip = steps, checks, skip
        self.mode, self.lib, self.drivers = mode, lib, drivers
        self.limits, self.unsafe, self.budget_end = limits, unsafe, budget_end
        self.session = Session(steps, cases, skip, mode)
        self.step_end = min(budget_end, time.monotonic() + STARTUP_SECONDS)
        self.step_start = 0.0
        self.startup_text = b""
        self.optional_spent = 0.0  # seconds the optional cells of this run took

    def _timeout(self, step: Step | None) -> float:
        """A cell's limit, or a check's: the check limit times the call's ``time_factor``."""
        if step is None or step.kind != "check":
            return self.limits.cell_timeout
        factor = float(self.checks.get(step.check, {}).get("time_factor", 1))
        return self.limits.check_timeout * factor

    def go(self, report: PhaseReport, optional_seconds: float) -> Failure | None:
        """Run the worker to the end; the failure that stopped it early, if any.

        ``optional_seconds`` is what the optional cells may still use in this phase.
        """
        request = encode(
            {
                "mode": self.mode,
                "drivers": self.drivers,
                "steps": [s.wire() for s in self.steps],
                "checks": self.checks,
                "skip": sorted(self.skip),
                "optional_seconds": max(0.0, optional_seconds),
            }
        )
        worker = Worker(self.lib, self.limits, self.unsafe)
        pump = Pump(worker.proc, self.limits.max_frame_bytes)
        failure: Failure | None = None
        try:
            pump.send(request)
            failure = self._drive(pump, worker, report)
            if failure is not None and failure.kind in ("crash", "timeout"):
                kills = worker.oom_kills()
                if kills:
                    mib = self.limits.sandbox_memory_bytes / 2**20
                    failure = Failure(
                        "memory",
                        f"ran out of memory: the sandbox's processes together reached its "
                        f"limit of {mib:g} MiB and the kernel killed {kills} of them",
                    )
        finally:
            current = self.session.current
            if current is not None and current.optional:  # stopped inside an optional cell
                self.optional_spent += time.monotonic() - self.step_start
            pump.close()
            peak, kills = worker.stop()
            report.protocol_bytes += pump.frame_bytes
            if peak is not None:
                report.memory_peak = max(report.memory_peak or 0, peak)
            report.oom_kills += kills
        if failure is not None and not self.session.ready:
            text = self.startup_text.decode(errors="replace").strip()
            raise GraderError(
                f"the grading worker could not start ({failure.detail})"
                + (f"; it printed: {text}" if text else "")
            )
        return failure

    def _drive(self, pump: Pump, worker: Worker, report: PhaseReport) -> Failure | None:
        limits = self.limits
        printed = 0
        try:
            for event in pump.events(lambda: self.step_end):
                if isinstance(event, Message):
                    self._account(event.body)
                    if self.session.done:
                        return None
                    if report.protocol_bytes + pump.frame_bytes > limits.max_message_bytes:
                        return Failure(
                            "output",
                            f"the notebook's checks sent more than {limits.max_message_bytes} "
                            "bytes",
                        )
                elif isinstance(event, Printed):
                    printed += len(event.data)
                    if not self.session.ready:  # only the worker's own code has run
                        self.startup_text = (self.startup_text + event.data)[:STARTUP_TEXT]
                    if printed > limits.max_output_bytes:
                        return Failure(
                            "output", f"printed more than {limits.max_output_bytes} bytes of output"
                        )
                elif isinstance(event, Deadline):
                    if time.monotonic() >= self.budget_end:
                        return Failure(
                            "budget",
                            f"time limit of {limits.notebook_timeout:g} s for the whole "
                            "notebook exceeded",
                        )
                    step = self.session.current
                    return Failure("timeout", f"time limit of {self._timeout(step):g} s exceeded")
                elif isinstance(event, Closed):
                    break
        except ProtocolError as exc:
            return Failure("protocol", f"the grading worker sent a malformed message ({exc})")
        # still running with its pipes closed: it is killed by the caller
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.proc.wait(timeout=max(0.1, min(2.0, self.step_end - time.monotonic())))
        return Failure("crash", f"the grading worker {worker.death()}")

    def _account(self, body: Any) -> None:
        """Feed one message to the session and move the deadline with the steps."""
        before = self.session.current
        was_ready = self.session.ready
        self.session.feed(body)
        now = time.monotonic()
        current = self.session.current
        if before is not None and current is not before and before.optional:
            self.optional_spent += now - self.step_start
        if current is not None and current is not before:
            self.step_start = now
            self.step_end = min(self.budget_end, now + self._timeout(current))
        elif (current is None and before is not None) or (self.session.ready and not was_ready):
            # between steps only the worker runs; the next step is charged if it hangs
            self.step_end = min(self.budget_end, now + self._timeout(self.session.next_step))
