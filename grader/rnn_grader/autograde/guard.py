"""What nbgrader reads of a student's notebook is bounded, and what counts comes from the gradebook.

Two guards make one notebook unable to affect any other student:

* :class:`GuardedNotebookExporter` (``Autograde.exporter_class``) refuses a notebook that
  is a symlink, not a regular file or larger than ``TrustedExecute.max_notebook_bytes``
  *before* parsing it, and turns every error raised while converting a notebook into an
  ordinary exception. nbgrader's schema errors (``SchemaTooOldError``,
  ``SchemaTooNewError``) otherwise abort ``nbgrader autograde`` for every student after
  this one; an ordinary exception fails this student alone, with the reason in the log.
* :class:`GradebookCells` runs first in ``Autograde.sanitize_preprocessors``. nbgrader
  trusts cell metadata more than it should: a forged grade cell, a changed
  ``schema_version``, metadata without a grade id or a copied cell can abort
  autograding. Here the cells that count are rebuilt from the gradebook: the first cell
  carrying each grade id the gradebook records gets the gradebook's metadata (type,
  grade/solution/locked/task flags, points, current schema version), and every other
  cell becomes an ordinary cell. nbgrader's ``OverwriteCells`` then restores sources and
  (with ``add_missing_cells``) re-inserts deleted test cells.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import nbformat
from nbconvert.exporters import NotebookExporter
from nbformat import NotebookNode
from nbgrader.api import Gradebook
from nbgrader.nbgraderformat import SCHEMA_VERSION
from nbgrader.nbgraderformat.common import SchemaMismatchError
from nbgrader.preprocessors import NbGraderPreprocessor

#: Default largest notebook file that is parsed (``TrustedExecute.max_notebook_bytes``).
MAX_NOTEBOOK_BYTES = 4 * 1024 * 1024


class NotebookRejected(Exception):
    """This student's notebook cannot be graded (too large, not a file, unreadable)."""


def check_notebook_file(path: str | os.PathLike, max_bytes: int) -> int:
    """Refuse ``path`` unless it is a regular file (not a symlink) of at most ``max_bytes``.

    Returns its size. Nothing of the file is read.
    """
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise NotebookRejected(f"{os.fspath(path)}: cannot be read ({exc.strerror})") from None
    name = os.path.basename(os.fspath(path))
    if stat.S_ISLNK(st.st_mode):
        raise NotebookRejected(f"{name} is a symbolic link; it is not graded")
    if not stat.S_ISREG(st.st_mode):
        raise NotebookRejected(f"{name} is not a regular file; it is not graded")
    if st.st_size > max_bytes:
        raise NotebookRejected(
            f"{name} is {st.st_size / 2**20:.1f} MiB, over the limit of "
            f"{max_bytes / 2**20:.1f} MiB (TrustedExecute.max_notebook_bytes); it is not graded"
        )
    return st.st_size


def parse_notebook(stream: Any, max_bytes: int, name: str) -> NotebookNode:
    """Read at most ``max_bytes`` (plus one) from an open file and parse a v4 notebook.

    ``name`` is how errors call the file. Raises :class:`NotebookRejected` if the file is
    not regular, grows over the limit while being read or is not a readable notebook.
    """
    st = os.fstat(stream.fileno())
    if not stat.S_ISREG(st.st_mode):
        raise NotebookRejected(f"{name} is not a regular file; it is not graded")
    if st.st_size > max_bytes:
        raise NotebookRejected(f"{name} is {st.st_size} bytes, over the limit of {max_bytes}")
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise NotebookRejected(f"{name} grew over the size limit while being read")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return nbformat.reads(text, as_version=4)
    except Exception as exc:
        raise NotebookRejected(
            f"{name} is not a readable notebook ({type(exc).__name__}: {str(exc)[:300]})"
        ) from None


def read_notebook(path: str | os.PathLike, max_bytes: int = MAX_NOTEBOOK_BYTES) -> NotebookNode:
    """Parse ``path`` as a v4 notebook after :func:`check_notebook_file`, reading at most that."""
    check_notebook_file(path, max_bytes)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        return parse_notebook(f, max_bytes, os.path.basename(os.fspath(path)))


