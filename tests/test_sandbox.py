"""The sandboxed worker: wire protocol, isolation and resource limits."""

from __future__ import annotations

import ast
import importlib.util
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnn_grader.autograde import protocol, sandbox, session
from rnn_grader.autograde.phase import PhaseReport, run_phase
from rnn_grader.autograde.sandbox import SandboxLimits, prepare_lib
from rnn_grader.autograde.session import CheckResult, Step

FIXTURES = Path(__file__).parent / "fixtures" / "attacks"
DRIVERS = FIXTURES / "toygrading" / "drivers.py"
ROOT = Path(__file__).resolve().parents[1]
LIMITS = SandboxLimits(check_timeout=3.0, cell_timeout=3.0, notebook_timeout=20.0)
CASE = {"z": np.array([[1.0, 2.0, 3.0]])}
SETUP = Step("setup", "setup", "import numpy as np")


def _phase(steps: list[Step], checks: dict, *, mode="public", limits=LIMITS, **kw) -> PhaseReport:
    """Run ``steps`` with the toy drivers; ``checks`` maps a check to its cases."""
    lib = prepare_lib("drivers", DRIVERS.read_text(), {})
    spec = {name: {"call": name, "cases": cases} for name, cases in checks.items()}
    return run_phase(steps, spec, mode=mode, lib=lib, drivers="drivers", limits=limits, **kw)


