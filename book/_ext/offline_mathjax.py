"""Serve MathJax 3 from the book's own ``_static`` folder, so math renders offline.

The PyPI package ``django-static-mathjax`` ships MathJax 3 (combined components such as
``tex-mml-chtml.js`` together with their fonts) under ``mathjax/static/mathjax/es5/``.
This extension finds that folder through the import system (no hard-coded paths), points
Sphinx's ``mathjax_path`` at the local copy and copies the files into
``<html output>/_static/mathjax/`` once the HTML build has finished.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: Folder under ``_static`` that receives the MathJax files.
STATIC_SUBDIR = "mathjax"
#: The combined component loaded by every page (TeX and MathML input, CommonHTML output).
ENTRY_POINT = "tex-mml-chtml.js"


def mathjax_source_dir() -> Path:
    """Return the ``es5`` folder of the installed MathJax 3 distribution.

    Raises:
        ExtensionError: if ``django-static-mathjax`` is not installed or has no ``es5``
            folder containing the entry point.
    """
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError(
            "offline_mathjax needs the package 'django-static-mathjax' (import name 'mathjax'), "
            "which is not installed; install it from requirements.lock"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "static" / "mathjax" / "es5"
        if (candidate / ENTRY_POINT).is_file():
            return candidate
    raise ExtensionError(
        f"offline_mathjax expected {ENTRY_POINT} under mathjax/static/mathjax/es5 in "
        f"{list(spec.submodule_search_locations)}, found none"
    )


def _use_local_mathjax(app: Sphinx, config: Config) -> None:
    # Relative JavaScript paths are resolved against the HTML output's _static folder.
    config.mathjax_path = f"{STATIC_SUBDIR}/{ENTRY_POINT}"


def _copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / STATIC_SUBDIR
    source = mathjax_source_dir()
    if (target / ENTRY_POINT).is_file() and (
        (target / ENTRY_POINT).stat().st_size == (source / ENTRY_POINT).stat().st_size
    ):
        return
    shutil.copytree(source, target, dirs_exist_ok=True)
    logger.info(f"offline_mathjax: copied MathJax into {target}")


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the extension with Sphinx."""
    mathjax_source_dir()  # fail early, before a long build, when MathJax is missing
    app.connect("config-inited", _use_local_mathjax, priority=900)
    app.connect("build-finished", _copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
