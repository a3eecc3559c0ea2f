"""A written answer with ``<img onerror>``, ``<script>`` and a ``javascript:`` link runs
nowhere: not in the student's feedback file, not in formgrader's submission view.

The course is the one graded in ``tests/fixtures/lms/canvas_course.py``; José's late
resubmission carries the payload (:data:`canvas_course.XSS_ANSWER`), which would set
``window.__pwned`` and the page title. Formgrader is the real one: a Jupyter server with
nbgrader's formgrader extension on localhost, opened in Chromium with the server's token.
A control renders the same notebook with nbgrader's template and nbconvert's defaults
(what formgrader did before) to show that the payload does run there, so the other
tests would notice a regression.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "lms"))
import canvas_course as cc

from rnn_grader.feedback.sanitize import markdown2html_sanitized, sanitize_html

pytestmark = pytest.mark.slow

TOKEN = "formgrader-test-token"


@pytest.mark.parametrize(
    "payload",
    [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        '<a href="javascript:alert(1)">x</a>',
        '<a href="data:text/html,<script>alert(1)</script>">x</a>',
        "<svg><script>alert(1)</script></svg>",
        '<iframe src="javascript:alert(1)"></iframe>',
        '<div style="position:fixed;top:0" class="navbar-fixed-top">cover</div>',
        '<form action="/formgrader/api/grade"><input name=x></form>',
        "<math><mtext><img src=x onerror=alert(1)></mtext></math>",
    ],
)
def test_sanitizer_removes_active_content(payload: str) -> None:
    out = sanitize_html(payload).lower()
    active = ("<script", "onerror", "javascript:", "data:text", "<iframe", "<svg", "style=")
    for needle in (*active, "navbar", "<form", "<input"):
        assert needle not in out, (payload, out)


def test_sanitizer_keeps_what_markdown_produces() -> None:
    html = sanitize_html(
        '<h2 id="x">Part</h2><p>a <em>b</em> <code>c</code> $\\rho^t$</p>'
        '<table><thead><tr><th style="text-align: left">part</th></tr></thead>'
        '<tbody><tr><td>1</td></tr></tbody></table><img src="data:image/png;base64,AA==" alt="p">'
    )
    kept = ("<h2>Part</h2>", "<em>b</em>", "<code>c</code>", "$\\rho^t$", "<th")
    for part in (*kept, "text-align:left", 'src="data:image/png'):
        assert part in html.replace("text-align: left", "text-align:left"), html


def test_markdown_filter_renders_then_sanitizes() -> None:
    context = {"cell": {}, "resources": {}}
    html = markdown2html_sanitized(context, "**bold** $a<b$\n\n<img src=x onerror=alert(1)>")
    assert "<strong>bold</strong>" in html and "onerror" not in html
    # the formula is MathML: a < b, with the "<" an operator, not markup
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">' in html
    assert "<mi>a</mi><mo>&lt;</mo><mi>b</mi>" in html.replace("&#x0003C;", "&lt;")


def test_mathml_cannot_carry_html_or_links() -> None:
    payload = (
        '<math><mi href="javascript:alert(1)">x</mi><maction actiontype="statusline">'
        '<mi>y</mi></maction><annotation-xml encoding="text/html"><img src=x onerror=alert(1)>'
        '</annotation-xml><mstyle style="position:fixed">z</mstyle></math>'
    )
    out = sanitize_html(payload)
    for needle in ("href", "maction", "annotation-xml", "onerror", "<img", "style="):
        assert needle not in out, out


# --- in Chromium -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def course() -> cc.Course:
    return cc.graded_course()


def watch(page: Page) -> list[str]:
    """Record dialogs (an ``alert`` would be one) on ``page``."""
    events: list[str] = []

    def on_dialog(dialog) -> None:
        events.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return events


def assert_inert(page: Page, events: list[str]) -> None:
    """The answer is shown, and nothing of its payload ran or remains active."""
    page.wait_for_timeout(500)  # an onerror fires when the broken image fails to load
    link = page.locator("a", has_text="details")
    if link.count():
        link.first.click()
        page.wait_for_timeout(200)
    assert page.evaluate("() => window.__pwned === undefined")
    assert "PWNED" not in page.title()
    assert events == []
    assert "spectral radius" in page.inner_text("body")
    active = page.evaluate(
        """() => [
            ...Array.from(document.querySelectorAll('.rendered_html *, .output_subarea *'))
                .flatMap(e =>
                Array.from(e.attributes).filter(a => a.name.startsWith('on')).map(a => a.name)),
            ...Array.from(document.scripts).filter(s => s.text.includes('__pwned'))
                .map(s => 'script'),
            ...Array.from(document.querySelectorAll('a[href^="javascript:"]')).map(a => 'js-link'),
        ]"""
    )
    assert active == []


def test_feedback_page_does_not_run_student_html(course: cc.Course, browser: Browser) -> None:
    page = browser.new_page()
    events = watch(page)
    try:
        page.goto((course.root / "feedback" / cc.JOSE / cc.A / f"{cc.A}.html").as_uri())
        page.wait_for_load_state("load")
        assert_inert(page, events)
    finally:
        page.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def formgrader(course: cc.Course, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Jupyter server with formgrader in the course root; yields its base URL."""
    config = tmp_path_factory.mktemp("server") / "jupyter_server_config.py"
    config.write_text(
        "c.ServerApp.jpserver_extensions = {"
        "'nbgrader.server_extensions.formgrader': True, 'jupyterlab': False,"
        "'jupyter_lsp': False, 'jupyterlab_jupytext': False, 'notebook': False,"
        "'jupyter_server_terminals': False}\n"
    )
    port = _free_port()
    command = [
        str(cc.VENV_BIN / "jupyter-server"),
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={course.root}",
        f"--config={config}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    proc = subprocess.Popen(
        command, cwd=course.root, env=cc.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    raise AssertionError(f"no Jupyter server:\n{out[-3000:]}") from None
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _submission_id(course: cc.Course, student: str) -> str:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        return gb.find_submission_notebook(cc.A, cc.A, student).id


def test_formgrader_submission_view_does_not_run_student_html(
    course: cc.Course, browser: Browser, formgrader: str
) -> None:
    page = browser.new_page()
    events = watch(page)
    try:
        sid = _submission_id(course, cc.JOSE)
        response = page.goto(f"{formgrader}/formgrader/submissions/{sid}/?token={TOKEN}")
        assert response is not None and response.ok
        page.wait_for_load_state("load")
        assert page.locator("input.score, .score").count() >= 1  # formgrader's grading form
        assert_inert(page, events)
    finally:
        page.close()


def test_control_without_sanitizing_the_payload_runs(
    course: cc.Course, browser: Browser, tmp_path: Path
) -> None:
    """nbgrader's feedback template with nbconvert's defaults: the attack the fix stops."""
    import nbformat
    import nbgrader
    from nbconvert.exporters import HTMLExporter

    templates = Path(nbgrader.__file__).parent / "server_extensions" / "formgrader"
    exporter = HTMLExporter(
        template_name="feedback",
        extra_template_basedirs=[str(templates / "templates")],
        extra_template_paths=[str(templates / "static/node_modules/bootstrap/dist/css")],
    )
    notebook = nbformat.read(course.root / "autograded" / cc.JOSE / cc.A / f"{cc.A}.ipynb", 4)
    for cell in notebook.cells:  # what nbgrader's GetGrades adds before rendering
        if "nbgrader" in cell.metadata:
            cell.metadata.nbgrader.setdefault("score", 0)
            cell.metadata.nbgrader.setdefault("points", 0)
    resources = {"nbgrader": {"notebook": cc.A, "score": 0, "max_score": 22, "late_penalty": 0}}
    html, _ = exporter.from_notebook_node(notebook, resources=resources)
    page_file = tmp_path / "unsanitized.html"
    page_file.write_text(html, encoding="utf-8")
    page = browser.new_page()
    watch(page)
    try:
        page.route(
            "**/*", lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort()
        )
        page.goto(page_file.as_uri())
        page.wait_for_timeout(500)
        assert page.evaluate("() => window.__pwned") in ("img", "script")
    finally:
        page.close()
