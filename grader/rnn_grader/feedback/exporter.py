"""``FeedbackExporter``: the HTML that ``nbgrader generate_feedback`` writes for a student.

It is nbgrader's feedback page (score summary, answers, test results, comments), made
small and self-contained:

- formulas are MathML, converted from the notebook's LaTeX when the page is written
  (:func:`rnn_grader.feedback.sanitize.markdown2html_sanitized`): browsers display
  MathML natively, so the page needs no script and no network, and no copy of MathJax
  rides along in every student's file;
- one compact stylesheet of its own (the page's layout, nbgrader's panels, wrapped
  failure messages, readable tables, a width that fits a phone) and the syntax
  highlighting colours, instead of Bootstrap and the classic notebook stylesheet.

Sanitizing the student's Markdown and outputs is configured for every nbgrader HTML
export in ``nbgrader_config.py`` (see :mod:`rnn_grader.feedback.sanitize`).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import markupsafe
import nbgrader
from nbconvert.exporters import HTMLExporter
from pygments.formatters import HtmlFormatter
from traitlets.config import Config

__all__ = ["TEMPLATE_DIR", "FeedbackExporter"]

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
#: nbgrader's own templates (``feedback/index.html.j2``).
NBGRADER_TEMPLATES = Path(nbgrader.__file__).resolve().parent / "server_extensions" / "formgrader"


@functools.cache
def highlight_css() -> str:
    """Pygments' colours for the ``highlight`` class nbconvert puts on code."""
    return HtmlFormatter(style="default").get_style_defs(".highlight")


class FeedbackExporter(HTMLExporter):
    """nbgrader's feedback HTML, small, self-contained and readable offline."""

    def __init__(self, config: Config | None = None, **kwargs: Any) -> None:
        # generate_feedback configures HTMLExporter.template_name = "feedback"; a section
        # for this class wins over it (unless the course configured this class itself).
        config = copy.deepcopy(config) if config is not None else Config()
        own = config.FeedbackExporter
        own.setdefault("template_name", "rnn_feedback")
        own.setdefault("extra_template_basedirs", [str(TEMPLATE_DIR)])
        own.setdefault("extra_template_paths", [str(NBGRADER_TEMPLATES / "templates")])
        super().__init__(config=config, **kwargs)

    def _init_resources(self, resources: dict[str, Any]) -> dict[str, Any]:
        resources = super()._init_resources(resources)
        resources["highlight_css"] = markupsafe.Markup(highlight_css())
        return resources
