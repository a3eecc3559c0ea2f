"""Start the grading worker under bubblewrap, with resource limits.

The sandbox sees a private root containing only: the Python runtime (binary, shared
library and standard library, with ``site-packages`` hidden), the libraries a student's
environment offers (NumPy, Matplotlib and IPython with what they need, see
:func:`student_site`), the worker, the grading drivers and their public data, an empty
size-limited ``/tmp``, its own ``/proc`` and ``/dev``. No network (``--unshare-net``),
its own PID namespace (everything it starts dies with it), no course directory, no
gradebook, no other submission, neither torch nor rnn_course nor this package.

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
grading says so. What runs inside, and how a run is driven, is
:mod:`rnn_grader.autograde.phase`'s business.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import importlib.metadata
import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from rnn_grader.autograde import cgroups, seccomp
from rnn_grader.autograde.protocol import MAX_FRAME_BYTES

BWRAP = "/usr/bin/bwrap"
WORKER_PATH = Path(__file__).with_name("worker.py")
#: The distributions a student's environment has beside the standard library (the
#: course's `make student`): importable in the sandbox with everything they require.
STUDENT_PACKAGES = ("numpy", "matplotlib", "ipython")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or does not work here, and the unsafe opt-out was not given."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of the sandboxed workers of one notebook (one phase of grading)."""

    check_timeout: float = 10.0  # wall seconds for one check (all its cases of one phase)
    cell_timeout: float = 30.0  # wall seconds for one code cell (nbgrader's Execute.timeout)
    optional_seconds: float = 30.0  # wall seconds of one phase for cells no check needs
    notebook_timeout: float = 120.0  # wall seconds for everything one phase runs
    cpu_seconds: int = 125  # RLIMIT_CPU of every process in the sandbox
    memory_bytes: int = 1 << 30  # RLIMIT_AS (address space) of every process
    sandbox_memory_bytes: int = 1 << 30  # cgroup cap on all its processes' memory together
    cpu_cores: float = 1.0  # cgroup CPU quota of the whole sandbox, in CPUs
    max_processes: int = 32  # RLIMIT_NPROC for the sandbox's own uid
    max_file_bytes: int = 4 << 20  # RLIMIT_FSIZE: largest file it may write
    tmp_bytes: int = 8 << 20  # size of the sandbox's /tmp
    max_output_bytes: int = 256 << 10  # printed output (stdout + stderr) of one run
    max_frame_bytes: int = MAX_FRAME_BYTES  # largest protocol message
    max_message_bytes: int = 64 << 20  # protocol bytes of one phase, all runs together
    require_cgroup: bool = False  # refuse to grade where no memory cgroup can be made


def _runtime_paths() -> dict[str, Path]:
    """Host paths of the interpreter, its shared library and its stdlib."""
    exe = Path(os.path.realpath(sys.executable))
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    libdir = Path(sysconfig.get_config_var("LIBDIR") or exe.parent.parent / "lib")
    ldlib = sysconfig.get_config_var("LDLIBRARY") or ""
    paths = {"exe": exe, "stdlib": stdlib}
    if ldlib.endswith(".so") or ".so." in ldlib:
        for cand in sorted(libdir.glob(ldlib + "*")):
            paths["libpython"] = cand.resolve()
            paths["libpython_name"] = Path(cand.resolve().name)
            break
    return paths


@functools.cache
def student_site(packages: tuple[str, ...] = STUDENT_PACKAGES) -> tuple[Path, ...]:
    """The installed top-level files of ``packages`` and of everything they require.

    Each path (a package folder, a module, a ``.libs`` folder of shared libraries, a
    ``.dist-info`` folder) is mounted read-only under the sandbox's site directory,
    so a student's ``import matplotlib.pyplot`` works there as on their laptop.
    """
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(packages)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional part of the student's environment that is not here
        seen[name] = dist
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    tops: set[Path] = set()
    for dist in seen.values():
        for file in dist.files or []:
            first = file.parts[0]
            if first in ("..", "__pycache__") or first.endswith(".pth"):
                continue
            path = Path(str(dist.locate_file(first))).resolve()
            if path.exists():
                tops.add(path)
    return tuple(sorted(tops))


