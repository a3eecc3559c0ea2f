"""The instructor's answers of an assignment, run into a namespace as the grader would see them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def sources(assignment: str) -> dict[str, str]:
    """``{grade_id: source}`` of the solution notebook's answer cells, markers removed."""
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    out = {}
    for cell in json.loads(path.read_text())["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and meta.get("solution") and not meta.get("grade"):
            lines = "".join(cell["source"]).splitlines()
            out[meta["grade_id"]] = "\n".join(
                ln for ln in lines if not ln.strip().startswith("### ")
            )
    return out


def namespace(assignment: str, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """The answer cells (``overrides`` replacing some by grade id) run after ``import numpy``."""
    ns: dict[str, Any] = {}
    exec("import numpy as np", ns)
    for gid, source in {**sources(assignment), **(overrides or {})}.items():
        exec(compile(source, f"<{gid}>", "exec"), ns)
    return ns