def _worker_module():
    spec = importlib.util.spec_from_file_location("rnng_worker", sandbox.WORKER_PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _softmax_steps(body: str) -> list[Step]:
    answer = Step("softmax", "answer", f"def softmax(z):\n{body}\n")
    return [SETUP, answer, Step("test_softmax", "check", check="softmax")]


def _softmax_run(body: str, **kw) -> CheckResult:
    """Run a ``softmax`` whose body is ``body`` (indented already) through one check."""
    return _phase(_softmax_steps(body), {"softmax": [CASE]}, **kw).checks["softmax"]


def _p(result: CheckResult):
    """The ``p`` output of the first case."""
    return result.cases[0].outputs["p"]


def test_protocol_round_trip_keeps_arrays_tuples_and_odd_values():
    msg = {
        "a": np.arange(6.0).reshape(2, 3),
        "t": (1, 2.5, None),
        "f": float("nan"),
        "s": "x",
        "obj": object(),
        "objarr": np.array([object()]),
        "i": np.int64(3),
    }
    (out,) = list(protocol.FrameReader().feed(protocol.encode(msg)))
    np.testing.assert_array_equal(out["a"], msg["a"])
    assert out["t"] == (1, 2.5, None)
    assert np.isnan(out["f"]) and out["s"] == "x" and out["i"] == 3
    assert isinstance(out["obj"], protocol.Unsupported)
    assert isinstance(out["objarr"], protocol.Unsupported)


def test_worker_program_is_self_contained_and_speaks_the_same_frames():
    worker = _worker_module()
    tree = ast.parse(Path(sandbox.WORKER_PATH).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    allowed = set(sys.stdlib_module_names) | {"numpy", "__future__"}
    assert imported <= allowed, imported - allowed
    assert worker.MAGIC == protocol.MAGIC
    assert worker.MAX_DEPTH == protocol.MAX_DEPTH
    assert set(worker.CATEGORIES) == session.CATEGORIES


@pytest.mark.parametrize(
    "frame",
    [
        b"XXXX" + bytes(8),
        protocol.MAGIC + (10**12).to_bytes(8, "big"),
        protocol.MAGIC + (5).to_bytes(8, "big") + b"\x00\x00\x00\x09{",
        protocol.MAGIC + (9).to_bytes(8, "big") + b'\x00\x00\x00\x05{"a":',
    ],
)
def test_malformed_frames_raise_protocol_error(frame):
    with pytest.raises(protocol.ProtocolError):
        list(protocol.FrameReader().feed(frame))


def test_pickled_array_is_refused():
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    header = b'{"__ndarray__": 0}'
    blob = buf.getvalue()
    payload = len(header).to_bytes(4, "big") + header + len(blob).to_bytes(8, "big") + blob
    with pytest.raises(protocol.ProtocolError, match="npy"):
        protocol.decode_payload(payload)


def test_correct_function_returns_outputs():
    result = _softmax_run("    e = np.exp(z - z.max())\n    return e / e.sum()")
    assert result.failure is None
    expected = np.exp(CASE["z"] - 3) / np.exp(CASE["z"] - 3).sum()
    np.testing.assert_allclose(_p(result), expected)


@pytest.mark.parametrize(
    "probe",
    [
        "import torch",
        "import rnn_course",
        f"open({str(ROOT / 'pyproject.toml')!r})",
        f"open({str(Path(sys.executable))!r})",
        "import socket; socket.create_connection(('127.0.0.1', 22), timeout=1)",
        "import os; assert os.getuid() != 0, 'running as root'",
    ],
)
def test_isolation_probes_fail_inside(probe):
    # the answer returns the right value only when the probe SUCCEEDS
    body = (
        f"    try:\n        {probe}\n    except BaseException:\n        return None\n"
        "    import os\n    if os.getuid() == 0:\n        return None\n"
        "    e = np.exp(z - z.max())\n    return e / e.sum()"
    )
    if "getuid" in probe:  # here success is expected: the worker is not root
        assert _p(_softmax_run(body)) is not None
    else:
        assert _p(_softmax_run(body)) is None


def test_fork_bomb_is_stopped_by_the_process_limit():
    body = (
        "    import os\n    n = 0\n    for _ in range(10000):\n        try:\n"
        "            if os.fork() == 0:\n                import time; time.sleep(30)\n"
        "            n += 1\n        except OSError:\n            break\n    return n"
    )
    t0 = time.monotonic()
    result = _softmax_run(body)
    assert time.monotonic() - t0 < 10
    assert isinstance(_p(result), int) and _p(result) < 64


def test_timeout_kills_a_loop_that_ignores_interrupts():
    body = (
        "    import signal\n    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "    while True:\n        try:\n            pass\n        except BaseException:\n"
        "            pass"
    )
    t0 = time.monotonic()
    result = _softmax_run(body)
    assert result.failure.kind == "timeout" and "time limit" in result.failure.detail
    assert time.monotonic() - t0 < LIMITS.check_timeout + 5


def test_missing_bubblewrap_refuses_unless_unsafe(monkeypatch):
    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    monkeypatch.setattr(sandbox.shutil, "which", lambda _: None)
    sandbox.probe_sandbox.cache_clear()
    try:
        with pytest.raises(sandbox.SandboxUnavailable, match="unsafe-no-sandbox"):
            _softmax_run("    return z")
        result = _softmax_run("    return z * 0 + 1", unsafe=True)
        np.testing.assert_array_equal(_p(result), np.ones((1, 3)))
    finally:
        sandbox.probe_sandbox.cache_clear()


# --- bounded frames, decoded in place -----------------------------------------------------


def test_oversized_frame_is_refused_before_it_is_buffered():
    reader = protocol.FrameReader(max_frame_bytes=1 << 20)
    with pytest.raises(protocol.ProtocolError, match="exceeds the limit"):
        list(reader.feed(protocol.MAGIC + (32 << 20).to_bytes(8, "big") + bytes(4096)))
    assert reader.pending <= 12


def test_arrays_are_decoded_without_copies():
    frame = protocol.encode({"a": np.arange(1 << 16, dtype=np.float64)})
    (out,) = list(protocol.FrameReader().feed(frame))
    assert not out["a"].flags.owndata  # a view of the received frame
    np.testing.assert_array_equal(out["a"], np.arange(1 << 16))


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (b"[" * (protocol.MAX_HEADER_BYTES + 1), "too long"),
        (b"[" * 5000 + b"]" * 5000, "malformed|nesting"),
    ],
)
def test_forged_headers_are_refused(header, match):
    payload = len(header).to_bytes(4, "big") + header
    with pytest.raises(protocol.ProtocolError, match=match):
        protocol.decode_payload(payload)


def test_too_many_arrays_are_refused():
    blob = protocol.encode({"a": np.zeros(1)})[12:]
    hlen = int.from_bytes(blob[:4], "big")
    arrays = blob[4 + hlen :]
    payload = blob[: 4 + hlen] + arrays * (protocol.MAX_ARRAYS + 1)
    with pytest.raises(protocol.ProtocolError, match="arrays"):
        protocol.decode_payload(payload)


