"""The sandboxed worker: wire protocol, isolation and resource limits."""

from __future__ import annotations

import ast
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnn_grader.autograde import protocol, sandbox
from rnn_grader.autograde.sandbox import SandboxLimits, run_sandbox

FIXTURES = Path(__file__).parent / "fixtures" / "attacks"
DRIVERS = FIXTURES / "toygrading" / "drivers.py"
ROOT = Path(__file__).resolve().parents[1]
LIMITS = SandboxLimits(check_timeout=3.0, notebook_timeout=20.0)
CASE = {"z": np.array([[1.0, 2.0, 3.0]])}


def _worker_module():
    spec = importlib.util.spec_from_file_location("rnng_worker", sandbox.WORKER_PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _softmax_run(body: str, **kw) -> sandbox.CheckResult:
    """Run a ``softmax`` whose body is ``body`` (indented already) through one check."""
    cells = [
        {"id": "setup0", "kind": "setup", "source": "import numpy as np"},
        {"id": "softmax", "kind": "answer", "source": f"def softmax(z):\n{body}\n"},
    ]
    report = run_sandbox(cells, [{"name": "softmax", "call": "softmax", "cases": [CASE]}], DRIVERS, limits=LIMITS, **kw)
    return report.checks["softmax"]


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
    np.testing.assert_allclose(result.outputs[0]["p"], expected)


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
        assert _softmax_run(body).outputs[0]["p"] is not None
    else:
        assert _softmax_run(body).outputs[0]["p"] is None


def test_fork_bomb_is_stopped_by_the_process_limit():
    body = (
        "    import os\n    n = 0\n    for _ in range(10000):\n        try:\n"
        "            if os.fork() == 0:\n                import time; time.sleep(30)\n"
        "            n += 1\n        except OSError:\n            break\n    return n"
    )
    t0 = time.monotonic()
    result = _softmax_run(body)
    assert time.monotonic() - t0 < 10
    assert isinstance(result.outputs[0]["p"], int) and result.outputs[0]["p"] < 64


def test_timeout_kills_a_loop_that_ignores_interrupts():
    body = (
        "    import signal\n    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "    while True:\n        try:\n            pass\n        except BaseException:\n"
        "            pass"
    )
    t0 = time.monotonic()
    result = _softmax_run(body)
    assert result.ename == "TimeoutError" and "time limit" in result.failure
    assert time.monotonic() - t0 < LIMITS.check_timeout + 5


def test_missing_bubblewrap_refuses_unless_unsafe(monkeypatch):
    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    monkeypatch.setattr(sandbox.shutil, "which", lambda _: None)
    sandbox.probe_sandbox.cache_clear()
    try:
        with pytest.raises(sandbox.SandboxUnavailable, match="unsafe-no-sandbox"):
            _softmax_run("    return z")
        result = _softmax_run("    return z * 0 + 1", unsafe=True)
        np.testing.assert_array_equal(result.outputs[0]["p"], np.ones((1, 3)))
    finally:
        sandbox.probe_sandbox.cache_clear()
