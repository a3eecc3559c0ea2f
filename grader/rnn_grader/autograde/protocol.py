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
#: Largest payload the reader accepts; larger frames are a protocol error.
MAX_FRAME_BYTES = 64 * 1024 * 1024
#: Deepest nesting of lists/dicts the decoder follows.
MAX_DEPTH = 32


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


def decode_payload(payload: bytes) -> Any:
    """Decode one payload; raises ``ProtocolError`` on anything unexpected."""
    try:
        (hlen,) = struct.unpack_from(">I", payload, 0)
        header = json.loads(payload[4 : 4 + hlen].decode())
        pos = 4 + hlen
        blobs: list[bytes] = []
        while pos < len(payload):
            (blen,) = struct.unpack_from(">Q", payload, pos)
            pos += 8
            if pos + blen > len(payload):
                raise ProtocolError("truncated array blob")
            blobs.append(payload[pos : pos + blen])
            pos += blen
    except ProtocolError:
        raise
    except Exception as exc:  # struct.error, UnicodeDecodeError, JSONDecodeError
        raise ProtocolError(f"malformed payload: {type(exc).__name__}: {exc}") from None

    def dec(value: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ProtocolError("nesting too deep")
        if isinstance(value, list):
            return [dec(v, depth + 1) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            raise ProtocolError(f"unexpected object with keys {sorted(value)[:5]}")
        ((tag, inner),) = value.items()
        if tag == "__ndarray__":
            if not isinstance(inner, int) or not 0 <= inner < len(blobs):
                raise ProtocolError(f"bad array reference {inner!r}")
            try:
                return np.load(io.BytesIO(blobs[inner]), allow_pickle=False)
            except Exception as exc:
                raise ProtocolError(f"bad .npy blob: {exc}") from None
        if tag == "__tuple__" and isinstance(inner, list):
            return tuple(dec(v, depth + 1) for v in inner)
        if tag == "__dict__" and isinstance(inner, dict):
            return {str(k): dec(v, depth + 1) for k, v in inner.items()}
        if tag == "__float__" and inner in ("nan", "inf", "-inf"):
            return float(inner)
        if tag == "__unsupported__" and isinstance(inner, str):
            return Unsupported(inner[:100])
        raise ProtocolError(f"unknown tag {tag!r}")

    return dec(header, 0)


class FrameReader:
    """Incremental frame parser: feed bytes as they arrive, iterate over decoded messages."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> Iterator[Any]:
        """Append ``data`` and yield every message now complete."""
        self._buf += data
        while len(self._buf) >= 12:
            if self._buf[:4] != MAGIC:
                raise ProtocolError("bad frame magic")
            (n,) = struct.unpack_from(">Q", self._buf, 4)
            if n > self._max:
                raise ProtocolError(f"frame of {n} bytes exceeds the limit of {self._max}")
            if len(self._buf) < 12 + n:
                return
            payload = bytes(self._buf[12 : 12 + n])
            del self._buf[: 12 + n]
            yield decode_payload(payload)

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)