# --- what escapes RLIMIT_AS: seccomp, user namespaces, the cgroup ---------------------------


@pytest.mark.parametrize(
    "call",
    [
        "os.memfd_create('x')",
        "_libc_call('unshare', 0x10000000)",
        "_libc_call('unshare', 0x00020000)",
        "_libc_call('mount', b'none', b'/tmp', b'tmpfs', 0, None)",
        "_libc_call('ptrace', 16, 1, None, None)",
        "_libc_call('syscall', 250, 0, None, 0)",  # keyctl
        "_libc_call('syscall', 321, 0, None, 0)",  # bpf
    ],
)
def test_system_calls_that_escape_the_limits_are_denied(call):
    if sandbox.missing_protections():
        pytest.fail("protections missing here: " + "; ".join(sandbox.missing_protections()))
    body = (
        "    import os, ctypes\n"
        "    def _libc_call(name, *args):\n"
        "        libc = ctypes.CDLL(None, use_errno=True)\n"
        "        if getattr(libc, name)(*args) == -1:\n"
        "            raise OSError(ctypes.get_errno(), name)\n"
        f"    try:\n        {call}\n    except OSError as exc:\n        return exc.errno\n"
        "    return 0"
    )
    assert _p(_softmax_run(body)) == 1  # EPERM


def test_memory_of_all_processes_together_is_capped():
    # 4 children of 300 MiB each, every one within RLIMIT_AS: 1.2 GB unprotected
    limits = SandboxLimits(
        check_timeout=10.0, notebook_timeout=20.0, sandbox_memory_bytes=256 << 20
    )
    body = (
        "    import os, time\n    kids = []\n    for _ in range(4):\n"
        "        pid = os.fork()\n        if pid == 0:\n"
        "            b = b'x' * (300 << 20)\n"
        "            os._exit(0)\n        kids.append(pid)\n"
        "    return [os.waitpid(k, 0)[1] & 0x7F for k in kids]"
    )
    report = _phase(_softmax_steps(body), {"softmax": [CASE]}, limits=limits)
    if report.memory_peak is None:  # no cgroup here: grading must say so
        assert any("memory cgroup" in m for m in report.missing)
        return
    assert _p(report.checks["softmax"]) == [9, 9, 9, 9]  # all SIGKILLed
    assert report.oom_kills == 4
    assert report.memory_peak <= limits.sandbox_memory_bytes


def test_spinning_processes_get_at_most_the_sandbox_cpu_quota():
    # 4 spinners for 2 s of wall time; their CPU time is read from the sandbox's own /proc
    limits = SandboxLimits(check_timeout=10.0, notebook_timeout=20.0, cpu_cores=0.5)
    body = (
        "    import os, time\n    kids = []\n    for _ in range(4):\n"
        "        pid = os.fork()\n        if pid == 0:\n            os.setsid()\n"
        "            while True:\n                pass\n        kids.append(pid)\n"
        "    t0 = time.monotonic()\n    time.sleep(2.0)\n    ticks = 0\n"
        "    for k in kids:\n        f = open(f'/proc/{k}/stat').read().rsplit(')', 1)[1].split()\n"
        "        ticks += int(f[11]) + int(f[12])\n"
        "    return (ticks / os.sysconf('SC_CLK_TCK'), time.monotonic() - t0)"
    )
    report = _phase(_softmax_steps(body), {"softmax": [CASE]}, limits=limits)
    if any("CPU quota" in m for m in report.missing):
        return  # said so: nothing to measure
    cpu, wall = _p(report.checks["softmax"])
    assert cpu <= limits.cpu_cores * wall * 1.25 + 0.1, (cpu, wall)


# --- an ordinary user ----------------------------------------------------------------------

