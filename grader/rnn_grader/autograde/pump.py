"""Read a sandboxed worker's two pipes without blocking: frames on one, printing on the other.

:class:`Pump` turns the worker's stdout into decoded messages (through a bounded
:class:`~rnn_grader.autograde.protocol.FrameReader`) and its stderr, where everything
the student's code prints goes, into chunks of bytes that the caller counts (and, before
any student code runs, may keep to explain a worker that cannot start). It
knows nothing of what the messages mean (see :mod:`rnn_grader.autograde.session`).
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from rnn_grader.autograde.protocol import FrameReader


@dataclass(frozen=True)
class Message:
    """A decoded frame from the worker."""

    body: Any


@dataclass(frozen=True)
class Printed:
    """The worker's code printed ``data`` (the caller decides whether any of it is kept)."""

    data: bytes


@dataclass(frozen=True)
class Closed:
    """Both pipes reached end of file: the worker has exited (or closed them)."""


@dataclass(frozen=True)
class Deadline:
    """Nothing arrived before the deadline."""


Event = Message | Printed | Closed | Deadline


class Pump:
    """Events from a running worker process, in the order they arrive.

    Args:
        proc: the worker, started with ``stdout`` and ``stderr`` as pipes (its stdin is
            written and closed by :meth:`send`).
        max_frame_bytes: largest frame accepted from the worker.
    """

    def __init__(self, proc: subprocess.Popen[bytes], max_frame_bytes: int) -> None:
        self.proc = proc
        self.reader = FrameReader(max_frame_bytes)
        self.frame_bytes = 0  # protocol bytes received
        self._selector = selectors.DefaultSelector()
        self._frames: IO[bytes] | None = proc.stdout
        self._open = 0
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                os.set_blocking(pipe.fileno(), False)
                self._selector.register(pipe, selectors.EVENT_READ)
                self._open += 1

    def send(self, request: bytes) -> None:
        """Write the request to the worker's stdin and close it (a dead worker is fine)."""
        stdin = self.proc.stdin
        if stdin is None:
            return
        try:
            stdin.write(request)
            stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def events(self, deadline: Callable[[], float]) -> Iterator[Event]:
        """Yield events until both pipes close; a ``Deadline`` when ``deadline()`` passes.

        ``deadline()`` (a ``time.monotonic`` value) is asked again after every event, so
        the caller may move it. ``ProtocolError`` from a malformed frame propagates.
        """
        while self._open:
            now, until = time.monotonic(), deadline()
            if now >= until:
                yield Deadline()
                continue
            for key, _ in self._selector.select(timeout=until - now):
                try:
                    data = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                if not data:
                    self._selector.unregister(key.fileobj)
                    self._open -= 1
                    continue
                if key.fileobj is not self._frames:
                    yield Printed(data)
                    continue
                self.frame_bytes += len(data)
                for body in self.reader.feed(data):
                    yield Message(body)
        yield Closed()

    def close(self) -> None:
        self._selector.close()
