"""Write what a student needs beside each released notebook: the self-check and its data.

``rnn-course release [ASSIGNMENT ...]`` (``make release``) runs ``nbgrader
generate_assignment`` for each assignment and then writes into
``assignments/<assignment>/``:

* ``selfcheck.py``, a copy of :mod:`rnn_grader.student.selfcheck` (NumPy only);
* ``public_checks.json``: for every check of the assignment, how its functions are called,
  its general hint, and its public cases with inputs, expected outputs and the outputs of
  known mistakes, all computed here from the reference;
* ``nbgrader_config.py``: the student's settings for ``nbgrader validate`` in that folder
  (no warning about a missing configuration, no kernel warning on stderr);

and links the released notebook to the published book: a Markdown link written
``[text](book:05_lstm)`` or ``[text](book:04_clipping#clipping-algorithm)`` in
``solutions/`` becomes ``<baseurl>book/05_lstm.html`` (plus the anchor), where
``baseurl`` is the ``baseurl:`` of the ``html:`` section of ``_config.yml``, the one place
that names the book's address. Only cells without nbgrader metadata may hold such links:
a locked cell's text is stored in the gradebook (and checksummed) by
``generate_assignment``, so it must not change afterwards.

No hidden case and no reference code leaves this package.
"""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
import torch

from rnn_grader.checks import registry
from rnn_grader.student import selfcheck

FORMAT = 1

#: ``nbgrader validate <a>.ipynb`` run in the released folder reads this file. It must not
#: import the instructor's packages: students have neither.
STUDENT_CONFIG = """\
\"\"\"nbgrader settings for checking this assignment on your own computer.

`nbgrader validate <notebook>.ipynb`, run in this folder, reads this file.
\"\"\"

import nbgrader.apps.validateapp as _validateapp

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

# Print the result only: no "Validating ..." line.
c.Application.log_level = "WARN"

# Seconds a cell may run, as when the course grades it.
c.Execute.timeout = 30

# Encrypt the connection between nbgrader and the notebook's kernel (CurveZMQ) when this
# computer's ZeroMQ supports it; otherwise the kernel warns that it runs over plain TCP.
try:
    import zmq
except ImportError:
    pass
else:
    if zmq.has("curve"):
        c.KernelManager.transport_encryption = "auto"


class _Validator(_validateapp.Validator):
    \"\"\"Validate as the course grades: a copied cell runs as an ordinary cell.

    A copy of a graded cell keeps its grade id, which nbgrader refuses as corrupted
    metadata. The course's grader keeps the first cell with each grade id and runs every
    other copy as a cell of yours, in notebook order (so the last definition of a
    function wins, as in your kernel); validating does the same.
    \"\"\"

    def _preprocess(self, nb):
        seen = set()
        for cell in nb.cells:
            meta = cell.get("metadata", {})
            grade_id = meta.get("nbgrader", {}).get("grade_id")
            if grade_id in seen:
                del meta["nbgrader"]
            elif grade_id:
                seen.add(grade_id)
        return super()._preprocess(nb)


_validateapp.Validator = _Validator
"""

#: A link to a page of the book in the source notebooks: ``](book:<page>[#<anchor>])``.
BOOK_LINK = re.compile(r"\]\(book:(?P<page>[A-Za-z0-9_-]+)(?:#(?P<anchor>[A-Za-z0-9_-]+))?\)")


def book_base_url(config: Path = Path("_config.yml")) -> str:
    """The ``baseurl:`` of the ``html:`` section of the book's ``_config.yml``, ending in ``/``."""
    section = None
    for line in Path(config).read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            section = line.split(":", 1)[0].strip()
        elif section == "html" and line.strip().startswith("baseurl:"):
            value = line.split(":", 1)[1].split(" #", 1)[0].strip().strip("\"'")
            if not value.startswith(("https://", "http://")):
                raise ValueError(f"{config}: html: baseurl: must be an http(s) URL, got {value!r}")
            return value.rstrip("/") + "/"
    raise ValueError(f"{config} has no baseurl: in its html: section")


def link_book_pages(text: str, base_url: str, book_dir: Path | None = None) -> str:
    """``text`` with every ``](book:<page>[#anchor])`` replaced by the published page's URL.

    With ``book_dir``, every page must exist there as ``<page>.md``.
    """

    def url(match: re.Match[str]) -> str:
        page, anchor = match["page"], match["anchor"]
        if book_dir is not None and not (Path(book_dir) / f"{page}.md").is_file():
            raise ValueError(f"a link names the book page {page!r}, which {book_dir} lacks")
        return f"]({base_url}book/{page}.html" + (f"#{anchor}" if anchor else "") + ")"

    return BOOK_LINK.sub(url, text)


def link_notebook(
    nb: dict[str, Any], base_url: str, book_dir: Path | None = None
) -> dict[str, Any]:
    """A copy of notebook ``nb`` (plain JSON data) with its book links resolved.

    Raises ``ValueError`` if a cell with nbgrader metadata holds a link: its text is what
    the gradebook stores, and it must stay exactly as ``generate_assignment`` wrote it.
    """
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if not BOOK_LINK.search(source):
            continue
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id:
            raise ValueError(f"cell {grade_id!r} has book links; move them to a plain cell")
        cell["source"] = link_book_pages(source, base_url, book_dir)
    return nb