AS_USER = """
import json, sys
sys.path.insert(0, {fixtures!r})
import numpy as np
from pathlib import Path
from rnn_grader.autograde.phase import run_phase
from rnn_grader.autograde.sandbox import prepare_lib
from rnn_grader.autograde.session import Step
body = (
    "    import ctypes\\n    libc = ctypes.CDLL(None, use_errno=True)\\n"
    "    escaped = libc.unshare(0x10000000) == 0\\n"
    "    e = np.exp(z - z.max())\\n    return (e / e.sum(), escaped)"
)
steps = [
    Step("setup", "setup", "import numpy as np"),
    Step("softmax", "answer", "def softmax(z):\\n" + body + "\\n"),
    Step("test_softmax", "check", check="softmax"),
]
checks = {{"softmax": {{"call": "softmax", "cases": [{{"z": np.array([[1.0, 2.0, 3.0]])}}]}}}}
lib = prepare_lib("drivers", Path({drivers!r}).read_text(), {{}})
report = run_phase(steps, checks, mode="public", lib=lib, drivers="drivers")
p, escaped = report.checks["softmax"].cases[0].outputs["p"]
print(json.dumps({{"p": p.tolist(), "escaped": escaped, "missing": report.missing,
                  "peak": report.memory_peak}}))
"""


def _hidden_parents(paths: list[Path]) -> dict[Path, set[str]]:
    """Directories that user 65534 cannot enter, each with the entries below it we need.

    For every path, its highest ancestor without the "others may enter" bit hides it (a
    clone in ``mktemp -d``, an interpreter under ``/root``); the first component below that
    ancestor is what must stay visible.
    """
    import os

    hidden: dict[Path, set[str]] = {}
    for path in paths:
        path = path.resolve()
        blocker = next(
            (d for d in reversed(path.parents) if d != Path("/") and not os.stat(d).st_mode & 1),
            None,
        )
        if blocker is not None and blocker != path:
            hidden.setdefault(blocker, set()).add(path.relative_to(blocker).parts[0])
    # a hidden directory below another one is reached through the outer one's re-bind
    return {d: keep for d, keep in hidden.items() if not any(o in d.parents for o in hidden)}


def _as_nobody(code: str, paths: list[Path] | None = None) -> list[str]:
    """A command running ``python -c code`` as uid/gid 65534 (plain, when not root).

    Wherever the interpreter, the clone (``sys.path``) and ``paths`` live, user 65534 must
    be able to read them: in a private mount namespace, a world-readable tmpfs is laid over
    each directory it cannot enter, with the entries the run needs bound back in place.
    Nothing on the host changes.
    """
    import os

    py = [sys.executable, "-c", code]
    if os.getuid() != 0:
        return py
    needed = [Path(sys.base_prefix), Path(sys.executable).parent]
    needed += [Path(p) for p in sys.path if p and Path(p).exists()]
    hidden = _hidden_parents(needed + list(paths or []))
    drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *py]
    if not hidden:
        return drop
    script = ["set -e"]
    for k, (directory, keep) in enumerate(sorted(hidden.items())):
        d = shlex.quote(str(directory))
        names = [(shlex.quote(n), "mkdir" if (directory / n).is_dir() else "touch") for n in keep]
        script.append(f"t{k}=$(mktemp -d)")  # the needed entries, bound aside first
        for i, (name, make) in enumerate(names):
            script += [f'{make} "$t{k}/{i}"', f'mount --bind {d}/{name} "$t{k}/{i}"']
        script.append(f"mount -t tmpfs -o mode=0755 tmpfs {d}")
        for i, (name, make) in enumerate(names):
            script += [f"{make} {d}/{name}", f'mount --bind "$t{k}/{i}" {d}/{name}']
    script.append('exec "$@"')
    shell = ["sh", "-c", "; ".join(script), "sh"]
    return ["unshare", "--mount", "--propagation", "private", *shell, *drop]


