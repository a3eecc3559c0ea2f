"""Hostile submissions cost only their own checks; the batch completes and leaves nothing.

Every submission is the correct toy notebook with one attack in the ``softmax`` answer:
``test_affine`` must keep its 2 points, ``test_softmax`` must get exactly the points the
attack deserves, and a single ``nbgrader autograde`` over all of them must finish in
bounded time and memory without leaving a process behind.
"""

from __future__ import annotations

import resource
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "attacks"))

import toycourse as tc
from attacks import ATTACKS

pytestmark = pytest.mark.slow


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


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tc.make_course(tmp_path_factory.mktemp("course"))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    for name, (source, _) in ATTACKS.items():
        code = source.replace("{course}", str(root)).replace("{port}", str(port))
        tc.submit(root, name, tc.answered(root, {**tc.CORRECT, "softmax": code}))
    tc.submit(root, "zz_correct", tc.answered(root, tc.CORRECT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.monotonic()
    done = tc.nbgrader(root, "autograde", tc.ASSIGNMENT, check=False)
    seconds = time.monotonic() - t0
    listener.close()
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"root": root, "done": done, "seconds": seconds, "peak_kib": max(before, peak_kib)}


def test_batch_completes_in_bounded_time_and_memory(graded):
    assert graded["done"].returncode == 0, graded["done"].stderr[-3000:]
    # 17 notebooks, at most a few check timeouts of 3 s each
    assert graded["seconds"] < 150
    assert graded["peak_kib"] < 2 * 1024 * 1024  # no process of the batch reached 2 GiB


def test_no_process_is_left_behind(graded):
    time.sleep(0.5)
    assert _sandbox_processes() == []


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_costs_only_its_own_check(graded, name):
    scores = tc.scores(graded["root"], name)
    assert scores["test_affine"] == tc.POINTS["test_affine"]
    assert scores["test_softmax"] == ATTACKS[name][1]


def test_correct_submission_in_the_same_batch_gets_full_marks(graded):
    assert tc.scores(graded["root"], "zz_correct") == tc.POINTS


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("infinite_loop_ignoring_sigint", "time limit"),
        ("os_exit", "worker exited"),
        ("segfault", "SIGSEGV"),
        ("print_flood", "printed more than"),
        ("forge_protocol", "malformed message"),
        ("import_torch", "differs"),
    ],
)
def test_failure_messages_say_what_happened(graded, name, fragment):
    import nbformat

    path = graded["root"] / "autograded" / name / "toy" / "toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    (cell,) = [
        c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_softmax"
    ]
    (out,) = cell.outputs
    assert out.output_type == "error"
    assert fragment in out.evalue
