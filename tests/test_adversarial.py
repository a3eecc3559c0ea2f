"""Hostile submissions cost only their own checks; the batch completes and leaves nothing.

Every answer attack is the correct toy notebook with one attack in the ``softmax``
answer: ``test_affine`` must keep its 2 points, ``test_softmax`` must get exactly the
points the attack deserves. Notebook attacks edit the file itself (schema versions,
forged metadata, a notebook too large to parse). One ``nbgrader autograde`` over all of
them, with honest students before, between and after, must finish in bounded time,
grade every honest student exactly, keep the grader's own memory below a stated bound
and leave no process behind. A second batch runs the same classes of attack through
``rnn-course grade --jobs 2``, where attackers and honest students run side by side.
"""

from __future__ import annotations

import csv
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "attacks"))

import attacks as at
import toycourse as tc
from attacks import ATTACKS

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures" / "attacks"
#: Peak resident memory the grading process itself may reach (the sandboxes excluded).
GRADER_MEMORY_BOUND = 600 * 1024 * 1024
#: Peak of any single process of the batch, sandboxes included.
PROCESS_MEMORY_BOUND = 2 * 1024 * 1024 * 1024
EXTRA = f"c.TrustedExecute.sandbox_memory = {at.SANDBOX_MEMORY}\n"

HONEST = ("aa_honest", "mm_honest", "zz_correct")
NOTEBOOK_ATTACKS = {
    "nb_schema_v4": lambda nb: at.schema_tampered(nb, 4),
    "nb_schema_v2": lambda nb: at.schema_tampered(nb, 2),
    "nb_schema_deleted": lambda nb: at.schema_tampered(nb, None),
    "nb_forged_points": at.forged_metadata,
}
HUGE = "nb_huge"


