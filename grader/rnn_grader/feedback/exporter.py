"""``FeedbackExporter``: the HTML that ``nbgrader generate_feedback`` writes for a student.

It is nbgrader's feedback page (score summary, answers, test results, comments) with

- MathJax inlined into the file (``tex-svg-full.js`` from the PyPI package
  ``django-static-mathjax``, the same copy the book serves), so formulas render with no
  network: a student can open the file from a download folder or an LMS attachment;
- failure messages wrapped instead of one long line, readable tables, and a page that
  fits a phone's width;
- MathJax's ``ui/safe`` extension loaded and the TeX ``html`` package left out, so a
  student's formula cannot carry a ``javascript:`` link or restyle the page.

Sanitizing the student's Markdown and outputs is configured for every nbgrader HTML
export in ``nbgrader_config.py`` (see :mod:`rnn_grader.feedback.sanitize`).
"""

from __future__ import annotations

import base64
import copy
import functools
import importlib.util
import re
from pathlib import Path
from typing import Any

import markupsafe
import nbgrader
from nbconvert.exporters import HTMLExporter
from traitlets.config import Config

__all__ = ["TEMPLATE_DIR", "FeedbackExporter", "mathjax_dir"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
#: nbgrader's own templates (``feedback/index.html.j2``) and the Bootstrap CSS they use.
NBGRADER_TEMPLATES = Path(nbgrader.__file__).resolve().parent / "server_extensions" / "formgrader"
MATHJAX_ENTRY = "tex-svg-full.js"  # every TeX package built in, SVG output: no font files


def mathjax_dir() -> Path:
    """The ``es5`` folder of the installed MathJax 3 (package ``django-static-mathjax``)."""
    spec = importlib.util.find_spec("mathjax")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "static" / "mathjax" / "es5"
        if (candidate / MATHJAX_ENTRY).is_file():
            return candidate
    raise RuntimeError(
        "offline feedback needs MathJax 3 from the package 'django-static-mathjax' "
        "(in requirements.lock); it is not installed"
    )


def _inline_script(text: str) -> str:
    # Inside <script>, only "</script" ends the element, and "<!--" changes how the rest is
    # parsed; in JavaScript strings and regular expressions "<\/" and "<\!" mean the same.
    text = re.sub(r"</(script)", r"<\\/\1", text, flags=re.I)
    return text.replace("<!--", "<\\!--")


@functools.cache
def _mathjax_assets() -> tuple[str, str]:
    folder = mathjax_dir()
    main = _inline_script((folder / MATHJAX_ENTRY).read_text(encoding="utf-8"))
    safe = base64.b64encode((folder / "ui" / "safe.js").read_bytes()).decode("ascii")
    return main, f"data:text/javascript;base64,{safe}"


class FeedbackExporter(HTMLExporter):
    """nbgrader's feedback HTML, self-contained and readable offline."""

    def __init__(self, config: Config | None = None, **kwargs: Any) -> None:
        # generate_feedback configures HTMLExporter.template_name = "feedback"; a section
        # for this class wins over it (unless the course configured this class itself).
        config = copy.deepcopy(config) if config is not None else Config()
        own = config.FeedbackExporter
        own.setdefault("template_name", "rnn_feedback")
        own.setdefault("extra_template_basedirs", [str(TEMPLATE_DIR)])
        css = NBGRADER_TEMPLATES / "static" / "node_modules" / "bootstrap" / "dist" / "css"
        own.setdefault("extra_template_paths", [str(NBGRADER_TEMPLATES / "templates"), str(css)])
        super().__init__(config=config, **kwargs)

    def _init_resources(self, resources: dict[str, Any]) -> dict[str, Any]:
        resources = super()._init_resources(resources)
        main, safe_url = _mathjax_assets()
        resources["offline_mathjax"] = markupsafe.Markup(main)
        resources["mathjax_safe_url"] = safe_url
        return resources