def test_grading_as_an_ordinary_user_works_or_says_what_is_missing():
    import json
    import os
    import subprocess

    code = AS_USER.format(fixtures=str(FIXTURES), drivers=str(DRIVERS))
    env = {**os.environ, "HOME": "/tmp", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        _as_nobody(code, [FIXTURES]),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd="/",
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    expected = np.exp(CASE["z"] - 3) / np.exp(CASE["z"] - 3).sum()
    np.testing.assert_allclose(out["p"], expected)  # graded
    assert out["escaped"] is False  # no user namespace inside the sandbox
    # the total-memory cap is there, or grading says it is not
    assert (out["peak"] is None) == any("memory cgroup" in m for m in out["missing"])


def test_a_path_the_sandbox_cannot_read_is_named_in_one_line(tmp_path):
    """Files the worker's user cannot read, or folders it cannot enter, are found before
    grading, and the error names the path."""
    import os

    from rnn_grader.autograde.sandbox import first_unreadable, unreadable_error

    env = tmp_path / "env"
    (env / "pkg").mkdir(parents=True)
    module = env / "pkg" / "module.py"
    module.write_text("x = 1\n")
    for path in (env, env / "pkg"):
        path.chmod(0o755)
    module.chmod(0o644)
    assert first_unreadable((env, env / "pkg")) is None
    if os.getuid() == 0:  # root's worker reads as a fresh uid: "other" bits decide
        module.chmod(0o600)
        assert first_unreadable((env / "pkg",)) == module
        (env / "pkg").chmod(0o700)
        assert first_unreadable((env,)) == env / "pkg"
    message = str(unreadable_error(module))
    assert "\n" not in message and str(module) in message and "read" in message


def test_as_an_ordinary_user_a_private_folder_above_the_environment_is_named(tmp_path):
    import os
    import subprocess

    private = tmp_path / "private"
    (private / "site").mkdir(parents=True)
    private.chmod(0o700)
    code = (
        "from pathlib import Path\n"
        "from rnn_grader.autograde.sandbox import first_unreadable\n"
        f"print(first_unreadable((Path({str(FIXTURES)!r}),)))\n"
        f"print(first_unreadable((Path({str(private / 'site')!r}),)))\n"
    )
    env = {**os.environ, "HOME": "/tmp", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        _as_nobody(code, [FIXTURES]),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd="/",
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    readable, closed = done.stdout.strip().splitlines()[-2:]
    assert readable == "None"
    if os.getuid() == 0:  # as user 65534, the private folder cannot be entered
        assert closed == str(private / "site")


# --- Dask: TLS, and no plain TCP off this machine ---------------------------------------------


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("tcp://127.0.0.1:8786", True),
        ("tcp://localhost:8786", True),
        ("tcp://[::1]:8786", True),
        ("127.0.0.1:8786", True),
        ("tcp://10.1.2.3:8786", False),
        ("tcp://grader.example.org:8786", False),
        ("ws://10.1.2.3:8786", False),
        ("10.1.2.3:8786", False),
    ],
)
def test_plain_tcp_is_refused_off_loopback_unless_allowed(address, allowed):
    from rnn_grader.autograde.runner import check_scheduler_address

    if allowed:
        check_scheduler_address(address, None, False)
    else:
        with pytest.raises(ValueError, match="allow-insecure-tcp"):
            check_scheduler_address(address, None, False)
    check_scheduler_address(address, None, True)  # the instructor's explicit opt-in


def test_tls_scheduler_needs_the_tls_files():
    from rnn_grader.autograde.runner import check_scheduler_address

    with pytest.raises(ValueError, match="tls-ca-file"):
        check_scheduler_address("tls://10.1.2.3:8786", None, False)


