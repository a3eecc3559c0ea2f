"""Launch the grading worker under bubblewrap, with resource limits, and talk to it.

The sandbox sees a private root containing only: the Python runtime (binary, shared
library and standard library, with ``site-packages`` hidden), NumPy, the worker and the
grading drivers, an empty size-limited ``/tmp``, its own ``/proc`` and ``/dev``. No
network (``--unshare-net``), its own PID namespace (everything it starts dies with it),
no course directory, no gradebook, no other submission, neither torch nor rnn_course.

When the grader runs as root, bwrap keeps only ``CAP_SETUID``/``CAP_SETGID`` and the
worker switches to a fresh unprivileged uid before reading the student's code, so
``RLIMIT_NPROC`` is enforced (the kernel never enforces it for uid 0). Otherwise bwrap
maps the caller to ``nobody`` in a user namespace, and ``--disable-userns`` forbids
nested ones.

Around every run: a control group (:mod:`~rnn_grader.autograde.cgroups`) caps the memory
of all the sandbox's processes together, its CPUs and its process count, so that the
kernel kills the sandbox, never the grader; a seccomp filter
(:mod:`~rnn_grader.autograde.seccomp`) denies the system calls that hold memory outside
those limits or leave the namespaces. Where one of these protections cannot be had
(typically no cgroup for an ordinary user), :func:`missing_protections` names it and
grading says so.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnn_grader.autograde import cgroups, seccomp
from rnn_grader.autograde.protocol import MAX_FRAME_BYTES, FrameReader, ProtocolError, encode

BWRAP = "/usr/bin/bwrap"
WORKER_PATH = Path(__file__).with_name("worker.py")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or does not work here, and the unsafe opt-out was not given."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed worker."""

    check_timeout: float = 10.0  # wall seconds for one check (all its cases) or the answer cells
    notebook_timeout: float = 60.0  # wall seconds for everything one notebook runs
    cpu_seconds: int = 60  # RLIMIT_CPU of every process in the sandbox
    memory_bytes: int = 1 << 30  # RLIMIT_AS (address space) of every process
    sandbox_memory_bytes: int = 1 << 30  # cgroup cap on all its processes' memory together
    cpu_cores: float = 1.0  # cgroup CPU quota of the whole sandbox, in CPUs
    max_processes: int = 32  # RLIMIT_NPROC for the sandbox's own uid
    max_file_bytes: int = 4 << 20  # RLIMIT_FSIZE: largest file it may write
    tmp_bytes: int = 8 << 20  # size of the sandbox's /tmp
    max_output_bytes: int = 256 << 10  # printed output (stdout + stderr) before it is killed
    max_frame_bytes: int = MAX_FRAME_BYTES  # largest protocol message
    max_message_bytes: int = 64 << 20  # protocol bytes of one notebook, all runs together
    require_cgroup: bool = False  # refuse to grade where no memory cgroup can be made


@dataclass
class CheckResult:
    """What the worker returned for one check: one entry per case, or a failure."""

    name: str
    outputs: list[Any] = field(default_factory=list)  # dict of outputs, or {"error": ...}
    failure: str | None = None  # the check could not complete (timeout, crash, flood, ...)
    ename: str = "RuntimeError"


@dataclass
class SandboxReport:
    """Everything one notebook's sandbox runs produced."""

    cells: dict[str, str] = field(default_factory=dict)  # answer cell id -> error ("" = ok)
    checks: dict[str, CheckResult] = field(default_factory=dict)
    output_head: str = ""  # first bytes the student's code printed
    runs: int = 0  # sandbox processes started (> 1 after a timeout or crash)
    seconds: float = 0.0
    protocol_bytes: int = 0  # bytes the worker sent, all runs together
    memory_peak: int | None = None  # most memory the sandbox's cgroup held (bytes)
    oom_kills: int = 0  # processes the kernel killed for exceeding the cgroup's memory
    missing: tuple[str, ...] = ()  # protections that could not be applied to this run


def _runtime_paths() -> dict[str, Path]:
    """Host paths of the interpreter, its shared library, its stdlib and NumPy."""
    exe = Path(os.path.realpath(sys.executable))
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    libdir = Path(sysconfig.get_config_var("LIBDIR") or exe.parent.parent / "lib")
    ldlib = sysconfig.get_config_var("LDLIBRARY") or ""
    numpy_dir = Path(np.__file__).resolve().parent
    paths = {"exe": exe, "stdlib": stdlib, "numpy": numpy_dir}
    if ldlib.endswith(".so") or ".so." in ldlib:
        for cand in sorted(libdir.glob(ldlib + "*")):
            paths["libpython"] = cand.resolve()
            paths["libpython_name"] = Path(cand.resolve().name)
            break
    libs = numpy_dir.parent / "numpy.libs"
    if libs.is_dir():
        paths["numpy_libs"] = libs
    return paths