def _version() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def bwrap_command(
    lib: Path,
    uid: int,
    limits: SandboxLimits | None = None,
    seccomp_fd: int | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The bwrap command line that runs the worker, and the environment inside.

    ``lib`` is the folder of the drivers module and its data (see :func:`prepare_lib`).
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
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
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
    for path in student_site():
        cmd += ["--ro-bind", str(path), f"/opt/site/{path.name}"]
    cmd += ["--ro-bind", str(WORKER_PATH), "/opt/worker/worker.py"]
    cmd += ["--ro-bind", str(lib), "/opt/worker/lib"]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    cmd += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    cmd += ["--remount-ro", "/", "--chdir", "/tmp"]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    cmd += [f"/opt/python/bin/{v}", "-S", "-E", "-s", "-B", "/opt/worker/worker.py"]
    cmd += ["/opt/site", "/opt/worker/lib"]
    return cmd, env


def unsafe_command(lib: Path, site: Path) -> list[str]:
    """Run the worker without a sandbox (instructor opt-out): limits only."""
    return [sys.executable, "-S", "-E", "-s", "-B", str(WORKER_PATH), str(site), str(lib)]


@functools.cache
def _unsafe_site() -> Path:
    """A site directory holding only the student's libraries (symlinks), for the unsafe mode."""
    site = Path(tempfile.mkdtemp(prefix="rnng-site-"))
    for path in student_site():
        (site / path.name).symlink_to(path)
    return site


_LIBS: dict[str, Path] = {}


def prepare_lib(drivers_name: str, drivers_source: str, files: dict[str, bytes]) -> Path:
    """A read-only folder holding the drivers module and its public data files.

    The sandbox mounts it as ``/opt/worker/lib``, first on ``sys.path``: the notebook's
    setup cell imports the drivers by their module name (``from selfcheck import
    check``) as it does on the student's laptop. One folder per distinct content and
    process.
    """
    digest = hashlib.sha256(drivers_name.encode() + drivers_source.encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name])
    key = digest.hexdigest()
    if key in _LIBS and _LIBS[key].is_dir():
        return _LIBS[key]
    folder = Path(tempfile.mkdtemp(prefix="rnng-lib-"))
    (folder / f"{drivers_name}.py").write_text(drivers_source, encoding="utf-8")
    for name, data in files.items():
        if "/" in name or name.startswith("."):
            raise ValueError(f"a sandbox file name must be a plain name, got {name!r}")
        (folder / name).write_bytes(data)
    for path in folder.iterdir():
        path.chmod(0o644)
    folder.chmod(0o755)  # the sandbox's uid reads it (mounted read-only)
    if not _LIBS:
        atexit.register(_remove_libs)
    _LIBS[key] = folder
    return folder


def _remove_libs() -> None:
    for folder in _LIBS.values():
        shutil.rmtree(folder, ignore_errors=True)


@functools.cache
def probe_sandbox() -> str:
    """Return "" when bubblewrap works here, else the reason it does not."""
    if not Path(BWRAP).exists() and not shutil.which("bwrap"):
        return "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    fd = None if seccomp.probe() else seccomp.program_fd()
    lib = prepare_lib("probe", "", {})
    cmd, _ = bwrap_command(lib, 0, None, fd)
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


def _readable(path: Path, mode: int, root: bool) -> bool:
    """Whether the sandbox's user can read ``path`` (and enter it, for a folder)."""
    directory = stat.S_ISDIR(mode)
    if root:  # the worker runs as a fresh uid: "other" permission bits decide
        need = stat.S_IROTH | (stat.S_IXOTH if directory else 0)
        return mode & need == need
    return os.access(path, os.R_OK | (os.X_OK if directory else 0))


def first_unreadable(paths: tuple[Path, ...]) -> Path | None:
    """The first of ``paths`` (or an entry directly inside one) the sandbox cannot read.

    Run as root, bwrap mounts the paths and the worker reads them as a fresh unprivileged
    uid, so they must be readable by every user; run as an ordinary user, that user must
    reach them, folders above included.
    """
    root = os.getuid() == 0
    for top in paths:
        if not root and not os.access(top, os.R_OK):
            return top  # the path itself, or a folder above it, is closed to this user
        try:
            if not _readable(top, top.stat().st_mode, root):
                return top
        except OSError:
            return top
        if not top.is_dir():
            continue
        try:  # what it directly holds: an install with a private umask shows there already
            entries = list(os.scandir(top))
        except OSError:
            return top
        for entry in entries:
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                return Path(entry.path)
            if not stat.S_ISLNK(mode) and not _readable(Path(entry.path), mode, root):
                return Path(entry.path)
    return None


