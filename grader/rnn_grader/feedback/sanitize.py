"""Student-authored HTML is made inert before an instructor or a student sees it.

A written answer is Markdown, and Markdown may contain raw HTML: ``<img src=x
onerror=...>`` or ``<script>`` in an answer would run in the instructor's browser when
formgrader shows the submission (with the page's XSRF token at hand), and in the
student's browser when the feedback file is opened. nbconvert's ``sanitize_html`` option
does not reach the Markdown cells of nbgrader's templates (they call ``markdown2html``
directly), so the course replaces that filter and adds a preprocessor:

- :func:`markdown2html_sanitized` renders Markdown as nbconvert does, formulas as MathML
  (converted here by ``latex2mathml``, so they display in any browser with no script and
  no network), and then keeps only an allow-list of tags and attributes (no scripts,
  event handlers, styles, ids, forms, frames or ``javascript:`` URLs), cleaned by
  ``nh3`` (the Rust library ammonia).
- :class:`SanitizeStudentContent` cleans what a notebook can carry besides Markdown:
  HTML outputs, executable output types (JavaScript, widgets), raw cells and cell
  metadata that templates read.

Both are installed for every HTML export that nbgrader makes (formgrader and
``generate_feedback``) by ``nbgrader_config.py``; :func:`sanitize_html` is also what the
grading report uses for any student-authored text it writes to HTML.
"""

from __future__ import annotations

import html
import re
from typing import Any

import nh3
from jinja2 import pass_context
from latex2mathml.converter import convert as latex_to_mathml
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode

__all__ = [
    "SanitizeStudentContent",
    "markdown2html_sanitized",
    "sanitize_html",
    "spreadsheet_safe",
]

#: Tags that Markdown produces, and harmless inline HTML a student may write.
ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd",
        "del", "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3",
        "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "mark", "ol", "p", "pre", "q", "s",
        "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
#: Presentation MathML, as latex2mathml writes it (no ``maction``, no ``annotation-xml``,
#: which could carry HTML, no ``href``).
MATHML_TAGS = frozenset(
    {
        "math", "mrow", "mi", "mo", "mn", "ms", "mtext", "mspace", "msup", "msub",
        "msubsup", "mfrac", "msqrt", "mroot", "mover", "munder", "munderover", "mtable",
        "mtr", "mtd", "mstyle", "mpadded", "mphantom", "menclose", "merror", "semantics",
        "annotation", "mlabeledtr", "mmultiscripts", "mprescripts", "none",
    }
)  # fmt: skip
MATHML_ATTRIBUTES = frozenset(
    {
        "display", "mathvariant", "stretchy", "fence", "separator", "lspace", "rspace",
        "accent", "accentunder", "columnalign", "rowalign", "rowspacing", "columnspacing",
        "columnlines", "rowlines", "frame", "displaystyle", "scriptlevel", "width",
        "height", "depth", "linethickness", "notation", "minsize", "maxsize",
        "movablelimits", "form", "largeop", "symmetric", "encoding", "xmlns",
    }
)  # fmt: skip
#: Classes that syntax highlighting and nbconvert put on rendered Markdown; anything else
#: (e.g. Bootstrap's ``navbar-fixed-top``, which could cover formgrader's controls) goes.
_SAFE_CLASS = re.compile(r"^(?:[a-z][a-z0-9]{0,3}|highlight|hl-[a-z0-9_+-]+)$")
_SAFE_URL = re.compile(r"^(?:https?:|mailto:|#|[^:/?#]*(?:[/?#]|$))", re.I)
_SAFE_IMAGE = re.compile(r"^(?:https?:|data:image/(?:png|jpeg|gif|webp|svg\+xml)[;,])", re.I)


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    if tag in MATHML_TAGS:
        if name == "xmlns":
            return value == "http://www.w3.org/1998/Math/MathML"
        return name in MATHML_ATTRIBUTES and bool(re.fullmatch(r"[\w .#%+-]{0,64}", value))
    if name == "class":
        return all(_SAFE_CLASS.match(c) for c in value.split())
    if name in ("title", "alt"):
        return True
    if tag == "a" and name == "href":
        return bool(_SAFE_URL.match(value.strip()))
    if tag == "img" and name == "src":
        value = value.strip()
        return bool(_SAFE_IMAGE.match(value) or _SAFE_URL.match(value))
    if tag == "img" and name in ("width", "height"):
        return value.isdigit()
    if tag in ("td", "th") and name in ("colspan", "rowspan", "align"):
        return bool(re.fullmatch(r"\d{1,3}|left|right|center", value))
    if tag in ("td", "th") and name == "style":
        return True  # reduced to text-align by the CSS sanitizer
    if tag == "ol" and name == "start":
        return value.isdigit()
    return False


#: Elements whose content is code, not prose: removed with it.
DROP_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "template", "noscript", "textarea", "title"}
)
_ATTRIBUTES = {
    "*": {"class", "title", "alt"},
    "a": {"href"},
    "img": {"src", "width", "height"},
    "td": {"colspan", "rowspan", "align", "style"},
    "th": {"colspan", "rowspan", "align", "style"},
    "ol": {"start"},
    **{tag: set(MATHML_ATTRIBUTES) for tag in MATHML_TAGS},
}


