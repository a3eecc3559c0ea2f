"""The program that runs INSIDE the sandbox: run a notebook's steps in order, send outputs.

Self-contained on purpose (standard library and NumPy only, no imports from this package):
the sandbox mounts this file, the grading drivers and the student's libraries, and
nothing else. It never sees expected values and never compares anything; it only returns
what the student's functions computed, as plain data, in the frame format of
``rnn_grader.autograde.protocol``.

Usage: ``python -S -E -s worker.py SITE_DIR LIB_DIR``. Input (stdin, one frame)::

    {"mode": "public" | "hidden", "drivers": module name in LIB_DIR,
     "steps": [{"id", "kind": "setup" | "answer" | "cell" | "check", "source" | "check"}],
     "checks": {name: {"call", "cases", "time_factor"}}, "skip": [step ids], "optional_seconds": s}

The steps are the notebook's code cells in notebook order, a ``check`` step standing
where the test cell stands; the driver's ``run(call, namespace, case)`` calls the
student's functions. A step marked ``optional`` (a cell no graded function needs) runs
only while the optional steps of this run have used less than ``optional_seconds``.
Output (a private copy of fd 1), one frame per event: ``ready``, ``step`` (before each
step that is not skipped) or ``skip`` (an optional step left out for lack of time),
``cell`` (after a code step), ``case`` (one per case of a check) and ``end`` (after a
check), then ``done``. Everything the student prints goes to fd 2, which the grader
counts and caps.

In ``hidden`` mode the process holds inputs the student must not learn, so it sends no
text that student code could shape: a failing cell or case is reported by a category
from a fixed list, and objects that are not plain data lose their type names.
"""

import ast
import builtins
import contextlib
import importlib
import io
import json
import math
import os
import struct
import sys
import time
import traceback

MAGIC = b"RNNG"
MAX_DEPTH = 32
#: The categories a failing case may report (the trusted side accepts no others).
CATEGORIES = ("raised", "memory", "structure")
#: Line and cell magics whose statement runs (once) as plain Python; every other magic,
#: shell command and help request is a no-op, as it would be for the graded functions.
RUN_MAGICS = frozenset({"time", "timeit", "prun", "capture"})
#: ``%timeit`` options that take a value.
VALUED_OPTIONS = frozenset({"-n", "-r", "-p"})


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


def encode(message, np, *, type_names=True):
    """Encode ``message`` (plain data) into one frame; the trusted side uses this too.

    Without ``type_names`` an object that is not plain data is sent as an unnamed
    ``__unsupported__`` marker (a class name can be chosen by student code).
    """
    blobs = []

    def enc(value, depth):
        if depth > MAX_DEPTH:
            return {"__unsupported__": "nesting too deep"}
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return str.__str__(value)
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
            np.save(buf, np.asarray(value), allow_pickle=False)
            blobs.append(buf.getvalue())
            return {"__ndarray__": len(blobs) - 1}
        if isinstance(value, tuple):
            return {"__tuple__": [enc(v, depth + 1) for v in value]}
        if isinstance(value, list):
            return [enc(v, depth + 1) for v in value]
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"__dict__": {str.__str__(k): enc(v, depth + 1) for k, v in value.items()}}
        return {"__unsupported__": type(value).__name__[:100] if type_names else ""}

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


def category(exc):
    """The fixed category of an exception raised by student code."""
    return "memory" if isinstance(exc, MemoryError) else "raised"


def _statement(line):
    """The statement of a ``%timeit``-style line, without its options."""
    words = line.split()
    while words and words[0].startswith("-"):
        option = words.pop(0)
        if option in VALUED_OPTIONS and words:
            words.pop(0)
    return " ".join(words) if words != line.split() else line


