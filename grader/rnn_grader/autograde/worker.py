"""The program that runs INSIDE the sandbox: execute answer cells, run checks, send outputs.

Self-contained on purpose (standard library and NumPy only, no imports from this package):
the sandbox mounts this file, the grading drivers and NumPy, and nothing else. It never
sees expected values and never compares anything; it only returns what the student's
functions computed, as plain data, in the frame format of ``rnn_grader.autograde.protocol``.

Usage: ``python -S -E -s worker.py SITE_DIR DRIVERS_PY``. Input (stdin, one frame):
``{"cells": [{"id", "source", "kind"}], "checks": [{"name", "call", "cases"}]}``; the
driver's ``run(call, namespace, case)`` calls the student's functions. Output (a
private copy of fd 1), one frame per event:
``ready``, ``cell`` (per answer cell), ``start`` / ``case`` / ``end`` (per check), ``done``.
Everything the student prints goes to fd 2, which the grader reads and caps.
"""

import ast
import builtins
import contextlib
import io
import json
import math
import os
import struct
import sys
import traceback

MAGIC = b"RNNG"
MAX_DEPTH = 32


def apply_limits() -> None:
    """setrlimit from the launcher's RNNG_LIMITS, before any student code exists."""
    import resource

    limits = json.loads(os.environ.get("RNNG_LIMITS", "{}"))
    table = {
        "cpu": resource.RLIMIT_CPU,
        "as": resource.RLIMIT_AS,
        "nproc": resource.RLIMIT_NPROC,
        "fsize": resource.RLIMIT_FSIZE,
    }
    for key, which in table.items():
        if key in limits:
            resource.setrlimit(which, (int(limits[key]), int(limits[key])))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def drop_privileges() -> None:
    """Become the unprivileged uid the launcher chose (only when started as root)."""
    uid = int(os.environ.get("RNNG_UID", "0") or 0)
    if uid and os.getuid() == 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if os.getuid() == 0 and os.environ.get("RNNG_REQUIRE_UNPRIVILEGED") == "1":
        raise SystemExit("worker: refusing to run student code as root")


def encode(message, np):
    """Encode ``message`` (plain data) into one frame; the trusted side uses this too."""
    blobs = []

    def enc(value, depth):
        if depth > MAX_DEPTH:
            return {"__unsupported__": "nesting too deep"}
        if value is None or isinstance(value, bool | str):
            return value
        if isinstance(value, int | np.integer):
            return int(value)
        if isinstance(value, float | np.floating):
            f = float(value)
            return f if math.isfinite(f) else {"__float__": repr(f)}
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if isinstance(value, np.ndarray):
            if value.dtype.hasobject:
                return {"__unsupported__": "numpy object array"}
            buf = io.BytesIO()
            np.save(buf, value, allow_pickle=False)
            blobs.append(buf.getvalue())
            return {"__ndarray__": len(blobs) - 1}
        if isinstance(value, tuple):
            return {"__tuple__": [enc(v, depth + 1) for v in value]}
        if isinstance(value, list):
            return [enc(v, depth + 1) for v in value]
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"__dict__": {k: enc(v, depth + 1) for k, v in value.items()}}
        return {"__unsupported__": type(value).__name__}

    header = json.dumps(enc(message, 0)).encode()
    parts = [struct.pack(">I", len(header)), header]
    for blob in blobs:
        parts += [struct.pack(">Q", len(blob)), blob]
    payload = b"".join(parts)
    return MAGIC + struct.pack(">Q", len(payload)) + payload


def decode(payload, np):
    """Decode the request frame (trusted input from the grader)."""
    (hlen,) = struct.unpack_from(">I", payload, 0)
    header = json.loads(payload[4 : 4 + hlen].decode())
    pos, blobs = 4 + hlen, []
    while pos < len(payload):
        (blen,) = struct.unpack_from(">Q", payload, pos)
        blobs.append(payload[pos + 8 : pos + 8 + blen])
        pos += 8 + blen

    def dec(value):
        if isinstance(value, list):
            return [dec(v) for v in value]
        if not isinstance(value, dict):
            return value
        ((tag, inner),) = value.items()
        if tag == "__ndarray__":
            return np.load(io.BytesIO(blobs[inner]), allow_pickle=False)
        if tag == "__tuple__":
            return tuple(dec(v) for v in inner)
        if tag == "__dict__":
            return {k: dec(v) for k, v in inner.items()}
        if tag == "__float__":
            return float(inner)
        return None

    return dec(header)


def read_request(np):
    data = sys.stdin.buffer.read()
    if data[:4] != MAGIC:
        raise SystemExit("worker: bad request")
    return decode(data[12:], np)


def safe_str(exc, limit=2000):
    """``"Type: message"`` for any exception, even one whose ``__str__`` misbehaves."""
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:
        text = f"{type(exc).__name__}: <unprintable>"
    return text[:limit]


def short_traceback(exc, limit=4000):
    """The traceback of ``exc`` restricted to the student's own frames (<cell ...>)."""
    try:
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        kept = [ln for ln in lines if 'File "<cell' in ln or not ln.startswith("  File")]
        return "".join(kept)[-limit:]
    except BaseException:
        return safe_str(exc, limit)


def run_setup(source, namespace):
    """Run only the top-level imports of a read-only setup cell, each on its own."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            # a course-only import (e.g. the grader itself) is absent here: skip it
            with contextlib.suppress(BaseException):
                exec(compile(ast.Module([node], []), "<setup>", "exec"), namespace)


def main() -> None:
    site, drivers_path = sys.argv[1], sys.argv[2]
    apply_limits()
    drop_privileges()
    sys.path.insert(0, site)
    # The protocol gets a private copy of fd 1; the student's fd 1 and fd 2 both go to fd 2.
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    import numpy as np

    request = read_request(np)
    os.close(0)

    def send(message):
        try:
            data = encode(message, np)
        except BaseException as exc:
            fallback = {k: v for k, v in message.items() if k in ("kind", "check", "index", "id")}
            fallback["error"] = "outputs could not be sent as plain data: " + safe_str(exc)
            data = encode(fallback, np)
        view = memoryview(data)
        while view:
            n = os.write(proto_fd, view)
            view = view[n:]

    send({"kind": "ready"})
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    for cell in request["cells"]:
        if cell["kind"] == "setup":
            run_setup(cell["source"], namespace)
            continue
        try:
            exec(compile(cell["source"], f"<cell {cell['id']}>", "exec"), namespace)
            send({"kind": "cell", "id": cell["id"], "ok": True, "error": ""})
        except BaseException as exc:  # SystemExit and KeyboardInterrupt included
            send({"kind": "cell", "id": cell["id"], "ok": False, "error": short_traceback(exc)})

    import importlib.util

    spec = importlib.util.spec_from_file_location("rnng_drivers", drivers_path)
    drivers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drivers)
    for check in request["checks"]:
        name = check["name"]
        call = check.get("call", name)
        send({"kind": "start", "check": name})
        for index, case in enumerate(check["cases"]):
            try:
                outputs = drivers.run(call, namespace, case)
                message = {"kind": "case", "check": name, "index": index, "outputs": outputs}
            except BaseException as exc:
                message = {
                    "kind": "case",
                    "check": name,
                    "index": index,
                    "error": safe_str(exc),
                    "traceback": short_traceback(exc),
                }
            send(message)
        send({"kind": "end", "check": name})
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    send({"kind": "done"})
    os._exit(0)


if __name__ == "__main__":
    main()