def _version() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def bwrap_command(
    drivers: Path, uid: int, limits: SandboxLimits | None = None, seccomp_fd: int | None = None
) -> tuple[list[str], dict[str, str]]:
    """The bwrap command line that runs the worker, and the environment inside.

    ``seccomp_fd`` is a readable descriptor holding the compiled filter (bwrap
    ``--seccomp``); the caller must pass it on to bwrap.
    """
    limits = limits or SandboxLimits()
    p = _runtime_paths()
    v = _version()
    root = os.getuid() == 0
    env = {
        "PATH": "/opt/python/bin",
        "HOME": "/tmp",
        "LANG": "C.UTF-8",
        "LD_LIBRARY_PATH": "/opt/python/lib",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "RNNG_UID": str(uid) if root else "0",
        "RNNG_REQUIRE_UNPRIVILEGED": "1",
    }
    cmd = [BWRAP, "--die-with-parent", "--new-session", "--clearenv"]
    cmd += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    cmd += ["--unshare-cgroup-try", "--hostname", "sandbox"]
    if root:
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        cmd += ["--unshare-user", "--disable-userns", "--uid", "65534", "--gid", "65534"]
    if seccomp_fd is not None:
        cmd += ["--seccomp", str(seccomp_fd)]
    for d in ("/usr", "/usr/lib"):
        cmd += ["--perms", "0755", "--dir", d]
    for name in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/aarch64-linux-gnu"):
        if Path(name).is_dir():
            cmd += ["--ro-bind", name, name]
    cmd += ["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"]
    for d in ("/opt", "/opt/python", "/opt/python/bin", "/opt/python/lib", "/opt/site"):
        cmd += ["--perms", "0755", "--dir", d]
    cmd += ["--perms", "0755", "--dir", "/opt/worker"]
    cmd += ["--ro-bind", str(p["exe"]), f"/opt/python/bin/{v}"]
    cmd += ["--ro-bind", str(p["stdlib"]), f"/opt/python/lib/{v}"]
    if (p["stdlib"] / "site-packages").is_dir():
        cmd += ["--tmpfs", f"/opt/python/lib/{v}/site-packages"]
    if (p["stdlib"] / "dist-packages").is_dir():
        cmd += ["--tmpfs", f"/opt/python/lib/{v}/dist-packages"]
    if "libpython" in p:
        cmd += ["--ro-bind", str(p["libpython"]), f"/opt/python/lib/{p['libpython_name']}"]
    cmd += ["--ro-bind", str(p["numpy"]), "/opt/site/numpy"]
    if "numpy_libs" in p:
        cmd += ["--ro-bind", str(p["numpy_libs"]), "/opt/site/numpy.libs"]
    cmd += ["--ro-bind", str(WORKER_PATH), "/opt/worker/worker.py"]
    cmd += ["--ro-bind", str(drivers), "/opt/worker/drivers.py"]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    cmd += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    cmd += ["--remount-ro", "/", "--chdir", "/tmp"]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    cmd += [f"/opt/python/bin/{v}", "-S", "-E", "-s", "-B", "/opt/worker/worker.py"]
    cmd += ["/opt/site", "/opt/worker/drivers.py"]
    return cmd, env


def unsafe_command(drivers: Path, site: Path) -> list[str]:
    """Run the worker without a sandbox (instructor opt-out): limits only."""
    return [sys.executable, "-S", "-E", "-s", "-B", str(WORKER_PATH), str(site), str(drivers)]


@functools.cache
def _unsafe_site() -> Path:
    """A site directory holding only NumPy (symlinks), for the unsafe mode."""
    site = Path(tempfile.mkdtemp(prefix="rnng-site-"))
    p = _runtime_paths()
    (site / "numpy").symlink_to(p["numpy"])
    if "numpy_libs" in p:
        (site / "numpy.libs").symlink_to(p["numpy_libs"])
    return site


