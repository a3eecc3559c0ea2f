"""The LMS round trip of a course directory: collect, export grades, name feedback.

``collect`` reads the bulk download in ``downloaded/<a>/archive/`` and fills
``submitted/<user id>/<a>/``; ``export_grades`` writes ``exports/<a>/<lms>-grades.csv``
for the LMS's gradebook import; ``package_feedback`` copies ``feedback/`` under the names
the LMS needs to route each file to its student. The platform and its options come from
``nbgrader_config.py`` (``c.LmsCourse``).
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import os
import shutil
import stat
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rnn_grader.autograde.text import printable
from rnn_grader.gradebook_url import course_db_url
from rnn_grader.lms.base import GradeRow, Lms, RosterEntry, Upload, display_name
from rnn_grader.lms.lateness import LatePolicy, parse_time

__all__ = [
    "CollectReport",
    "LmsSettings",
    "collect",
    "export_grades",
    "load_settings",
    "package_feedback",
]

#: Per-submission record written next to the notebook.
RECORD = "lms.json"
#: A submitted notebook larger than this is not collected (it would not be gradable).
MAX_NOTEBOOK_BYTES = 20 << 20
#: nbgrader's format of ``timestamp.txt``.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"


@dataclass(frozen=True)
class LmsSettings:
    """``c.LmsCourse`` of ``nbgrader_config.py``."""

    lms: str = "canvas"
    roster: str = ""  # the LMS's gradebook export, relative to the course root
    assignment_columns: dict[str, str] = field(default_factory=dict)
    db_url: str = "sqlite:///gradebook.db"
    release_directory: str = "release"
    #: the zone in which the LMS's download stamps its files' times
    download_timezone: str = "UTC"
    late: LatePolicy = field(default_factory=LatePolicy)

    def platform(self) -> Lms:
        from rnn_grader.lms import PLATFORMS

        try:
            return PLATFORMS[self.lms]()
        except KeyError:
            raise ValueError(
                f"unknown LMS {self.lms!r} in c.LmsCourse.lms; known: {sorted(PLATFORMS)}"
            ) from None


def load_settings(root: Path) -> LmsSettings:
    """Read ``c.LmsCourse`` and the course directory settings from ``nbgrader_config.py``."""
    from traitlets.config.loader import PyFileConfigLoader

    saved = dict(os.environ)  # the config file may set variables for nbgrader's kernels
    try:
        c = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return settings_from_config(c, root)


#: The settings of ``c.LmsCourse``.
LMS_SETTINGS = ("lms", "roster", "assignment_columns", "download_timezone")


def settings_from_config(c: Any, root: Path) -> LmsSettings:
    """:class:`LmsSettings` from a loaded nbgrader configuration of the course at ``root``.

    Raises:
        ValueError: ``c.LmsCourse`` or ``c.LatePolicy`` holds a setting that does not exist
            or a value that is not allowed, named in the message.
    """
    lms = c.get("LmsCourse", {})
    unknown = sorted(set(lms) - set(LMS_SETTINGS))
    if unknown:
        raise ValueError(
            f"c.LmsCourse has no setting {', '.join(unknown)}; the settings are "
            f"{', '.join(LMS_SETTINGS)}"
        )
    course = c.get("CourseDirectory", {})
    db_url = course_db_url(root, str(course.get("db_url", "sqlite:///gradebook.db")))
    return LmsSettings(
        lms=str(lms.get("lms", "canvas")),
        roster=str(lms.get("roster", "")),
        assignment_columns=dict(lms.get("assignment_columns", {})),
        db_url=db_url,
        release_directory=str(course.get("release_directory", "release")),
        download_timezone=str(lms.get("download_timezone", "UTC")),
        late=LatePolicy.from_config(c.get("LatePolicy", {})),
    )


@dataclass
class CollectReport:
    """What ``collect`` did, for the command line and the tests."""

    collected: dict[str, Upload] = field(default_factory=dict)  # user id -> upload kept
    superseded: list[str] = field(default_factory=list)  # older uploads of the same student
    ignored: list[str] = field(default_factory=list)  # files that are no notebook of <a>
    errors: list[str] = field(default_factory=list)  # uploads that failed, with the reason
    kept: list[str] = field(default_factory=list)  # newer uploads collected before stay

    def table(self) -> str:
        names = {uid: printable(u.name, 60) for uid, u in self.collected.items()}
        width = max([len("name")] + [len(n) for n in names.values()])
        lines = [f"{'user id':<10}  {'name':<{width}}  late  file"]
        for uid, u in sorted(self.collected.items()):
            late = "late" if u.late else ""
            lines.append(
                f"{printable(uid, 40):<10}  {names[uid]:<{width}}  {late:<4}  "
                f"{printable(u.file_name, 120)}"
            )
        lines.append(f"{len(self.collected)} students collected")
        lines += [f"superseded by a newer upload: {printable(s, 200)}" for s in self.superseded]
        lines += [f"ignored: {printable(s, 200)}" for s in self.ignored]
        lines += [f"kept the newer upload collected before: {printable(s, 200)}" for s in self.kept]
        lines += [f"NOT collected: {printable(s, 300)}" for s in self.errors]
        return "\n".join(lines)


def _released_notebooks(root: Path, settings: LmsSettings, assignment: str) -> list[str]:
    folder = root / settings.release_directory / assignment
    names = sorted(p.stem for p in folder.glob("*.ipynb"))
    if not names:
        raise FileNotFoundError(f"no released notebooks in {folder}: run `make release` first")
    return names


def _extract(archive: Path, target: Path, report: CollectReport, zone: str = "UTC") -> None:
    """Extract regular files of a zip by their base name only (no paths, no links).

    Each file keeps the time the LMS stamped on it in the zip (read in ``zone``) as its
    modification time: it is the upload's time.
    """
    tz = datetime.UTC if zone.upper() == "UTC" else ZoneInfo(zone)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = Path(info.filename.replace("\\", "/")).name
            mode = info.external_attr >> 16
            if info.is_dir() or not name or name.startswith("."):
                continue
            if stat.S_ISLNK(mode):
                report.ignored.append(f"{info.filename} (a symbolic link)")
                continue
            if info.file_size > MAX_NOTEBOOK_BYTES:
                report.ignored.append(f"{info.filename} ({info.file_size} bytes, too large)")
                continue
            with zf.open(info) as src, (target / name).open("wb") as dst:
                shutil.copyfileobj(src, dst, MAX_NOTEBOOK_BYTES)
            stamp = datetime.datetime(*info.date_time, tzinfo=tz).timestamp()
            os.utime(target / name, (stamp, stamp))


def collect(root: Path, assignment: str, settings: LmsSettings | None = None) -> CollectReport:
    """Import the LMS download of ``assignment`` into ``submitted/``, keyed by LMS user id.

    Every zip in ``downloaded/<a>/archive/`` (and loose files there) is read. For each
    student and notebook the upload with the largest upload id (the latest) is kept. The
    notebook goes to ``submitted/<user id>/<a>/<notebook>.ipynb`` with ``lms.json``
    beside it (the upload as the LMS named it, lateness, upload id, original file name and
    the display name); the gradebook gets the
    student with their display name (from the roster when one is configured) and LMS id.
    """
    from nbgrader.api import Gradebook

    root = Path(root).resolve()
    settings = settings or load_settings(root)
    platform = settings.platform()
    notebooks = _released_notebooks(root, settings, assignment)
    roster = platform.read_roster(root / settings.roster) if settings.roster else {}
    archive = root / "downloaded" / assignment / "archive"
    extracted = root / "downloaded" / assignment / "extracted"
    if not archive.is_dir():
        raise FileNotFoundError(f"put the LMS download (zip) in {archive}")
    shutil.rmtree(extracted, ignore_errors=True)
    extracted.mkdir(parents=True)
    report = CollectReport()
    for item in sorted(archive.iterdir()):
        try:
            if item.suffix.lower() == ".zip":
                _extract(item, extracted, report, settings.download_timezone)
            elif item.is_file() and not item.is_symlink():
                shutil.copy2(item, extracted / item.name)  # with its modification time
        except (OSError, zipfile.BadZipFile, ValueError) as exc:
            report.errors.append(f"{item.name}: cannot be read ({type(exc).__name__}: {exc})")

    latest: dict[tuple[str, str], tuple[Upload, Path]] = {}
    for path in sorted(extracted.iterdir()):
        try:
            upload = platform.parse(path.name, notebooks)
        except ValueError as exc:
            report.errors.append(f"{path.name}: {exc}")
            continue
        if upload is None or not upload.notebook:
            report.ignored.append(path.name)
            continue
        key = (upload.user_id, upload.notebook)
        previous = latest.get(key)
        if previous is None or int(upload.upload_id) > int(previous[0].upload_id):
            if previous is not None:
                report.superseded.append(previous[1].name)
            latest[key] = (upload, path)
        else:
            report.superseded.append(path.name)

    with Gradebook(settings.db_url) as gb:
        due = settings.late.due_date(assignment)
        if due is not None:  # formgrader then shows each submission's lateness
            gb.update_or_create_assignment(assignment, duedate=due.replace(tzinfo=None))
        for (user_id, notebook), (upload, path) in sorted(latest.items()):
            folder = root / "submitted" / user_id / assignment
            before = _record(root, user_id, assignment)
            if before.get("notebook") == notebook and int(before.get("upload_id", -1)) > int(
                upload.upload_id
            ):
                report.kept.append(f"{user_id}: upload {before['upload_id']} over {path.name}")
                continue
            when = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
            try:
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, folder / f"{notebook}.ipynb")
                (folder / "timestamp.txt").write_text(when.strftime(TIMESTAMP_FORMAT))
            except OSError as exc:
                report.errors.append(f"{path.name} (user {user_id}): {exc}")
                continue
            entry = roster.get(user_id)
            name = entry.name if entry else display_name(upload.name)
            record = {
                **asdict(upload),
                "display_name": name,
                "lms": platform.key,
                "submitted_at": when.isoformat(timespec="seconds"),
            }
            (folder / RECORD).write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n")
            last, _, first = name.partition(", ")
            gb.update_or_create_student(
                user_id, last_name=last or name, first_name=first, lms_user_id=user_id
            )
            report.collected[user_id] = Upload(**{**asdict(upload), "name": name})
    return report


def _record(root: Path, student: str, assignment: str) -> dict[str, Any]:
    path = root / "submitted" / student / assignment / RECORD
    return json.loads(path.read_text()) if path.is_file() else {}


@dataclass(frozen=True)
class SummaryRow:
    """One line of ``exports/<a>/summary.csv``."""

    user_id: str
    name: str
    submitted_at: str  # the LMS's time of the upload graded (UTC)
    late: bool  # the LMS's flag
    deadline: str  # the due date or the student's extension that applied ("" if none)
    days_late: str  # "" when on time or unknown
    autograded: float
    manual: float
    points: float  # before any late deduction
    late_policy: str  # the course's policy (c.LatePolicy), in words
    late_percent: float
    late_rule: str  # what the policy did to this submission, in words
    total: float  # exported: points minus the late deduction
    max_score: float
    needs_manual_grade: bool


def export_grades(
    root: Path,
    assignment: str,
    settings: LmsSettings | None = None,
    *,
    include_ungraded: bool = False,
) -> tuple[Path, list[SummaryRow]]:
    """Write ``exports/<a>/<lms>-grades.csv`` for the LMS import, and ``summary.csv``.

    Only students who submitted ``assignment`` appear (no zeros for anyone else). The
    points are nbgrader's total, manual grades included, less the late policy's
    deduction (:mod:`rnn_grader.lms.lateness`); a submission that still needs manual
    grading, or whose autograding did not finish, gets an empty cell (the LMS keeps its
    grade) unless ``include_ungraded``. Returns the import file and the summary rows.
    """
    from nbgrader.api import Gradebook

    root = Path(root).resolve()
    settings = settings or load_settings(root)
    platform = settings.platform()
    roster = platform.read_roster(root / settings.roster) if settings.roster else {}
    rows: list[GradeRow] = []
    summary: list[SummaryRow] = []
    with Gradebook(settings.db_url) as gb:
        max_score = float(gb.find_assignment(assignment).max_score)
        for sub in sorted(gb.assignment_submissions(assignment), key=lambda s: s.student.id):
            student = sub.student
            record = _record(root, student.id, assignment)
            user_id = str(student.lms_user_id or student.id)
            name = ", ".join(n for n in (student.last_name, student.first_name) if n)
            entry = roster.get(user_id) or RosterEntry(user_id, display_name(name or student.id))
            pending = bool(sub.needs_manual_grade)
            submitted = _submitted_at(root, student.id, assignment, record)
            rule = settings.late.deduction(
                assignment, student.id, submitted, bool(record.get("late", False))
            )
            points = float(sub.score)
            total = round(points * (1 - rule.percent / 100), 6)
            rows.append(GradeRow(entry, None if pending and not include_ungraded else total))
            manual = sum(
                float(g.manual_score) for nb in sub.notebooks for g in nb.grades
                if g.manual_score is not None
            )  # fmt: skip
            known = rule.days_late > 0 and not math.isnan(rule.days_late)
            summary.append(
                SummaryRow(
                    user_id=user_id,
                    name=entry.name,
                    submitted_at=submitted.isoformat(timespec="seconds") if submitted else "",
                    late=bool(record.get("late", False)),
                    deadline=rule.deadline.isoformat(timespec="minutes") if rule.deadline else "",
                    days_late=f"{rule.days_late:.2f}" if known else "",
                    autograded=float(sub.code_score),
                    manual=manual,
                    points=points,
                    late_policy=settings.late.describe(),
                    late_percent=rule.percent,
                    late_rule=rule.note,
                    total=total,
                    max_score=max_score,
                    needs_manual_grade=pending,
                )
            )
    folder = root / "exports" / assignment
    column = settings.assignment_columns.get(assignment, assignment)
    out = folder / f"{platform.key}-grades.csv"
    platform.write_grades(rows, column, max_score, out)
    with (folder / "summary.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(list(SummaryRow.__dataclass_fields__))
        for r in summary:
            w.writerow([f"{v:g}" if isinstance(v, float) else v for v in asdict(r).values()])
    return out, summary


def _submitted_at(
    root: Path, student: str, assignment: str, record: dict[str, Any]
) -> datetime.datetime | None:
    """When the graded upload was made: the LMS record, else nbgrader's timestamp.txt."""
    if record.get("submitted_at"):
        return parse_time(record["submitted_at"])
    path = root / "submitted" / student / assignment / "timestamp.txt"
    if path.is_file():
        try:
            return parse_time(path.read_text().strip().removesuffix(" UTC"))
        except ValueError:
            return None
    return None


