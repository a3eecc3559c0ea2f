"""Wire format between the trusted grader and the sandboxed worker.

Everything that crosses the sandbox boundary is plain data. A *frame* is

    b"RNNG" | uint64 payload length (big endian) | payload

and a payload is a JSON header followed by the ``.npy`` files of the arrays it refers to:

    uint32 header length | header (UTF-8 JSON) | (uint64 length | .npy bytes) * K

Inside the header an array is written ``{"__ndarray__": k}`` (the k-th ``.npy`` blob), a
tuple ``{"__tuple__": [...]}``, a dict with string keys ``{"__dict__": {...}}`` and an
object that is not plain data ``{"__unsupported__": "<type name>"}``. Arrays are read with
``allow_pickle=False``: object arrays never cross, and nothing is ever unpickled.

The encoder is defined once, in the self-contained worker program (which cannot import
this package); the decoder, which must distrust what it reads, lives here.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rnn_grader.autograde import worker

MAGIC = b"RNNG"
#: Largest payload the reader accepts by default. The largest legitimate message of this
#: course (a hidden backward case's gradients) is under 4 MiB; a longer frame is refused
#: as soon as its length field arrives, before any of it is buffered.
MAX_FRAME_BYTES = 16 * 1024 * 1024
#: Largest JSON header: outputs travel as arrays, so the header only holds their layout
#: and, for public cases, an error message and a traceback of a few KiB.
MAX_HEADER_BYTES = 64 * 1024
#: Most values (lists, tuples, dicts, scalars, arrays) one decoded message may hold: the
#: course's largest message has a few dozen, while 64 KiB of ``[[],[],...]`` would
#: otherwise become about 20 000 Python lists.
MAX_NODES = 2048
#: Most arrays one message may carry.
MAX_ARRAYS = 256
#: Deepest nesting of lists/dicts the decoder follows.
MAX_DEPTH = 32
#: Array element kinds that may cross: booleans, numbers, byte and unicode strings.
ARRAY_KINDS = frozenset("biufcSU")


class ProtocolError(ValueError):
    """A frame from the worker is malformed, forged or too large."""


@dataclass(frozen=True)
class Unsupported:
    """Stands for a value the worker could not send as plain data (e.g. a custom object)."""

    type_name: str

    def __repr__(self) -> str:
        return f"<object of type {self.type_name}>"


def encode(message: dict[str, Any]) -> bytes:
    """Encode ``message`` (plain data) into one frame.

    The encoder lives in the self-contained worker program, which runs where this package
    cannot be imported; both sides use that one implementation.
    """
    return worker.encode(message, np)


def _npy_array(blob: memoryview) -> np.ndarray | Unsupported:
    """An array viewing ``blob`` (a ``.npy`` file) without copying its data."""
    head = io.BytesIO(bytes(blob[:4096]))
    try:
        version = np.lib.format.read_magic(head)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(head)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(head)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception:
        raise ProtocolError("bad .npy blob") from None
    if dtype.hasobject or dtype.fields is not None:
        raise ProtocolError("bad .npy blob: object or structured arrays are not accepted")
    if dtype.kind not in ARRAY_KINDS:
        return Unsupported(f"numpy array of dtype {dtype.str}")
    count = 1
    for n in shape:
        count *= int(n)
    offset = head.tell()
    if offset + count * dtype.itemsize != len(blob):
        raise ProtocolError("bad .npy blob: its length does not match its shape")
    flat = np.frombuffer(blob, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C")


def decode_payload(payload: bytes | bytearray | memoryview) -> Any:
    """Decode one payload; raises ``ProtocolError`` on anything unexpected.

    Arrays are views of ``payload``: nothing is copied, so a message costs its
    own size in memory plus its (bounded) JSON header.
    """
    view = memoryview(payload)
    try:
        (hlen,) = struct.unpack_from(">I", view, 0)
        if hlen > MAX_HEADER_BYTES or 4 + hlen > len(view):
            raise ProtocolError(f"header of {hlen} bytes is too long")
        header = json.loads(bytes(view[4 : 4 + hlen]).decode())
        pos = 4 + hlen
        blobs: list[memoryview] = []
        while pos < len(view):
            if len(blobs) >= MAX_ARRAYS:
                raise ProtocolError(f"more than {MAX_ARRAYS} arrays in one message")
            (blen,) = struct.unpack_from(">Q", view, pos)
            pos += 8
            if pos + blen > len(view):
                raise ProtocolError("truncated array blob")
            blobs.append(view[pos : pos + blen])
            pos += blen
    except ProtocolError:
        raise
    except Exception as exc:  # struct.error, UnicodeDecodeError, JSONDecodeError, RecursionError
        raise ProtocolError(f"malformed payload ({type(exc).__name__})") from None

    nodes = 0

    def dec(value: Any, depth: int) -> Any:
        nonlocal nodes
        nodes += 1
        if nodes > MAX_NODES:
            raise ProtocolError(f"more than {MAX_NODES} values in one message")
        if depth > MAX_DEPTH:
            raise ProtocolError("nesting too deep")
        if isinstance(value, list):
            return [dec(v, depth + 1) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            raise ProtocolError("an object without exactly one tag")
        ((tag, inner),) = value.items()
        if tag == "__ndarray__":
            if not isinstance(inner, int) or not 0 <= inner < len(blobs):
                raise ProtocolError("bad array reference")
            return _npy_array(blobs[inner])
        if tag == "__tuple__" and isinstance(inner, list):
            return tuple(dec(v, depth + 1) for v in inner)
        if tag == "__dict__" and isinstance(inner, dict):
            return {str(k): dec(v, depth + 1) for k, v in inner.items()}
        if tag == "__float__" and inner in ("nan", "inf", "-inf"):
            return float(inner)
        if tag == "__unsupported__" and isinstance(inner, str):
            return Unsupported(inner[:100])
        raise ProtocolError("unknown tag")

    return dec(header, 0)


class FrameReader:
    """Incremental frame parser: feed bytes as they arrive, iterate over decoded messages.

    A frame longer than ``max_frame_bytes`` is refused as soon as its 12-byte prefix
    arrives; at most one frame is ever buffered, in a buffer allocated once at its
    announced size, and decoded in place.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._head = bytearray()
        self._frame: bytearray | None = None
        self._filled = 0
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> Iterator[Any]:
        """Append ``data`` and yield every message now complete."""
        view = memoryview(data)
        while view:
            if self._frame is None:
                take = 12 - len(self._head)
                self._head += view[:take]
                view = view[take:]
                if len(self._head) < 12:
                    return
                if self._head[:4] != MAGIC:
                    raise ProtocolError("bad frame magic")
                (n,) = struct.unpack_from(">Q", self._head, 4)
                if n > self._max:
                    raise ProtocolError(f"frame of {n} bytes exceeds the limit of {self._max}")
                self._frame, self._filled = bytearray(n), 0
            frame = self._frame
            take = min(len(view), len(frame) - self._filled)
            frame[self._filled : self._filled + take] = view[:take]
            self._filled += take
            view = view[take:]
            if self._filled == len(frame):
                self._frame, self._head = None, bytearray()
                yield decode_payload(frame)

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._head) + self._filled
