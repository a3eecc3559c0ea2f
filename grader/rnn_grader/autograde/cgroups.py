"""One control group per sandbox: a cap on its *total* memory, its CPU time and its processes.

``RLIMIT_AS`` bounds each process of the sandbox, not their sum, and not memory that is
not mapped into an address space (``memfd`` files, tmpfs, pipes, kernel objects). A
control group bounds everything the sandbox's processes allocate, together: when it is
full the kernel's OOM killer picks a victim *inside the group*, so the sandbox dies and
the grader, which stays in the parent group, never does. The same group gives the
sandbox at most ``cpu_cores`` CPUs (a CFS quota) and an equal CPU weight with every
other sandbox however many processes it runs, so spinning processes cannot spend another
student's time limit.

Both hierarchies are supported:

* cgroup v2 (unified): a child of the grader's own group, with ``memory.max``,
  ``memory.swap.max``, ``cpu.max`` and ``pids.max``; it needs the memory controller
  delegated to that group (``systemd-run --scope -p Delegate=yes`` for a user);
* cgroup v1: a child of the grader's group in each of the ``memory``, ``cpu`` and
  ``pids`` hierarchies, with ``memory.limit_in_bytes`` (and ``memory.memsw.*``),
  ``cpu.cfs_quota_us`` and ``pids.max``.

Where no group can be made (an ordinary user without delegation), :func:`probe` says
why, and grading reports the protection as missing instead of pretending.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "rnng-"
CPU_PERIOD_US = 100_000


class CgroupUnavailable(RuntimeError):
    """No control group with a memory controller can be created here."""


@dataclass(frozen=True)
class CgroupLimits:
    """What one sandbox's group allows, all processes together."""

    memory_bytes: int = 1 << 30
    cpu_cores: float = 1.0  # CFS quota, in CPUs (0 = no quota, equal weight only)
    max_processes: int = 64


def _mounts() -> list[tuple[str, str, str, str]]:
    """(mount point, root inside the hierarchy, fs type, super options) of cgroup mounts."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(rest) >= 3 and rest[0] in ("cgroup", "cgroup2"):
                out.append((fields[4], fields[3], rest[0], rest[2]))
    return out


def _own_paths() -> dict[str, str]:
    """The grader's own group path per v1 controller, and under key "" for v2."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name.removeprefix("name=")] = path
    return paths


def _join(mount: str, root: str, path: str) -> Path:
    rel = path
    if root != "/" and path.startswith(root):
        rel = path[len(root) :]
    return Path(mount) / rel.lstrip("/")


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_int(path: Path, key: str | None = None) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    if key is None:
        return int(text.split()[0]) if text.strip() and text.split()[0].isdigit() else None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return None