def package_feedback(
    root: Path, assignment: str, settings: LmsSettings | None = None
) -> tuple[Path, list[Path]]:
    """Copy ``feedback/<id>/<a>/*.html`` under the LMS's per-student names, and zip them.

    Returns the zip (for a bulk upload, e.g. Canvas's "Re-upload submissions") and the
    files in ``exports/<a>/feedback/``. Students without an LMS record (not collected
    from the LMS) keep nbgrader's layout and are skipped here.
    """
    root = Path(root).resolve()
    settings = settings or load_settings(root)
    platform = settings.platform()
    target = root / "exports" / assignment / "feedback"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    files = []
    for html in sorted((root / "feedback").glob(f"*/{assignment}/*.html")):
        student = html.parent.parent.name
        record = _record(root, student, assignment)
        if not record:
            continue
        fields = {k: record[k] for k in Upload.__dataclass_fields__ if k in record}
        upload = Upload(**fields)
        name = platform.feedback_name(upload, assignment, html.stem)
        shutil.copyfile(html, target / name)
        files.append(target / name)
    bundle = root / "exports" / assignment / f"{platform.key}-feedback.zip"
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, path.name)
    return bundle, files


@dataclass(frozen=True)
class WrittenStatus:
    """One submission's hand-graded cells: how many are graded, which are not."""

    student: str
    graded: int
    pending: tuple[str, ...]


def written_status(root: Path, assignment: str, settings: LmsSettings) -> list[WrittenStatus]:
    """Every submission of ``assignment`` with its hand-graded cells' state."""
    from nbgrader.api import Gradebook

    out = []
    with Gradebook(settings.db_url) as gb:
        for sub in sorted(gb.assignment_submissions(assignment), key=lambda s: s.student.id):
            grades = [
                g
                for nb in sub.notebooks
                for g in nb.grades
                if g.cell_type == "markdown" or g.name.startswith("written_")
            ]
            pending = tuple(sorted(g.name for g in grades if g.needs_manual_grade))
            out.append(WrittenStatus(sub.student.id, len(grades) - len(pending), pending))
    return out