@functools.cache
def probe_sandbox() -> str:
    """Return "" when bubblewrap works here, else the reason it does not."""
    if not Path(BWRAP).exists() and not shutil.which("bwrap"):
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    fd = None if seccomp.probe() else seccomp.program_fd()
    cmd, _ = bwrap_command(WORKER_PATH, 0, None, fd)
    probe = "import sys; sys.path.insert(0, '/opt/site'); import numpy"
    cmd = [*cmd[: cmd.index("-S") + 4], "-c", probe]
    try:
        done = subprocess.run(
            cmd, capture_output=True, timeout=30, check=False, pass_fds=() if fd is None else (fd,)
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not start: {exc}"
    finally:
        if fd is not None:
            os.close(fd)
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()[-500:]
        return f"bubblewrap does not work here (exit {done.returncode}): {err}"
    return ""


#: Joins the cgroups named in $RNNG_CGROUP_PROCS, then becomes the sandbox: every process
#: the sandbox ever starts is created inside the groups.
JOIN_CGROUP = 'for f in $RNNG_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done; exec "$@"'
JOIN_FAILED = 125


@functools.cache
def missing_protections(unsafe: bool = False) -> tuple[str, ...]:
    """The protections this machine cannot give a sandbox, each with what it means and why.

    Empty when grading runs with everything: bubblewrap, a memory, CPU and pids cgroup
    per sandbox, and the seccomp filter (plus ``--disable-userns`` for an ordinary user).
    """
    missing = []
    if unsafe:
        missing.append(
            "sandbox: --unsafe-no-sandbox runs student code with the grader's own permissions"
        )
    reason, controllers = cgroups.probe()
    if reason:
        missing.append(
            "memory cgroup: a sandbox's processes together are not capped (only each "
            "process's address space is), so memory outside RLIMIT_AS can exhaust the "
            f"machine; CPU quota: spinning processes can slow other students' checks ({reason})"
        )
    for ctl in controllers:
        what = {
            "cpu": "CPU quota: spinning processes can slow other students' checks",
            "pids": "pids cgroup: only RLIMIT_NPROC bounds the sandbox's processes",
        }.get(ctl, ctl)
        missing.append(f"{what} (the {ctl} controller is not available)")
    if not unsafe:
        why = seccomp.probe()
        if why:
            missing.append(
                "seccomp filter: memfd_create, unshare, mount, ptrace, keyctl, bpf and the "
                f"like are not denied inside the sandbox ({why})"
            )
    return tuple(missing)


def ensure_sandbox(unsafe: bool, require_cgroup: bool = False) -> None:
    """Raise ``SandboxUnavailable`` with a clear message unless grading may proceed."""
    if require_cgroup:
        reason, _ = cgroups.probe()
        if reason:
            raise SandboxUnavailable(
                f"no memory cgroup can be created for the sandbox ({reason}), and "
                "TrustedExecute.require_cgroup is set"
            )
    if unsafe:
        return
    reason = probe_sandbox()
    if reason:
        raise SandboxUnavailable(
            f"{reason}. Trusted grading refuses to run student code without the sandbox; "
            "pass --unsafe-no-sandbox (or set TrustedExecute.unsafe_no_sandbox = True) to run "
            "it unprotected at your own risk."
        )


def _limit_env(limits: SandboxLimits, root: bool) -> str:
    nproc = limits.max_processes
    if not root:  # the caller's uid: its existing processes count too
        nproc += sum(
            1 for d in Path("/proc").iterdir() if d.name.isdigit() and _owned(d, os.getuid())
        )
    return json.dumps(
        {
            "cpu": limits.cpu_seconds,
            "as": limits.memory_bytes,
            "nproc": nproc,
            "fsize": limits.max_file_bytes,
        }
    )


def _owned(path: Path, uid: int) -> bool:
    try:
        return path.stat().st_uid == uid
    except OSError:
        return False


def _signal_text(code: int | None) -> str:
    if code is None:
        return "was killed"
    sig = -code if code < 0 else code - 128 if code > 128 else 0
    if sig > 0:
        try:
            return f"was killed by {signal.Signals(sig).name}"
        except ValueError:
            pass
    return f"exited with status {code}"


class _Run:
    """One sandbox process: feed it the request, parse its frames, enforce limits."""

    def __init__(
        self,
        cmd: list[str],
        env: dict[str, str],
        limits: SandboxLimits,
        group: cgroups.SandboxCgroup | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.limits = limits
        self.group = group
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
            close_fds=True,
            pass_fds=pass_fds,
        )

    def death(self) -> str:
        """Why the worker died, from its exit status and its cgroup's OOM count."""
        code = self.proc.poll()
        if code == JOIN_FAILED and self.group is not None:
            return "could not be placed in its memory cgroup"
        if self.group is not None and self.group.oom_kills():
            mib = self.limits.sandbox_memory_bytes / 2**20
            return (
                f"ran out of memory: the sandbox's processes together reached its limit "
                f"of {mib:g} MiB and the kernel killed them"
            )
        return _signal_text(code)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.group is not None:  # everything in the cgroup, whatever its session
            self.group.kill_all()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if pipe:
                    pipe.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_sandbox(
    cells: list[dict[str, str]],
    checks: list[dict[str, Any]],
    drivers: Path,
    *,
    limits: SandboxLimits | None = None,
    unsafe: bool = False,
) -> SandboxReport:
    """Run the answer ``cells`` then every check in sandboxed workers.

    A check is ``{"name", "call", "cases"}``: the worker passes ``call`` and each case to
    the driver's ``run``.

    A check that times out, crashes the worker, floods output or sends a malformed
    message fails alone: the worker is killed and a fresh one continues with the next
    check, as long as the previous run got as far as starting a check and the
    notebook's time budget lasts.
    """
    limits = limits or SandboxLimits()
    ensure_sandbox(unsafe, limits.require_cgroup)
    report = SandboxReport(missing=missing_protections(unsafe))
    t0 = time.monotonic()
    deadline = t0 + limits.notebook_timeout
    pending = list(checks)
    while pending:
        progressed, failure, ename = _one_run(
            cells, pending, drivers, limits, unsafe, deadline, report
        )
        report.runs += 1
        done = [c["name"] for c in pending if c["name"] in report.checks]
        pending = [c for c in pending if c["name"] not in report.checks]
        if not pending:
            break
        if failure is None:  # the worker said "done" but skipped checks: a forgery
            failure, ename = "the worker ended without running this check", "RuntimeError"
        if not progressed or not done or time.monotonic() >= deadline:
            for c in pending:
                report.checks[c["name"]] = CheckResult(c["name"], failure=failure, ename=ename)
            break
    report.seconds = time.monotonic() - t0
    return report


def _one_run(
    cells: list[dict[str, str]],
    pending: list[dict[str, Any]],
    drivers: Path,
    limits: SandboxLimits,
    unsafe: bool,
    deadline: float,
    report: SandboxReport,
) -> tuple[bool, str | None, str]:
    """One worker process over ``pending``; fills ``report``; returns (progressed, failure)."""
    root = os.getuid() == 0
    seccomp_fd: int | None = None
    if unsafe:
        cmd = unsafe_command(drivers, _unsafe_site())
        env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
        env["HOME"] = tempfile.gettempdir()
        env["RNNG_UID"] = "0"
        launch_env = env
    else:
        uid = secrets.randbelow(1_000_000_000) + 1_000_000
        if not seccomp.probe():
            seccomp_fd = seccomp.program_fd()
        cmd, _ = bwrap_command(drivers, uid, limits, seccomp_fd)
        launch_env = {"PATH": "/usr/bin:/bin"}
    cmd_env = dict(launch_env)
    # bwrap clears the environment, so the limits travel on the command line
    limit_json = _limit_env(limits, root and not unsafe)
    if unsafe:
        cmd_env["RNNG_LIMITS"] = limit_json
    else:
        i = cmd.index("--clearenv") + 1
        cmd[i:i] = ["--setenv", "RNNG_LIMITS", limit_json]
    request = encode({"cells": cells, "checks": pending})
    group = None
    if not cgroups.probe()[0]:
        # the sandbox's processes, together: memory, CPU quota, process count
        glimits = cgroups.CgroupLimits(
            limits.sandbox_memory_bytes, limits.cpu_cores, limits.max_processes + 8
        )
        with contextlib.suppress(cgroups.CgroupUnavailable):
            group = cgroups.SandboxCgroup.create(glimits)
    if group is not None:
        cmd = ["/bin/sh", "-c", JOIN_CGROUP, "sh", *cmd]
        cmd_env["RNNG_CGROUP_PROCS"] = " ".join(str(f) for f in group.procs_files)
    elif limits.require_cgroup:
        raise SandboxUnavailable("no memory cgroup could be created for the sandbox")
    pass_fds = () if seccomp_fd is None else (seccomp_fd,)
    try:
        run = _Run(cmd, cmd_env, limits, group, pass_fds)
    except BaseException:
        if group is not None:
            group.remove()
        raise
    finally:
        for fd in pass_fds:
            os.close(fd)
    sel = selectors.DefaultSelector()
    try:
        return _drive(run, sel, request, pending, limits, deadline, report)
    finally:
        sel.close()
        run.kill()
        if group is not None:
            peak = group.peak_bytes()
            if peak is not None:
                report.memory_peak = max(report.memory_peak or 0, peak)
            report.oom_kills += group.oom_kills()
            group.remove()


def _drive(run, sel, request, pending, limits, deadline, report):
    proc = run.proc
    try:
        proc.stdin.write(request)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    for pipe in (proc.stdout, proc.stderr):
        os.set_blocking(pipe.fileno(), False)
        sel.register(pipe, selectors.EVENT_READ)
    reader = FrameReader(limits.max_frame_bytes)
    names = [c["name"] for c in pending]
    ncases = {c["name"]: len(c["cases"]) for c in pending}
    position = 0  # index in names of the next check to start
    current: CheckResult | None = None
    phase_end = min(deadline, time.monotonic() + limits.check_timeout)
    printed = 0
    progressed = False
    open_pipes = 2

    def fail(message: str, ename: str) -> tuple[bool, str, str]:
        kills = run.group.oom_kills() if run.group is not None else 0
        if kills and "ran out of memory" not in message:
            mib = limits.sandbox_memory_bytes / 2**20
            message += (
                f"; the kernel killed {kills} of its processes for exceeding the sandbox's "
                f"memory limit of {mib:g} MiB"
            )
        if current is not None:
            current.failure, current.ename = message, ename
            report.checks[current.name] = current
        where = "while running this check" if current else "while running the answer cells"
        return progressed, f"{message} ({where})", ename

    while open_pipes:
        now = time.monotonic()
        if now >= phase_end:
            if now >= deadline:
                return fail(
                    f"time limit of {limits.notebook_timeout:g} s for the whole notebook exceeded",
                    "TimeoutError",
                )
            return fail(f"time limit of {limits.check_timeout:g} s exceeded", "TimeoutError")
        for key, _ in sel.select(timeout=max(0.0, phase_end - now)):
            try:
                data = os.read(key.fileobj.fileno(), 65536)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fileobj)
                open_pipes -= 1
                continue
            if key.fileobj is proc.stderr:
                if printed < 4096:
                    report.output_head += data[: 4096 - printed].decode(errors="replace")
                printed += len(data)
                if printed > limits.max_output_bytes:
                    return fail(
                        f"printed more than {limits.max_output_bytes} bytes of output",
                        "RuntimeError",
                    )
                continue
            report.protocol_bytes += len(data)
            if report.protocol_bytes > limits.max_message_bytes:
                return fail(
                    f"the notebook's checks sent more than {limits.max_message_bytes} bytes",
                    "RuntimeError",
                )
            try:
                for msg in reader.feed(data):
                    kind = msg.get("kind") if isinstance(msg, dict) else None
                    if kind == "ready":
                        continue
                    if kind == "cell" and current is None and position == 0:
                        cid, err = msg.get("id"), msg.get("error", "")
                        if not isinstance(cid, str) or not isinstance(err, str):
                            raise ProtocolError("bad cell message")
                        report.cells.setdefault(cid, err)
                        continue
                    if kind == "start" and current is None and position < len(names):
                        if msg.get("check") != names[position]:
                            raise ProtocolError("checks out of order")
                        current = CheckResult(names[position])
                        position += 1
                        progressed = True
                        phase_end = min(deadline, time.monotonic() + limits.check_timeout)
                        continue
                    if kind == "case" and current is not None:
                        if msg.get("check") != current.name or msg.get("index") != len(
                            current.outputs
                        ):
                            raise ProtocolError("case out of order")
                        if len(current.outputs) >= ncases[current.name]:
                            raise ProtocolError("too many cases")
                        if "error" in msg:
                            err = msg["error"]
                            tb = msg.get("traceback", "")
                            if not isinstance(err, str) or not isinstance(tb, str):
                                raise ProtocolError("bad error message")
                            current.outputs.append({"error": err, "traceback": tb})
                        elif isinstance(msg.get("outputs"), dict):
                            current.outputs.append(msg["outputs"])
                        else:
                            current.outputs.append({"error": "the check returned no outputs"})
                        continue
                    if kind == "end" and current is not None:
                        if (
                            msg.get("check") != current.name
                            or len(current.outputs) != ncases[current.name]
                        ):
                            raise ProtocolError("check ended early")
                        report.checks[current.name] = current
                        current = None
                        phase_end = min(deadline, time.monotonic() + limits.check_timeout)
                        continue
                    if kind == "done" and current is None and position == len(names):
                        return progressed, None, ""
                    raise ProtocolError(f"unexpected message {str(kind)[:40]!r}")
            except ProtocolError as exc:
                return fail(f"the grading worker sent a malformed message ({exc})", "RuntimeError")
    try:
        code = proc.wait(timeout=max(0.1, phase_end - time.monotonic()))
    except subprocess.TimeoutExpired:
        return fail(f"time limit of {limits.check_timeout:g} s exceeded", "TimeoutError")
    del code
    return fail(f"the grading worker {run.death()}", "RuntimeError")