@dataclass
class SandboxCgroup:
    """The groups of one sandbox run (one directory for v2, one per controller for v1)."""

    version: int
    memory_dir: Path
    dirs: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # controllers that could not be used

    @property
    def procs_files(self) -> list[Path]:
        """The ``cgroup.procs`` files a process writes its pid into to join every group."""
        return [d / "cgroup.procs" for d in self.dirs]

    @classmethod
    def create(cls, limits: CgroupLimits) -> SandboxCgroup:
        """A fresh group with ``limits``; raises :class:`CgroupUnavailable` with the reason."""
        reasons = []
        for make in (cls._create_v2, cls._create_v1):
            try:
                return make(limits)
            except CgroupUnavailable as exc:
                reasons.append(str(exc))
        raise CgroupUnavailable("; ".join(reasons))

    @classmethod
    def _create_v2(cls, limits: CgroupLimits) -> SandboxCgroup:
        own = _own_paths().get("")
        mounts = [m for m in _mounts() if m[2] == "cgroup2"]
        if own is None or not mounts:
            raise CgroupUnavailable("cgroup v2: not mounted")
        base = _join(mounts[0][0], mounts[0][1], own)
        try:
            available = (base / "cgroup.controllers").read_text().split()
        except OSError as exc:
            raise CgroupUnavailable(f"cgroup v2: cannot read {base}: {exc.strerror}") from None
        if "memory" not in available:
            raise CgroupUnavailable("cgroup v2: the memory controller is not delegated here")
        try:
            enabled = (base / "cgroup.subtree_control").read_text().split()
            wanted = [c for c in ("memory", "cpu", "pids") if c in available and c not in enabled]
            if wanted:
                _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
            d = base / f"{PREFIX}{secrets.token_hex(6)}"
            d.mkdir(mode=0o755)
        except OSError as exc:
            raise CgroupUnavailable(
                f"cgroup v2: cannot create a group under {base} ({exc.strerror}); run the "
                "grader in a delegated group, e.g. systemd-run --user --scope -p Delegate=yes"
            ) from None
        group = cls(2, d, [d])
        try:
            _write(d / "memory.max", str(limits.memory_bytes))
            with contextlib.suppress(OSError):
                _write(d / "memory.swap.max", "0")
            with contextlib.suppress(OSError):
                _write(d / "memory.oom.group", "1")
        except OSError as exc:
            group.remove()
            raise CgroupUnavailable(f"cgroup v2: cannot set memory.max: {exc.strerror}") from None
        try:
            quota = int(limits.cpu_cores * CPU_PERIOD_US) if limits.cpu_cores > 0 else "max"
            _write(d / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        except OSError:
            group.missing.append("cpu")
        try:
            _write(d / "pids.max", str(limits.max_processes))
        except OSError:
            group.missing.append("pids")
        return group

    @classmethod
    def _create_v1(cls, limits: CgroupLimits) -> SandboxCgroup:
        own = _own_paths()
        bases: dict[str, Path] = {}
        for mount, root, fstype, options in _mounts():
            if fstype != "cgroup":
                continue
            for name in ("memory", "cpu", "pids"):
                if name in options.split(",") and name in own:
                    bases.setdefault(name, _join(mount, root, own[name]))
        if "memory" not in bases:
            raise CgroupUnavailable("cgroup v1: no memory hierarchy is mounted")
        name = f"{PREFIX}{secrets.token_hex(6)}"
        try:
            mem = bases["memory"] / name
            mem.mkdir(mode=0o755)
        except OSError as exc:
            raise CgroupUnavailable(
                f"cgroup v1: cannot create a group under {bases['memory']} ({exc.strerror})"
            ) from None
        group = cls(1, mem, [mem])
        try:
            _write(mem / "memory.limit_in_bytes", str(limits.memory_bytes))
            with contextlib.suppress(OSError):  # no swap accounting: nothing to cap
                _write(mem / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
            with contextlib.suppress(OSError):
                _write(mem / "memory.swappiness", "0")
        except OSError as exc:
            group.remove()
            raise CgroupUnavailable(
                f"cgroup v1: cannot set memory.limit_in_bytes: {exc.strerror}"
            ) from None
        for ctl, settings in (
            (
                "cpu",
                [("cpu.cfs_period_us", str(CPU_PERIOD_US))]
                + (
                    [("cpu.cfs_quota_us", str(int(limits.cpu_cores * CPU_PERIOD_US)))]
                    if limits.cpu_cores > 0
                    else []
                ),
            ),
            ("pids", [("pids.max", str(limits.max_processes))]),
        ):
            if ctl not in bases:
                group.missing.append(ctl)
                continue
            d = bases[ctl] / name
            try:
                d.mkdir(mode=0o755)
            except OSError:
                group.missing.append(ctl)
                continue
            group.dirs.append(d)
            try:
                for key, value in settings:
                    _write(d / key, value)
            except OSError:
                group.missing.append(ctl)
        return group

    def peak_bytes(self) -> int | None:
        """The most memory the group ever held (``None`` where the kernel does not say)."""
        if self.version == 1:
            return _read_int(self.memory_dir / "memory.max_usage_in_bytes")
        return _read_int(self.memory_dir / "memory.peak")

    def oom_kills(self) -> int:
        """Processes of the group the OOM killer has killed."""
        if self.version == 1:
            kills = _read_int(self.memory_dir / "memory.oom_control", "oom_kill")
            if kills is None:  # older kernels: count hits of the limit instead
                hits = _read_int(self.memory_dir / "memory.failcnt")
                return 1 if hits else 0
            return kills
        return _read_int(self.memory_dir / "memory.events", "oom_kill") or 0

    def pids(self) -> list[int]:
        out: set[int] = set()
        for f in self.procs_files:
            with contextlib.suppress(OSError, ValueError):
                out.update(int(x) for x in f.read_text().split())
        return sorted(out)

    def kill_all(self) -> None:
        """SIGKILL every process still in the group."""
        if self.version == 2 and (self.memory_dir / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.memory_dir / "cgroup.kill", "1")
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)

    def remove(self) -> None:
        """Kill what is left and delete the group's directories."""
        self.kill_all()
        for d in reversed(self.dirs):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


@functools.cache
def probe(limits: CgroupLimits = CgroupLimits()) -> tuple[str, tuple[str, ...]]:
    """("", missing controllers) when a group can be made here, else (reason, ())."""
    try:
        group = SandboxCgroup.create(limits)
    except CgroupUnavailable as exc:
        return str(exc), ()
    missing = tuple(group.missing)
    group.remove()
    return "", missing