def notebook_limit(config: Any) -> int:
    """``TrustedExecute.max_notebook_bytes`` from an nbgrader config."""
    section = config.get("TrustedExecute", {}) if config is not None else {}
    value = section.get("max_notebook_bytes", MAX_NOTEBOOK_BYTES)
    return int(value)


class GuardedNotebookExporter(NotebookExporter):
    """nbgrader's notebook exporter, with a size limit before parsing and per-notebook errors."""

    def from_filename(
        self, filename: str, resources: dict | None = None, **kw: Any
    ) -> tuple[NotebookNode, dict]:
        check_notebook_file(filename, notebook_limit(self.config))
        return super().from_filename(filename, resources, **kw)

    def from_file(
        self, file_stream: Any, resources: dict | None = None, **kw: Any
    ) -> tuple[NotebookNode, dict]:
        nb = parse_notebook(file_stream, notebook_limit(self.config), "the notebook")
        return self.from_notebook_node(nb, resources, **kw)

    def from_notebook_node(
        self, nb: NotebookNode, resources: dict | None = None, **kw: Any
    ) -> tuple[NotebookNode, dict]:
        try:
            return super().from_notebook_node(nb, resources, **kw)
        except SchemaMismatchError as exc:
            # nbgrader stops the whole batch on these; this notebook alone is at fault
            raise NotebookRejected(f"nbgrader metadata of this notebook: {exc}") from None
        except RecursionError:
            raise NotebookRejected("the notebook is nested too deeply to be processed") from None


def gradebook_cells(db_url: str, assignment: str, notebook: str) -> dict[str, tuple[str, dict]]:
    """Grade id -> (cell type, nbgrader metadata) of every cell the gradebook records."""
    with Gradebook(db_url) as gb:
        nb = gb.find_notebook(notebook, assignment)
        grades = {g.name: g for g in nb.grade_cells}
        solutions = {s.name for s in nb.solution_cells}
        tasks = {t.name: t for t in getattr(nb, "task_cells", [])}
        out: dict[str, tuple[str, dict]] = {}
        for src in nb.source_cells:
            meta: dict[str, Any] = {
                "grade": src.name in grades,
                "grade_id": src.name,
                "locked": bool(src.locked),
                "schema_version": SCHEMA_VERSION,
                "solution": src.name in solutions,
                "task": src.name in tasks,
            }
            if src.name in tasks:
                meta["points"] = float(tasks[src.name].max_score)
            elif src.name in grades:
                meta["points"] = float(grades[src.name].max_score)
            out[src.name] = (src.cell_type, meta)
    return out


def _set_type(cell: NotebookNode, cell_type: str) -> None:
    if cell.get("cell_type") == cell_type:
        return
    cell["cell_type"] = cell_type
    if cell_type == "code":
        cell["outputs"] = []
        cell["execution_count"] = None
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


class GradebookCells(NbGraderPreprocessor):
    """Rebuild the nbgrader metadata of every cell from the gradebook."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        info = resources["nbgrader"]
        known = gradebook_cells(info["db_url"], info["assignment"], info["notebook"])
        seen: set[str] = set()
        rebuilt = 0
        for cell in nb.cells:
            meta = cell.get("metadata")
            if not isinstance(meta, dict):
                cell["metadata"] = meta = NotebookNode()
            if "nbgrader" not in meta:
                continue
            nbg = meta["nbgrader"]
            gid = nbg.get("grade_id") if isinstance(nbg, dict) else None
            if not isinstance(gid, str) or gid not in known or gid in seen:
                self.log.warning("Ignoring nbgrader metadata of a cell (grade id %r)", gid)
                del meta["nbgrader"]
                continue
            seen.add(gid)
            cell_type, canonical = known[gid]
            # nbgrader adds a checksum and the cell type at release: only a change of what
            # the gradebook decides is worth a warning
            stated = {k: v for k, v in nbg.items() if k not in ("checksum", "cell_type")}
            if stated != canonical or cell.get("cell_type") != cell_type:
                rebuilt += 1
            meta["nbgrader"] = NotebookNode(dict(canonical))
            _set_type(cell, cell_type)
        if rebuilt:
            self.log.warning(
                "Rebuilt the nbgrader metadata of %d cell(s) from the gradebook", rebuilt
            )
        return nb, resources