class Shell:
    """What ``get_ipython()`` returns here: magics run their statement once, or nothing.

    The trusted side turns IPython syntax into calls of these methods, exactly as
    IPython's own input transformer does (``%time f(x)`` becomes
    ``get_ipython().run_line_magic('time', 'f(x)')``).
    """

    def __init__(self, namespace):
        self.user_ns = namespace

    def run_line_magic(self, name, line, _stack_depth=1):
        if name in RUN_MAGICS:
            frame = sys._getframe(1)
            code = compile(_statement(line), "<magic>", "exec")
            exec(code, frame.f_globals, frame.f_locals)

    def run_cell_magic(self, name, line, cell):
        if name in RUN_MAGICS:
            if name == "timeit" and _statement(line).strip():
                exec(compile(_statement(line), "<magic>", "exec"), self.user_ns)
            exec(compile(cell, "<magic>", "exec"), self.user_ns)

    def system(self, cmd):
        return None

    def getoutput(self, cmd, split=True):
        return []

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def display(*objs, **kwargs):
    """IPython's ``display`` outside a kernel: print each object's repr."""
    for obj in objs:
        print(repr(obj))


def run_setup(source, namespace):
    """Run the instructor's read-only setup cell one top-level statement at a time.

    A statement that needs something absent here (a course-only import) is skipped; the
    rest still runs.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    for node in tree.body:
        with contextlib.suppress(BaseException):
            exec(compile(ast.Module([node], []), "<setup>", "exec"), namespace)


def main() -> None:
    site, lib = sys.argv[1], sys.argv[2]
    apply_limits()
    drop_privileges()
    sys.path[:0] = [lib, site]
    # The protocol gets a private copy of fd 1; the student's fd 1 and fd 2 both go to fd 2.
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    import numpy as np

    request = read_request(np)
    os.close(0)
    hidden = request["mode"] == "hidden"

    def send(message):
        try:
            data = encode(message, np, type_names=not hidden)
        except BaseException as exc:
            fallback = {k: v for k, v in message.items() if k in ("kind", "check", "index", "id")}
            if hidden:
                fallback["category"] = "structure"
            else:
                fallback["error"] = "outputs could not be sent as plain data: " + safe_str(exc)
            data = encode(fallback, np)
        view = memoryview(data)
        while view:
            n = os.write(proto_fd, view)
            view = view[n:]

    drivers = importlib.import_module(request["drivers"])
    send({"kind": "ready"})
    namespace = {"__name__": "__main__", "__builtins__": builtins, "display": display}
    shell = Shell(namespace)
    namespace["get_ipython"] = lambda: shell
    skip = set(request.get("skip", ()))
    checks = request["checks"]
    optional_left = float(request.get("optional_seconds", 0.0))
    for step in request["steps"]:
        sid, kind = step["id"], step["kind"]
        if sid in skip or (kind == "check" and step["check"] not in checks):
            continue
        optional = bool(step.get("optional"))
        if optional and optional_left <= 0:
            send({"kind": "skip", "id": sid})
            continue
        started = time.monotonic()
        send({"kind": "step", "id": sid})
        if kind == "check":
            run_check(step["check"], checks[step["check"]], namespace, drivers, hidden, send)
            continue
        if kind == "setup":
            run_setup(step["source"], namespace)
            send({"kind": "cell", "id": sid, "error": ""})
            continue
        try:
            exec(compile(step["source"], f"<cell {sid}>", "exec"), namespace)
            error = ""
        except BaseException as exc:  # SystemExit and KeyboardInterrupt included
            error = category(exc) if hidden else short_traceback(exc)
        send({"kind": "cell", "id": sid, "error": error})
        if optional:
            optional_left -= time.monotonic() - started
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    send({"kind": "done"})
    os._exit(0)


def run_check(name, spec, namespace, drivers, hidden, send):
    """Every case of check ``name``: the outputs, or what went wrong."""
    for index, case in enumerate(spec["cases"]):
        message = {"kind": "case", "check": name, "index": index}
        try:
            message["outputs"] = drivers.run(spec["call"], namespace, case)
        except BaseException as exc:
            message["category"] = category(exc)
            if not hidden:
                message["error"] = safe_str(exc)
                message["traceback"] = short_traceback(exc)
        send(message)
    send({"kind": "end", "check": name})


if __name__ == "__main__":
    main()