def _sandbox_processes() -> list[str]:
    """Processes on the host running as a sandbox uid or running the worker."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            uid = int((d / "status").read_text().split("\nUid:")[1].split()[0])
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if uid >= 1_000_000 or "/opt/worker/worker.py" in cmd:
            found.append(f"{d.name} uid={uid} {cmd[:80]}")
    return found


def _measured(root: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(FIXTURES / "measured.py"), str(out), *args],
        cwd=root,
        env=tc.env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _submit_huge(root: Path, student: str) -> None:
    nb = at.huge_notebook(tc.answered(root, tc.CORRECT))
    tc.submit(root, student, json.dumps(nb))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tc.make_course(tmp_path_factory.mktemp("course"), extra=EXTRA)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    for name, (source, _) in ATTACKS.items():
        code = source.replace("{course}", str(root)).replace("{port}", str(port))
        tc.submit(root, name, tc.answered(root, {**tc.CORRECT, "softmax": code}))
    for name, edit in NOTEBOOK_ATTACKS.items():
        tc.submit(root, name, edit(tc.answered(root, tc.CORRECT)))
    _submit_huge(root, HUGE)
    for name in HONEST:
        tc.submit(root, name, tc.answered(root, tc.CORRECT))
    rss = root / "rss.txt"
    t0 = time.monotonic()
    done = _measured(root, rss, "nbgrader", "autograde", tc.ASSIGNMENT)
    seconds = time.monotonic() - t0
    listener.close()
    own, children = (int(v) * 1024 for v in rss.read_text().split())
    print(f"\nadversarial batch: {seconds:.1f} s, grader peak {own / 2**20:.0f} MiB")
    return {"root": root, "done": done, "seconds": seconds, "own": own, "children": children}


def test_batch_completes_in_bounded_time_and_memory(graded):
    log = graded["done"].stdout + graded["done"].stderr
    failed = set(re.findall(r"error processing assignment 'toy' for student '([^']+)'", log))
    assert failed == {HUGE}, log[-3000:]  # the only student nbgrader could not grade
    # about 30 notebooks, at most a few check timeouts of 3 s each
    assert graded["seconds"] < 300
    assert graded["own"] < GRADER_MEMORY_BOUND
    assert graded["children"] < PROCESS_MEMORY_BOUND


def test_no_process_is_left_behind(graded):
    time.sleep(0.5)
    assert _sandbox_processes() == []


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_costs_only_its_own_check(graded, name):
    scores = tc.scores(graded["root"], name)
    assert scores["test_affine"] == tc.POINTS["test_affine"]
    assert scores["test_softmax"] == ATTACKS[name][1]


@pytest.mark.parametrize("name", HONEST)
def test_honest_students_around_the_attacks_get_full_marks(graded, name):
    assert tc.scores(graded["root"], name) == tc.POINTS


@pytest.mark.parametrize("name", sorted(NOTEBOOK_ATTACKS))
def test_edited_metadata_is_rebuilt_from_the_gradebook(graded, name):
    # correct answers under tampered metadata: exactly the assignment's points, no more
    assert tc.scores(graded["root"], name) == tc.POINTS
    nb = nbformat.read(graded["root"] / "autograded" / name / "toy" / "toy.ipynb", 4)
    metas = [c.metadata["nbgrader"] for c in nb.cells if "nbgrader" in c.metadata]
    assert {m["schema_version"] for m in metas} == {3}
    assert sum(m.get("points", 0) for m in metas) == sum(tc.POINTS.values()) + 1


def test_huge_notebook_is_refused_before_parsing_and_says_why(graded):
    log = graded["done"].stdout + graded["done"].stderr
    assert re.search(r"toy\.ipynb is \d+\.\d MiB, over the limit of 4\.0 MiB", log)
    assert not (graded["root"] / "autograded" / HUGE / "toy" / "toy.ipynb").exists()
    try:
        scores = tc.scores(graded["root"], HUGE)
    except Exception:  # no submission notebook in the gradebook at all
        scores = {}
    assert not any(scores.values())


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("infinite_loop_ignoring_sigint", "time limit"),
        ("os_exit", "worker exited"),
        ("segfault", "SIGSEGV"),
        ("print_flood", "printed more than"),
        ("forge_protocol", "malformed message"),
        ("import_torch", "differs"),
        ("memfd_children", "Operation not permitted"),
        ("userns_tmpfs", "refused"),
        ("children_hold_memory", "limit of 512 MiB"),
        ("forged_huge_frames", "malformed message"),
    ],
)
def test_failure_messages_say_what_happened(graded, name, fragment):
    path = graded["root"] / "autograded" / name / "toy" / "toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    (cell,) = [
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_softmax"
    ]
    (out,) = cell.outputs
    assert out.output_type == "error"
    assert fragment in out.evalue


# --- the same classes through rnn-course grade, two sandboxes at a time -----------------

PARALLEL_ATTACKS = ("children_hold_memory", "memfd_children", "forged_huge_frames")
PARALLEL_STATUS = {
    # killed by the kernel at the cgroup's limit, or stalled in reclaim until the time limit
    "children_hold_memory": ("partial|timed out", "limit of 512 MiB"),
    "memfd_children": ("partial", "Operation not permitted"),
    "forged_huge_frames": ("partial", "malformed message"),
    "spin1": ("ok", ""),
    "spin2": ("ok", ""),
    "nb_schema_v4": ("ok", ""),
    HUGE: ("invalid notebook", "over the limit of 4.0 MiB"),
    "aa_honest": ("ok", ""),
    "mm_honest": ("ok", ""),
    "zz_correct": ("ok", ""),
}


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    root = tc.make_course(tmp_path_factory.mktemp("parallel"), extra=EXTRA)
    for name in PARALLEL_ATTACKS:
        code = ATTACKS[name][0]
        tc.submit(root, name, tc.answered(root, {**tc.CORRECT, "softmax": code}))
    for name in ("spin1", "spin2"):
        code = ATTACKS["cpu_spinners"][0]
        tc.submit(root, name, tc.answered(root, {**tc.CORRECT, "softmax": code}))
    tc.submit(root, "nb_schema_v4", NOTEBOOK_ATTACKS["nb_schema_v4"](tc.answered(root, tc.CORRECT)))
    _submit_huge(root, HUGE)
    for name in HONEST:
        tc.submit(root, name, tc.answered(root, tc.CORRECT))
    rss = root / "rss.txt"
    t0 = time.monotonic()
    done = _measured(
        root, rss, "rnn-course", "grade", tc.ASSIGNMENT, "--jobs", "2", "--no-progress"
    )
    seconds = time.monotonic() - t0
    own, _ = (int(v) * 1024 for v in rss.read_text().split())
    print(f"\nparallel batch: {seconds:.1f} s, grader main process peak {own / 2**20:.0f} MiB")
    return {"root": root, "done": done, "seconds": seconds, "own": own}


def test_parallel_batch_reports_every_student(parallel):
    done = parallel["done"]
    assert done.returncode == 1, done.stderr[-3000:]  # the huge notebook cannot be graded
    folder = parallel["root"] / "grading-report" / tc.ASSIGNMENT
    rows = {r["student"]: r for r in csv.DictReader((folder / "grades.csv").open())}
    assert set(rows) == set(PARALLEL_STATUS)
    for student, row in rows.items():
        assert row["status"] in PARALLEL_STATUS[student][0].split("|"), (student, row)
    assert parallel["own"] < GRADER_MEMORY_BOUND
    assert parallel["seconds"] < 240


@pytest.mark.parametrize("name", sorted(PARALLEL_STATUS))
def test_parallel_scores_and_status_lines(parallel, name):
    status, fragment = PARALLEL_STATUS[name]
    lines = parallel["done"].stdout.splitlines()
    if fragment:  # the line after the table says what happened to this student
        (line,) = [ln for ln in lines if ln.startswith(f"{name}: ")]
        assert fragment in line
    if status == "invalid notebook":
        return
    full = status == "ok"
    expected = dict(tc.POINTS) if full else {**tc.POINTS, "test_softmax": 0.0}
    assert tc.scores(parallel["root"], name) == expected


# --- outputs that decode to large structures, through a Dask cluster -------------------------

#: Outputs of many tiny objects: 15 000 empty lists (about 90 KB of JSON per case) once
#: became about 14 times their size in the grader, and Dask mode kept every report.
AMPLIFIERS = {
    f"amplify{i}": (
        "def softmax(z):\n    return [[] for _ in range(15000)]\n"
        if i % 2
        else "def softmax(z):\n    return [[[]] * 40 for _ in range(1500)]\n"
    )
    for i in range(10)
}


@pytest.fixture(scope="module")
def amplified(tmp_path_factory):
    from distributed import LocalCluster

    root = tc.make_course(tmp_path_factory.mktemp("amplified"))
    for name, code in AMPLIFIERS.items():
        tc.submit(root, name, tc.answered(root, {**tc.CORRECT, "softmax": code}))
    for name in ("aa_honest", "zz_correct"):
        tc.submit(root, name, tc.answered(root, tc.CORRECT))
    rss = root / "rss.txt"
    with LocalCluster(
        processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        done = _measured(
            root,
            rss,
            "rnn-course",
            "grade",
            tc.ASSIGNMENT,
            "--no-progress",
            "--scheduler",
            cluster.scheduler_address,
        )
    own, _ = (int(v) * 1024 for v in rss.read_text().split())
    print(f"\nDask batch of {len(AMPLIFIERS)} amplifiers: grader peak {own / 2**20:.0f} MiB")
    return {"root": root, "done": done, "own": own}


def test_amplifying_outputs_keep_the_dask_grader_under_its_bound(amplified):
    assert amplified["done"].returncode == 0, amplified["done"].stderr[-3000:]
    assert amplified["own"] < GRADER_MEMORY_BOUND
    for name in AMPLIFIERS:
        assert tc.scores(amplified["root"], name) == {**tc.POINTS, "test_softmax": 0.0}
    for name in ("aa_honest", "zz_correct"):
        assert tc.scores(amplified["root"], name) == tc.POINTS
