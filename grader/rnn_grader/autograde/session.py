"""What one run of the sandboxed worker is expected to say, and what it said.

The worker (:mod:`rnn_grader.autograde.worker`) runs a notebook's steps in order and
reports each one. :class:`Session` is the state machine that checks every message
against the steps it was sent (in order, none forged, none missing) and collects the
results; anything out of place raises :class:`~rnn_grader.autograde.protocol.ProtocolError`.
It does no I/O: :mod:`rnn_grader.autograde.pump` reads the messages and
:mod:`rnn_grader.autograde.phase` decides what a failure means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rnn_grader.autograde.protocol import ProtocolError

Mode = Literal["public", "hidden"]
#: ``provided`` marks a released cell left unchanged; plans run it as a ``cell`` or not at all.
StepKind = Literal["setup", "answer", "cell", "check", "provided"]
#: What a failing case may report (the worker's ``CATEGORIES``).
CATEGORIES = frozenset({"raised", "memory", "structure"})


@dataclass(frozen=True)
class Step:
    """One code cell of the notebook, or the check standing where a test cell stands."""

    id: str  # answer cells: the grade id; checks: the test cell's grade id; else "cellK"
    kind: StepKind
    source: str = ""  # code to run (transformed from IPython syntax); "" for a check
    check: str = ""  # the check's name, for a check step
    number: int = 0  # 1-based position of the cell in the notebook (0: not in it)
    optional: bool = False  # a cell no graded function needs: run while time allows

    def wire(self) -> dict[str, str | bool]:
        """The step as the worker receives it."""
        if self.kind == "check":
            return {"id": self.id, "kind": self.kind, "check": self.check}
        return {"id": self.id, "kind": self.kind, "source": self.source, "optional": self.optional}


@dataclass(frozen=True)
class Failure:
    """Why a run stopped inside a step: a kind from a fixed list, and trusted detail text."""

    kind: Literal["timeout", "memory", "crash", "output", "protocol", "budget"]
    detail: str  # written by the grader, never by the worker


@dataclass
class CaseResult:
    """What the worker returned for one case: outputs, or a failure category."""

    outputs: dict[str, Any] | None = None
    category: str | None = None  # one of CATEGORIES when the student's code raised
    error: str = ""  # "Type: message" (public mode only)
    traceback: str = ""  # the student's frames (public mode only)


@dataclass
class CheckResult:
    """Every case of one check, or the failure that stopped it."""

    name: str
    cases: list[CaseResult] = field(default_factory=list)
    failure: Failure | None = None


class Session:
    """The expected conversation with one worker run, checked message by message.

    Args:
        steps: the notebook's steps, in order.
        cases: number of cases of each check run in this phase (a check step whose check
            is absent here is not run).
        skip: ids of the steps this run leaves out.
        mode: ``"hidden"`` runs carry no text.
    """

    def __init__(self, steps: list[Step], cases: dict[str, int], skip: set[str], mode: Mode):
        self.mode = mode
        self.cases = cases
        self.expected = [
            s for s in steps if s.id not in skip and (s.kind != "check" or s.check in cases)
        ]
        self.position = 0  # index in ``expected`` of the next step to start
        self.current: Step | None = None
        self.check: CheckResult | None = None
        self.ready = False
        self.done = False
        self.cells: dict[str, str] = {}  # step id -> "" or the error (text or category)
        self.checks: dict[str, CheckResult] = {}
        self.left_out: list[str] = []  # optional cells the worker skipped: no time left

    @property
    def next_step(self) -> Step | None:
        """The step running now, or the one that would run next (None when all ran)."""
        if self.current is not None:
            return self.current
        return self.expected[self.position] if self.position < len(self.expected) else None

    def feed(self, message: Any) -> None:
        """Account for one message; ``ProtocolError`` if it is not the one expected."""
        kind = message.get("kind") if isinstance(message, dict) else None
        if not self.ready:
            if kind != "ready":
                raise ProtocolError("the worker did not start with 'ready'")
            self.ready = True
        elif kind == "step":
            self._start(message)
        elif kind == "skip":
            self._skip(message)
        elif kind == "cell":
            self._cell(message)
        elif kind == "case":
            self._case(message)
        elif kind == "end":
            self._end(message)
        elif kind == "done":
            if self.current is not None or self.position != len(self.expected):
                raise ProtocolError("the worker ended before running every step")
            self.done = True
        else:
            raise ProtocolError("unexpected message")

    def _start(self, message: dict[str, Any]) -> None:
        if self.current is not None or self.position >= len(self.expected):
            raise ProtocolError("a step started out of order")
        step = self.expected[self.position]
        if message.get("id") != step.id:
            raise ProtocolError("a step started out of order")
        self.position += 1
        self.current = step
        self.check = CheckResult(step.check) if step.kind == "check" else None

    def _skip(self, message: dict[str, Any]) -> None:
        """An optional cell left out because the optional cells' time is spent."""
        if self.current is not None or self.position >= len(self.expected):
            raise ProtocolError("a step skipped out of order")
        step = self.expected[self.position]
        if message.get("id") != step.id or not step.optional:
            raise ProtocolError("a step skipped out of order")
        self.position += 1
        self.left_out.append(step.id)

    def _cell(self, message: dict[str, Any]) -> None:
        step = self.current
        if step is None or step.kind == "check" or message.get("id") != step.id:
            raise ProtocolError("a cell result out of order")
        error = message.get("error", "")
        if not isinstance(error, str):
            raise ProtocolError("a cell result without an error string")
        if self.mode == "hidden":
            error = error if error in CATEGORIES else ("raised" if error else "")
        self.cells[step.id] = error
        self.current = None

    def _case(self, message: dict[str, Any]) -> None:
        check = self.check
        if check is None or message.get("check") != check.name:
            raise ProtocolError("a case out of order")
        if message.get("index") != len(check.cases) or len(check.cases) >= self.cases[check.name]:
            raise ProtocolError("a case out of order")
        category = message.get("category")
        if category is not None:
            category = category if category in CATEGORIES else "raised"
            if self.mode == "hidden":
                check.cases.append(CaseResult(category=category))
                return
            error, tb = message.get("error", ""), message.get("traceback", "")
            if not isinstance(error, str) or not isinstance(tb, str):
                raise ProtocolError("an error without text")
            check.cases.append(CaseResult(category=category, error=error, traceback=tb))
        elif isinstance(message.get("outputs"), dict):
            check.cases.append(CaseResult(outputs=message["outputs"]))
        else:
            check.cases.append(CaseResult(category="structure"))

    def _end(self, message: dict[str, Any]) -> None:
        check = self.check
        if check is None or message.get("check") != check.name:
            raise ProtocolError("a check ended out of order")
        if len(check.cases) != self.cases[check.name]:
            raise ProtocolError("a check ended before all its cases")
        self.checks[check.name] = check
        self.current = self.check = None
