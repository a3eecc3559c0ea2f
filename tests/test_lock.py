"""The one lock file: name==version lines from the package index, and a recipe that keeps it so."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][A-Za-z0-9.!]*$")


def entries() -> list[str]:
    lines = (ROOT / "requirements.lock").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def test_every_entry_is_a_name_and_an_index_version() -> None:
    bad = [ln for ln in entries() if not PIN.match(ln)]
    assert not bad, f"not name==version (a URL, a path or a local label): {bad}"
    names = [ln.split("==")[0].lower().replace("_", "-") for ln in entries()]
    assert len(names) == len(set(names)), "a package is pinned twice"


def test_the_pins_the_course_depends_on() -> None:
    pins = dict(ln.split("==") for ln in entries())
    assert pins["torch"] == "2.13.0"
    assert pins["nbgrader"] == "0.9.6"
    assert pins["jupyter-book"] == "1.0.4.post1"


def test_the_recipe_cannot_write_a_url_or_a_path() -> None:
    header = [
        ln for ln in (ROOT / "requirements.lock").read_text().splitlines() if ln.startswith("#")
    ]
    assert any("make lock" in ln for ln in header)
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("\nlock:") :].split("\n\n")[0]
    assert "pip list --format=freeze" in recipe and "pip freeze" not in recipe
    assert "--exclude-editable" in recipe
    assert "+[A-Za-z0-9.]+" in recipe  # local version labels (+cpu) are dropped
