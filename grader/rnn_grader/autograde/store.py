"""Grading results handed between processes through a folder, instead of module globals.

``rnn-course grade`` points :class:`~rnn_grader.autograde.preprocessor.TrustedExecute`
at a store (``TrustedExecute.store``). Its parallel back ends put a notebook's verdicts
there when they were decided elsewhere (on a Dask cluster), and the preprocessor puts a
summary of every notebook it grades there for the report. Each entry is one small JSON
file per notebook: a verdict holds a few booleans and a message, never outputs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rnn_grader.autograde.judge import Verdict

Key = tuple[str, str, str]  # (student, assignment, notebook)


class GradingStore:
    """A folder of per-notebook JSON entries, of two kinds: verdicts and summaries."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def _path(self, kind: str, key: Key) -> Path:
        # student ids are folder names under submitted/: no "/" and never "." or ".."
        return self.folder / kind / "+".join(key).replace("/", "_")

    def _put(self, kind: str, key: Key, data: dict[str, Any]) -> None:
        path = self._path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": list(key), **data}))
        tmp.replace(path)

    def put_verdicts(
        self, key: Key, verdicts: dict[str, Verdict], seconds: float, runs: int
    ) -> None:
        """The verdicts of one notebook, decided before nbgrader writes them."""
        data = {"verdicts": {g: asdict(v) for g, v in verdicts.items()}}
        self._put("verdicts", key, {**data, "seconds": seconds, "runs": runs})

    def take_verdicts(self, key: Key) -> tuple[dict[str, Verdict], float, int] | None:
        """The verdicts put for ``key`` (removed from the store), or None."""
        path = self._path("verdicts", key)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        path.unlink()
        verdicts = {g: Verdict(**v) for g, v in data["verdicts"].items()}
        return verdicts, float(data["seconds"]), int(data["runs"])

    def put_summary(
        self, key: Key, verdicts: dict[str, Verdict], seconds: float, runs: int
    ) -> None:
        """What grading decided for one notebook, for the report."""
        tests = {g: [v.passed, v.timed_out] for g, v in verdicts.items()}
        failures = [f"{g}: {v.message}" for g, v in verdicts.items() if not v.passed]
        self._put(
            "summaries",
            key,
            {"tests": tests, "failures": failures, "seconds": seconds, "runs": runs},
        )

    def summaries(self, student: str) -> list[dict[str, Any]]:
        """Every summary of ``student``'s notebooks."""
        folder = self.folder / "summaries"
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.iterdir()):
            data = json.loads(path.read_text())
            if data["key"][0] == student:
                out.append(data)
        return out
