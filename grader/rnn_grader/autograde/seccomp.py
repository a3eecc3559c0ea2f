"""The seccomp filter bubblewrap installs on the sandbox (``bwrap --seccomp FD``).

Student code needs arithmetic, memory, files in its own ``/tmp`` and processes. It never
needs the system calls that would let it hold memory outside the sandbox's limits or
reach beyond its namespaces, so those fail with ``EPERM`` (``ENOSYS`` for ``clone3``,
whose flags a filter cannot read, so that the C library falls back to ``clone``):

* anonymous files and new mounts (``memfd_create``, ``mount``, ``fsopen``, ...), which
  hold memory no ``RLIMIT_AS`` counts;
* new namespaces (``unshare``, ``setns``, ``clone``/``clone3`` with namespace flags), in
  which a process could mount a tmpfs of its own;
* looking into or loading code into other processes or the kernel (``ptrace``,
  ``process_vm_*``, ``bpf``, ``perf_event_open``, module loading, ``kexec``);
* the kernel keyring, ``userfaultfd``, ``io_uring``, sockets and file handles.

Everything else is allowed. Processes of other architectures (32-bit ``int 0x80``, x32)
are killed by libseccomp's default for foreign architectures. The filter is compiled
with libseccomp through ``pyseccomp``; where either is missing, :func:`probe` says so
and grading reports that protection as missing.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile

#: System calls that fail with EPERM inside the sandbox.
DENIED = (
    "memfd_create",
    "memfd_secret",
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "pidfd_getfd",
    "kcmp",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "name_to_handle_at",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "syslog",
    "vhangup",
    "iopl",
    "ioperm",
    "lookup_dcookie",
    "fanotify_init",
    "socket",
    "socketpair",
)

#: Namespace flags refused in clone(2)'s first argument.
CLONE_NAMESPACES = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}


def _filter():
    import pyseccomp as sc

    f = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in DENIED:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (OSError, ValueError, RuntimeError):
            continue  # unknown on this kernel/architecture: nothing to deny
    for flag in CLONE_NAMESPACES.values():
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    return f


@functools.cache
def program() -> bytes:
    """The compiled BPF program (raises ImportError/OSError where libseccomp is missing)."""
    with tempfile.TemporaryFile() as tmp:
        _filter().export_bpf(tmp)
        tmp.seek(0)
        return tmp.read()


@functools.cache
def probe() -> str:
    """Return "" when the filter can be compiled here, else why not."""
    try:
        program()
    except ImportError:
        return "pyseccomp is not installed (pip install pyseccomp)"
    except Exception as exc:  # libseccomp missing or failing
        return f"libseccomp could not compile the filter ({type(exc).__name__}: {exc})"
    return ""


def program_fd() -> int:
    """A readable file descriptor holding the program, positioned at its start.

    bwrap reads the program from this descriptor; the caller passes it on (``pass_fds``)
    and closes it after the launch.
    """
    data = program()
    r, w = os.pipe()
    if len(data) > 60000:  # would not fit a pipe buffer: use an unlinked file
        os.close(r)
        os.close(w)
        with tempfile.TemporaryFile() as tmp:
            tmp.write(data)
            tmp.flush()
            fd = os.dup(tmp.fileno())
        os.lseek(fd, 0, os.SEEK_SET)
        return fd
    os.write(w, data)
    os.close(w)
    return r