def _filter(tag: str, name: str, value: str) -> str | None:
    return value if _allowed_attribute(tag, name, value) else None


def sanitize_html(fragment: str) -> str:
    """An HTML fragment reduced to the allow-list: no scripts, handlers, styles or forms.

    Text is kept (and escaped where it looked like markup), so nothing a student wrote
    disappears silently except the content of ``<script>``-like elements. Presentation
    MathML (formulas) is kept.
    """
    return nh3.clean(
        str(fragment),
        tags=set(ALLOWED_TAGS | MATHML_TAGS),
        clean_content_tags=set(DROP_WITH_CONTENT),
        attributes=_ATTRIBUTES,
        attribute_filter=_filter,
        strip_comments=True,
        link_rel=None,
        url_schemes={"http", "https", "mailto", "data"},
        filter_style_properties={"text-align"},
    )


def mathml(tex: str, display: str) -> str:
    """A formula as MathML (``display`` "inline" or "block"); as code if it cannot be read."""
    try:
        return latex_to_mathml(tex, display=display)
    except Exception:
        delim = "$$" if display == "block" else "$"
        return f'<code class="math">{html.escape(delim + tex + delim)}</code>'


class MathMLRenderer(IPythonRenderer):
    """nbconvert's Markdown renderer, with every formula rendered as MathML."""

    def block_math(self, body: str) -> str:
        return mathml(body, "block")

    def inline_math(self, body: str) -> str:
        return mathml(body, "inline")

    def latex_environment(self, name: str, body: str) -> str:
        return mathml(f"\\begin{{{name}}}{body}\\end{{{name}}}", "block")


def spreadsheet_safe(text: str) -> str:
    """A CSV cell that a spreadsheet shows as text, never evaluates as a formula.

    A name such as ``=HYPERLINK(...)`` or ``@SUM(...)`` in a grades file would run when
    the file is opened in a spreadsheet; a leading apostrophe keeps it text.
    """
    text = str(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def escape(text: str) -> str:
    """Plain text for HTML (quotes included), e.g. a student id or a display name."""
    return html.escape(str(text), quote=True)


@pass_context
def markdown2html_sanitized(context: Any, source: str) -> str:
    """nbconvert's ``markdown2html`` with MathML formulas, then :func:`sanitize_html`.

    Registered as the ``markdown2html`` Jinja filter of ``HTMLExporter``: nbgrader's
    formgrade and feedback templates render every Markdown cell (and every comment)
    through it.
    """
    cell = context.get("cell", {}) or {}
    attachments = cell.get("attachments", {}) if hasattr(cell, "get") else {}
    path = context.get("resources", {}).get("metadata", {}).get("path", "")
    # No heading anchors: their ids are removed by the sanitizer, so the links would be dead.
    renderer = MathMLRenderer(
        escape=False, attachments=attachments, path=path, exclude_anchor_links=True
    )
    return sanitize_html(MarkdownWithMath(renderer=renderer).render(source))


#: Output types that a browser would execute or that templates embed raw.
EXECUTABLE_MIMETYPES = frozenset(
    {
        "text/javascript",
        "application/javascript",
        "application/vnd.jupyter.widget-view+json",
        "application/vnd.jupyter.widget-state+json",
    }
)
_SAFE_TAG = re.compile(r"^[\w-]{1,64}$")


class SanitizeStudentContent(Preprocessor):
    """Make outputs, raw cells and cell metadata of a submitted notebook inert.

    Markdown is cleaned by :func:`markdown2html_sanitized` after rendering (cleaning the
    Markdown source itself would escape ``<`` in math and code). Here:

    - ``text/html`` outputs keep only the allow-list, ``image/svg+xml`` (inline SVG can
      script) is dropped, JavaScript and widget outputs are removed;
    - output metadata (image sizes and file names end up in attributes) is cleared;
    - raw cells become empty (a raw cell with an HTML format would be emitted verbatim);
    - cell tags that are not plain words are dropped, and notebook-level widget state is
      removed.
    """

    enabled = True

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        nb.metadata.pop("widgets", None)
        return super().preprocess(nb, resources)

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict, index: int
    ) -> tuple[NotebookNode, dict]:
        tags = cell.get("metadata", {}).get("tags")
        if tags is not None:
            ok = [t for t in tags if isinstance(t, str) and _SAFE_TAG.match(t)]
            cell.metadata["tags"] = ok
        if cell.cell_type == "raw":
            cell.source = ""
            cell.metadata.pop("format", None)
            cell.metadata.pop("raw_mimetype", None)
        elif cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if "metadata" in output:
                    output["metadata"] = {}
                data = output.get("data")
                if not isinstance(data, dict):
                    continue
                for mime in list(data):
                    if mime in EXECUTABLE_MIMETYPES or mime == "image/svg+xml":
                        del data[mime]
                    elif mime == "text/html":
                        value = data[mime]
                        text = "".join(value) if isinstance(value, list) else str(value)
                        data[mime] = sanitize_html(text)
        return cell, resources
