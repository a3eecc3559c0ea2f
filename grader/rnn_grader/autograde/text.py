"""Text a student controls, made safe to print in a terminal, a report or feedback."""

from __future__ import annotations

import unicodedata


def printable(text: str, limit: int = 600) -> str:
    """``text`` without control characters (newlines and tabs kept), at most ``limit`` long.

    Anything a student controls (an exception's message, a folder name) passes through
    here before it is printed: terminal escape sequences would otherwise move the
    instructor's cursor or recolour the table. Each control character becomes ``?``.
    """
    kept = "".join(
        ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" else "?" for ch in str(text)
    )
    return kept if len(kept) <= limit else kept[: limit - 1] + "…"