@functools.cache
def _unreadable_runtime() -> Path | None:
    p = _runtime_paths()
    paths = [p["exe"], p["stdlib"], WORKER_PATH, *student_site()]
    if "libpython" in p:
        paths.append(p["libpython"])
    return first_unreadable(tuple(paths))


def unreadable_error(path: Path) -> SandboxUnavailable:
    """The one-line error that names the ``path`` the sandbox cannot read, and the fix."""
    if os.getuid() == 0:
        who = "every user (as root, the worker runs as a fresh unprivileged uid)"
    else:
        who = f"user {pwd_name(os.getuid())}, folders above it included"
    return SandboxUnavailable(
        f"the sandbox cannot read {path}: the Python environment the grader runs in must be "
        f"readable by {who}; give read access (e.g. chmod -R a+rX on the environment) or "
        "grade from an environment that user can read"
    )


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
    closed = _unreadable_runtime()
    if closed is not None:
        raise unreadable_error(closed)
    reason = probe_sandbox()
    if reason:
        raise SandboxUnavailable(
            f"{reason}. Trusted grading refuses to run student code without the sandbox; "
            "pass --unsafe-no-sandbox (or set TrustedExecute.unsafe_no_sandbox = True) to run "
            "it unprotected at your own risk."
        )


def pwd_name(uid: int) -> str:
    """The login name of ``uid``, or the number when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


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


class Worker:
    """One sandboxed worker process and its control group."""

    def __init__(self, lib: Path, limits: SandboxLimits, unsafe: bool) -> None:
        self.limits = limits
        root = os.getuid() == 0
        seccomp_fd: int | None = None
        if unsafe:
            cmd = unsafe_command(lib, _unsafe_site())
            env = {"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
            env.update(HOME=tempfile.gettempdir(), RNNG_UID="0", MPLBACKEND="Agg")
        else:
            uid = secrets.randbelow(1_000_000_000) + 1_000_000
            if not seccomp.probe():
                seccomp_fd = seccomp.program_fd()
            cmd, _ = bwrap_command(lib, uid, limits, seccomp_fd)
            env = {"PATH": "/usr/bin:/bin"}
        # bwrap clears the environment, so the limits travel on the command line
        limit_json = _limit_env(limits, root and not unsafe)
        if unsafe:
            env["RNNG_LIMITS"] = limit_json
        else:
            i = cmd.index("--clearenv") + 1
            cmd[i:i] = ["--setenv", "RNNG_LIMITS", limit_json]
        self.group: cgroups.SandboxCgroup | None = None
        if not cgroups.probe()[0]:
            # the sandbox's processes, together: memory, CPU quota, process count
            glimits = cgroups.CgroupLimits(
                limits.sandbox_memory_bytes, limits.cpu_cores, limits.max_processes + 8
            )
            with contextlib.suppress(cgroups.CgroupUnavailable):
                self.group = cgroups.SandboxCgroup.create(glimits)
        if self.group is not None:
            cmd = ["/bin/sh", "-c", JOIN_CGROUP, "sh", *cmd]
            env["RNNG_CGROUP_PROCS"] = " ".join(str(f) for f in self.group.procs_files)
        elif limits.require_cgroup:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
            raise SandboxUnavailable("no memory cgroup could be created for the sandbox")
        pass_fds = () if seccomp_fd is None else (seccomp_fd,)
        try:
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
        except BaseException:
            if self.group is not None:
                self.group.remove()
            raise
        finally:
            for fd in pass_fds:
                os.close(fd)

    def oom_kills(self) -> int:
        return self.group.oom_kills() if self.group is not None else 0

    def death(self) -> str:
        """Why the worker died, from its exit status."""
        code = self.proc.poll()
        if code == JOIN_FAILED and self.group is not None:
            return "could not be placed in its memory cgroup"
        return _signal_text(code)

    def stop(self) -> tuple[int | None, int]:
        """Kill everything the worker started; return the cgroup's memory peak and OOM kills."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.group is not None:  # everything in the cgroup, whatever its session
            self.group.kill_all()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                if pipe:
                    pipe.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.group is None:
            return None, 0
        peak, kills = self.group.peak_bytes(), self.group.oom_kills()
        self.group.remove()
        return peak, kills
