"""``GradebookCells``: make a student's copy agree with the gradebook before nbgrader looks.

Runs first in ``Autograde.sanitize_preprocessors``. nbgrader trusts cell metadata more
than it should: a forged grade cell (a grade id the gradebook does not know), metadata
without a grade id, or a copied cell (same grade id twice) can abort autograding. Here
only cells whose grade id the gradebook records keep their nbgrader metadata, and only
the first cell with each grade id; everything else becomes an ordinary cell. nbgrader's
``OverwriteCells`` then restores sources, types and points from the gradebook and
(with ``add_missing_cells``) re-inserts deleted test cells.
"""

from __future__ import annotations

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor

from rnn_grader.autograde.preprocessor import gradebook_cell_names


class GradebookCells(NbGraderPreprocessor):
    """Strip nbgrader metadata from forged, malformed and duplicated cells."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        info = resources["nbgrader"]
        known = gradebook_cell_names(info["db_url"], info["assignment"], info["notebook"])
        seen: set[str] = set()
        for cell in nb.cells:
            meta = cell.get("metadata", {})
            if "nbgrader" not in meta:
                continue
            nbg = meta["nbgrader"]
            gid = nbg.get("grade_id") if isinstance(nbg, dict) else None
            if not isinstance(gid, str) or gid not in known or gid in seen:
                self.log.warning("Ignoring nbgrader metadata of a cell (grade id %r)", gid)
                del meta["nbgrader"]
                continue
            seen.add(gid)
        return nb, resources