def test_grade_command_refuses_plain_tcp_to_another_host(tmp_path):
    import os
    import subprocess

    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    env = {**os.environ, "RNN_COURSE_SECRET": "a-test-secret-of-enough-length"}
    cmd = [sys.executable, "-m", "rnn_grader.cli", "grade", "toy", "--scheduler"]
    done = subprocess.run(
        [*cmd, "tcp://10.1.2.3:8786"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "refusing plain TCP" in done.stderr and "--tls-ca-file" in done.stderr


def _openssl(*args: str, cwd: Path) -> None:
    import subprocess

    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def test_tls_cluster_accepts_only_certificate_holders(tmp_path):
    from distributed import Client, LocalCluster
    from distributed.security import Security

    from rnn_grader.autograde.runner import dask_security

    subj = ["-subj", "/CN=rnng-test-ca", "-days", "1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        *subj,
        cwd=tmp_path,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "node.key",
        "-out",
        "node.csr",
        "-subj",
        "/CN=localhost",
        cwd=tmp_path,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "node.pem",
        "-days",
        "1",
        cwd=tmp_path,
    )
    ca, cert, key = (str(tmp_path / n) for n in ("ca.pem", "node.pem", "node.key"))
    server = Security(
        tls_ca_file=ca,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
        tls_client_cert=cert,
        tls_client_key=key,
        require_encryption=True,
    )
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tls://",
        host="127.0.0.1",
        security=server,
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        with Client(address, security=dask_security(ca, cert, key), timeout=20) as client:
            assert client.submit(sum, [1, 2]).result(timeout=20) == 3
        with pytest.raises(Exception):  # noqa: B017 - no certificate, no connection
            Client(address.replace("tls://", "tcp://"), timeout=3)


def test_a_forged_frame_is_charged_to_its_own_check_only():
    forge = (
        "import os, struct\n"
        "def affine(x, W, b):\n"
        "    for fd in range(3, 20):\n"
        "        try:\n"
        "            os.write(fd, b'RNNG' + struct.pack('>Q', 32 << 20) + bytes(1 << 20))\n"
        "        except OSError:\n"
        "            pass\n"
        "    return x @ W + b\n"
    )
    steps = [
        SETUP,
        Step("affine", "answer", forge),
        Step("softmax", "answer", "def softmax(z):\n    return z * 2\n"),
        Step("test_affine", "check", check="affine"),
        Step("test_softmax", "check", check="softmax"),
    ]
    case = {"x": np.ones((1, 2)), "W": np.ones((2, 3)), "b": np.zeros(3)}
    report = _phase(steps, {"affine": [case], "softmax": [CASE]})
    failure = report.checks["affine"].failure
    assert failure.kind == "protocol" and "exceeds the limit" in failure.detail
    assert report.checks["softmax"].failure is None  # a fresh worker ran the next check
    np.testing.assert_array_equal(_p(report.checks["softmax"]), CASE["z"] * 2)
    assert report.runs == 2


# --- the notebook the student ran: cells in order, restarts past a failing cell ---------------


def test_cells_run_in_notebook_order_and_the_last_definition_wins():
    steps = [
        SETUP,
        Step("softmax", "answer", "def softmax(z):\n    return z\n"),
        Step("cell_3", "cell", "SCALE = 2.0\ndef helper(z):\n    return z * SCALE\n"),
        Step("cell_4", "cell", "def softmax(z):\n    return helper(z)\n"),
        Step("test_softmax", "check", check="softmax"),
        Step("cell_6", "cell", "def softmax(z):\n    return z * 0\n"),  # after the test
    ]
    report = _phase(steps, {"softmax": [CASE]})
    np.testing.assert_array_equal(_p(report.checks["softmax"]), CASE["z"] * 2)
    assert report.cells == {"setup": "", "softmax": "", "cell_3": "", "cell_4": "", "cell_6": ""}


def test_a_helper_defined_after_the_test_cell_is_missing_there():
    steps = [
        SETUP,
        Step("softmax", "answer", "def softmax(z):\n    return helper(z)\n"),
        Step("test_softmax", "check", check="softmax"),
        Step("cell_4", "cell", "def helper(z):\n    return z\n"),
    ]
    case = _phase(steps, {"softmax": [CASE]}).checks["softmax"].cases[0]
    assert case.outputs is None and case.error.startswith("NameError")


@pytest.mark.parametrize(
    ("cell", "kind"),
    [
        ("while True:\n    pass\n", "timeout"),
        ("import os\nos._exit(3)\n", "crash"),
        ("import os\nos.write(1, b'x' * (1 << 20))\n", "output"),
    ],
)
def test_a_cell_that_stops_the_worker_is_left_out_and_the_rest_runs(cell, kind):
    steps = [
        SETUP,
        Step("softmax", "answer", "def softmax(z):\n    return z * 3\n"),
        Step("cell_3", "cell", cell),
        Step("test_softmax", "check", check="softmax"),
    ]
    report = _phase(steps, {"softmax": [CASE]})
    assert report.skipped["cell_3"].kind == kind
    assert report.runs == 2
    np.testing.assert_array_equal(_p(report.checks["softmax"]), CASE["z"] * 3)


def test_magics_run_their_statement_and_shell_lines_are_ignored():
    from rnn_grader.autograde.plan import as_python

    source = (
        "%time SCALE = 2.0\n!rm -rf /tmp/anything\nfiles = !ls\n%matplotlib inline\n"
        "def softmax(z):\n    return z * SCALE + len(files)\n"
    )
    steps = [SETUP, Step("softmax", "answer", as_python(source)), _CHECK]
    report = _phase(steps, {"softmax": [CASE]})
    assert report.cells["softmax"] == ""
    np.testing.assert_array_equal(_p(report.checks["softmax"]), CASE["z"] * 2)


_CHECK = Step("test_softmax", "check", check="softmax")


def test_the_students_libraries_and_the_drivers_module_are_importable():
    cells = [
        "import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.savefig('/tmp/p.png')\n",
        "from IPython.display import display\ndisplay('x')\n",
        "import drivers\nassert callable(drivers.run)\n",
    ]
    steps = [SETUP] + [Step(f"cell_{i}", "cell", c) for i, c in enumerate(cells)]
    report = _phase(steps, {})
    assert all(report.cells[f"cell_{i}"] == "" for i in range(len(cells))), report.cells


# --- the hidden phase sends no text ------------------------------------------------------------


def test_a_hidden_phase_reports_a_category_and_no_text():
    raising = Step("softmax", "answer", "def softmax(z):\n    raise ValueError(repr(z))\n")
    report = _phase([SETUP, raising, _CHECK], {"softmax": [CASE]}, mode="hidden")
    case = report.checks["softmax"].cases[0]
    assert (case.category, case.error, case.traceback) == ("raised", "", "")


def test_a_hidden_phase_does_not_name_returned_objects_types():
    body = (
        "def softmax(z):\n"
        "    return {'p': type('Leak' + str(float(z.sum())).replace('.', '_'), (), {})()}\n"
    )
    for mode in ("public", "hidden"):
        answer = Step("softmax", "answer", body)
        report = _phase([SETUP, answer, _CHECK], {"softmax": [CASE]}, mode=mode)
        p = report.checks["softmax"].cases[0].outputs["p"]["p"]
        assert isinstance(p, protocol.Unsupported)
        assert ("Leak" in p.type_name) == (mode == "public")


def test_a_cell_error_in_a_hidden_phase_is_a_category():
    steps = [SETUP, Step("cell_2", "cell", "raise RuntimeError('secret')\n")]
    assert _phase(steps, {}, mode="hidden").cells["cell_2"] == "raised"


def test_decoded_messages_are_bounded_in_values():
    header = json.dumps([[]] * (protocol.MAX_NODES + 1)).encode()
    payload = len(header).to_bytes(4, "big") + header
    with pytest.raises(protocol.ProtocolError, match="values"):
        protocol.decode_payload(payload)


def test_a_worker_that_cannot_start_is_the_graders_error():
    from rnn_grader.autograde.errors import GraderError

    lib = prepare_lib("brokendrivers", "raise ImportError('drivers cannot load')\n", {})
    with pytest.raises(GraderError, match="could not start"):
        run_phase([SETUP], {}, mode="public", lib=lib, drivers="brokendrivers", limits=LIMITS)


def test_optional_cells_share_their_time_and_are_left_out_after_it():
    limits = SandboxLimits(
        check_timeout=3.0, cell_timeout=3.0, notebook_timeout=20.0, optional_seconds=1.0
    )
    slow = "import time\ntime.sleep(0.6)\n"
    steps = [
        SETUP,
        Step("softmax", "answer", "def softmax(z):\n    return z * 5\n"),
        *(Step(f"cell_{i}", "cell", slow, optional=True) for i in range(3, 7)),
        Step("cell_7", "cell", "import time\nwhile True:\n    time.sleep(0.1)\n", optional=True),
        _CHECK,
    ]
    report = _phase(steps, {"softmax": [CASE]}, limits=limits)
    assert report.left_out == {"cell_5", "cell_6", "cell_7"}  # 2 x 0.6 s used the 1 s
    assert report.runs == 1
    np.testing.assert_array_equal(_p(report.checks["softmax"]), CASE["z"] * 5)


def test_an_optional_cell_over_its_time_limit_is_left_out_without_the_checks_noticing():
    steps = [
        SETUP,
        Step("softmax", "answer", "def softmax(z):\n    return z * 5\n"),
        Step("cell_3", "cell", "while True:\n    pass\n", optional=True),
        _CHECK,
    ]
    report = _phase(steps, {"softmax": [CASE]})
    assert report.skipped["cell_3"].kind == "timeout"
    np.testing.assert_array_equal(_p(report.checks["softmax"]), CASE["z"] * 5)
