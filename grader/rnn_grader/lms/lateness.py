"""The course's late policy: when each assignment is due, extensions, and the deduction.

Set in ``nbgrader_config.py`` (``c.LatePolicy``)::

    c.LatePolicy.due = {"rnn_bptt": "2027-02-01 23:59 Europe/Zurich"}
    c.LatePolicy.kind = "per_day"          # "none" (default), "per_day" or "flat"
    c.LatePolicy.percent_per_day = 10.0    # per started day late, of the points earned
    c.LatePolicy.max_percent = 50.0        # cap of the per-day deduction
    c.LatePolicy.flat_percent = 20.0       # "flat": one deduction for any late submission
    c.LatePolicy.grace_minutes = 5.0       # uploads this close after the deadline are on time
    c.LatePolicy.extensions = {"rnn_bptt": {"48122": "2027-02-03 23:59 Europe/Zurich"}}

A submission's time is the one the LMS recorded (``timestamp.txt``, written by
``collect``). With a due date, lateness is measured against it, or against the student's
extension; without one, only the LMS's own late flag is known, which a flat policy can
use but a per-day policy cannot (no deduction, and the export says why). The deduction
is a percentage of the points the submission earned, applied when grades are exported;
``exports/<a>/summary.csv`` lists, per student, the time, the deadline that applied,
the days late, the policy and the points deducted.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

KINDS = ("none", "per_day", "flat")
DAY = datetime.timedelta(days=1)


def parse_time(text: str) -> datetime.datetime:
    """``"2027-02-01 23:59[:ss[.ffffff]] [Zone/Name|UTC|+01:00]"`` as an aware datetime (UTC).

    A time without a zone is UTC.
    """
    original = str(text).strip()
    parts = original.split()
    zone: datetime.tzinfo = datetime.UTC
    text = original
    try:
        if len(parts) == 3 or (len(parts) == 2 and not parts[1][:1].isdigit()):
            text = " ".join(parts[:-1])
            name = parts[-1]
            zone = datetime.UTC if name.upper() in ("UTC", "Z", "GMT") else ZoneInfo(name)
        when = datetime.datetime.fromisoformat(text)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(
            f"cannot read the time {original!r}: write e.g. '2027-02-01 23:59 Europe/Zurich'"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.astimezone(datetime.UTC)


@dataclass(frozen=True)
class Deduction:
    """What the policy did to one submission."""

    deadline: datetime.datetime | None  # the due date, or the student's extension
    days_late: float  # 0 when on time; NaN when only the LMS's flag says it is late
    percent: float  # of the points earned
    note: str  # the rule applied, in words


@dataclass(frozen=True)
class LatePolicy:
    """``c.LatePolicy`` of ``nbgrader_config.py``."""

    kind: str = "none"
    due: dict[str, str] = field(default_factory=dict)
    percent_per_day: float = 0.0
    max_percent: float = 100.0
    flat_percent: float = 0.0
    grace_minutes: float = 0.0
    extensions: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"c.LatePolicy.kind must be one of {KINDS}, got {self.kind!r}")
        for name in ("percent_per_day", "max_percent", "flat_percent", "grace_minutes"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value >= 0 and math.isfinite(value)):
                raise ValueError(f"c.LatePolicy.{name} must be a number >= 0, got {value!r}")
        for assignment, when in self.due.items():
            parse_time(when)  # fail at load time, naming the setting
            del assignment
        for assignment, table in self.extensions.items():
            if not isinstance(table, dict):
                raise ValueError(f"c.LatePolicy.extensions[{assignment!r}] must be a dict")
            for when in table.values():
                parse_time(when)

    @classmethod
    def from_config(cls, section: Any) -> LatePolicy:
        section = dict(section or {})
        unknown = sorted(set(section) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"c.LatePolicy has no setting {', '.join(unknown)}; the settings are "
                f"{', '.join(cls.__dataclass_fields__)}"
            )
        return cls(**section)

    def due_date(self, assignment: str) -> datetime.datetime | None:
        return parse_time(self.due[assignment]) if assignment in self.due else None

    def describe(self) -> str:
        if self.kind == "per_day":
            return (
                f"{self.percent_per_day:g}% per started day late, at most "
                f"{self.max_percent:g}%, after {self.grace_minutes:g} min of grace"
            )
        if self.kind == "flat":
            return f"{self.flat_percent:g}% for a late submission, after {self.grace_minutes:g} min"
        return "no deduction"

    def deduction(
        self,
        assignment: str,
        student: str,
        submitted: datetime.datetime | None,
        lms_late: bool,
    ) -> Deduction:
        """The deduction for ``student``'s submission made at ``submitted``."""
        due = self.due_date(assignment)
        extension = self.extensions.get(assignment, {}).get(student)
        deadline = parse_time(extension) if extension else due
        grace = datetime.timedelta(minutes=self.grace_minutes)
        if deadline is not None and submitted is not None:
            delay = submitted - deadline - grace
            days = max(0.0, delay / DAY)
            late = delay > datetime.timedelta(0)
        else:  # only the LMS knows: its flag (it applies its own overrides)
            days, late = (math.nan if lms_late else 0.0), lms_late
        which = "extension" if extension else "due date"
        if not late:
            return Deduction(deadline, 0.0, 0.0, "on time")
        if self.kind == "none":
            return Deduction(deadline, days, 0.0, "late; the policy deducts nothing")
        if self.kind == "flat":
            return Deduction(deadline, days, self.flat_percent, f"late: {self.describe()}")
        if math.isnan(days):
            return Deduction(
                deadline, days, 0.0, f"late by the LMS, but {assignment} has no due date in "
                "c.LatePolicy.due: nothing deducted",
            )  # fmt: skip
        started = math.ceil(days)
        percent = min(self.max_percent, self.percent_per_day * started)
        return Deduction(
            deadline, days, percent, f"{started} started day(s) after the {which}: {percent:g}%"
        )