def link_released_notebook(path: Path, base_url: str, book_dir: Path | None = None) -> bool:
    """Resolve the book links of the notebook at ``path`` in place; whether it changed."""
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    linked = link_notebook(nb, base_url, book_dir)
    if linked == nb:
        return False
    nbformat.write(nbformat.from_dict(linked), path)  # as nbgrader writes notebooks
    return True


def public_data(assignment: str) -> dict[str, Any]:
    """The public-check data of ``assignment`` as JSON-ready plain data."""
    if assignment not in registry.ASSIGNMENTS:
        known = ", ".join(registry.ASSIGNMENTS)
        raise ValueError(f"assignment must be one of {known}; got {assignment!r}")
    checks = {}
    for name in registry.ASSIGNMENTS[assignment]:
        check = registry.get(name)
        cases = [
            {
                "inputs": selfcheck.encode(case),
                "expected": selfcheck.encode(check.expected(case)),
                "mistakes": selfcheck.encode(check.mistakes(case)),
            }
            for case in check.cases(hidden=False)
        ]
        checks[name] = {"call": check.call, "hint": check.hint, "cases": cases}
    return {"format": FORMAT, "assignment": assignment, "checks": checks}


def dumps(data: dict[str, Any]) -> str:
    """Deterministic JSON (floats written exactly, keys in order)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=True) + "\n"


#: Computed values that differ by less than this (relative) are the same result: BLAS
#: sums in an order that depends on the processor, so the last bits vary between machines.
SAME_RTOL, SAME_ATOL = 1e-12, 1e-14


def same_data(old: Any, new: Any) -> bool:
    """Whether two public-check data (plain JSON) differ only in the last bits of floats."""
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(same_data(old[k], new[k]) for k in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(same_data(a, b) for a, b in zip(old, new, strict=True))
    if isinstance(old, float) and isinstance(new, float):
        return math.isclose(old, new, rel_tol=SAME_RTOL, abs_tol=SAME_ATOL) or (
            math.isnan(old) and math.isnan(new)
        )
    return type(old) is type(new) and old == new


def write_data(path: Path, data: dict[str, Any], previous: str | None = None) -> bool:
    """Write ``data`` to ``path``, or the ``previous`` text when it holds the same data.

    Released again on another machine, the data keeps its former text, so a course's
    private copy stays unchanged after ``make release``. Returns whether the data changed.
    """
    text = dumps(data)
    if previous is None and path.is_file():
        previous = path.read_text(encoding="utf-8")
    if previous is not None:
        try:
            same = same_data(json.loads(previous), json.loads(text))
        except ValueError:
            same = False
        if same:
            if not path.is_file() or path.read_text(encoding="utf-8") != previous:
                path.write_text(previous, encoding="utf-8")
            return False
    path.write_text(text, encoding="utf-8")
    return True


def write(
    assignment: str,
    release_dir: Path,
    config: Path | None = Path("_config.yml"),
    previous: str | None = None,
) -> list[Path]:
    """Write the student files into ``release_dir/<assignment>`` and link its notebook.

    Writes ``selfcheck.py``, ``public_checks.json`` (kept as ``previous``, the text it had
    before, when the data is the same: see :func:`write_data`) and ``nbgrader_config.py``;
    with ``config`` (the book's ``_config.yml``), resolves the notebook's book links too.
    """
    folder = Path(release_dir) / assignment
    folder.mkdir(parents=True, exist_ok=True)
    data_path = folder / selfcheck.DATA_FILE
    changed = write_data(data_path, public_data(assignment), previous)
    written = [data_path] if changed else []
    code_path = folder / "selfcheck.py"
    shutil.copyfile(selfcheck.__file__, code_path)
    config_path = folder / "nbgrader_config.py"
    config_path.write_text(STUDENT_CONFIG, encoding="utf-8")
    written += [code_path, config_path]
    notebook = folder / f"{assignment}.ipynb"
    if config is not None and notebook.is_file():
        book_dir = Path(config).parent / "book"
        if link_released_notebook(notebook, book_base_url(config), book_dir):
            written.append(notebook)
    return written


def release(
    assignments: Sequence[str],
    release_dir: Path = Path("assignments"),
    config: Path | None = Path("_config.yml"),
    *,
    generate: bool = True,
) -> None:
    """Release ``assignments``: the student notebooks, then their self-check files.

    With ``generate``, runs ``nbgrader generate_assignment --force`` first (it replaces
    the released folder); the public data's former text is read before, and kept when
    the data is the same.

    Raises:
        RuntimeError: ``nbgrader generate_assignment`` failed (its output is included).
    """
    torch.set_num_threads(1)  # one reduction order, so the data does not change with the machine
    previous = {}
    for assignment in assignments:
        path = Path(release_dir) / assignment / selfcheck.DATA_FILE
        previous[assignment] = path.read_text(encoding="utf-8") if path.is_file() else None
    if generate:
        for assignment in assignments:
            done = subprocess.run(
                ["nbgrader", "generate_assignment", assignment, "--force"],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(
                    f"nbgrader generate_assignment {assignment} failed:\n"
                    f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
                )
    for assignment in assignments:
        for path in write(assignment, release_dir, config, previous[assignment]):
            print(f"wrote {path}")
