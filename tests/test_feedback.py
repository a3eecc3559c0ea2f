"""Feedback a student can read offline, checked in Chromium with the network cut off.

The feedback files come from the course graded once in
``tests/fixtures/lms/canvas_course.py`` (``nbgrader generate_feedback`` with the course's
configuration). Every request that is not ``file:`` or ``data:`` is blocked and recorded:
formulas (MathML) must render from the file alone. Screenshots of the pages go to pytest's
temporary folder; their sizes show whether anything scrolls sideways.
"""

from __future__ import annotations

import itertools
import re
import struct
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "lms"))
import canvas_course as cc
from nbformat.v4 import new_code_cell, new_notebook, new_output

from rnn_grader.feedback.messages import ExplainBlankAnswers, explain, stub_functions

pytestmark = pytest.mark.slow


# --- messages (no browser) -------------------------------------------------------------


def _answer(name: str, body: str) -> dict:
    meta = {"nbgrader": {"grade_id": name, "solution": True, "grade": False}}
    return new_code_cell(f"def {name}(x):\n{body}", metadata=meta)


def test_blank_answer_message_names_the_function() -> None:
    nb = new_notebook(cells=[_answer("f", "    raise NotImplementedError()\n")])
    msg = "f (public case 1): calling your code raised NotImplementedError: "
    assert (
        explain(msg, "f", stub_functions(nb)) == "f (public case 1): you have not implemented f yet"
    )


def test_blank_callee_is_named_when_the_tested_function_is_written() -> None:
    nb = new_notebook(
        cells=[
            _answer("g", "    raise NotImplementedError()\n"),
            _answer("f", "    return g(x) + 1\n"),
        ]
    )
    msg = "f (public case 1): calling your code raised NotImplementedError: "
    out = explain(msg, "f", stub_functions(nb))
    assert out == "f (public case 1): f calls g, which you have not implemented yet"


def test_other_failures_are_left_alone() -> None:
    msg = "f (public case 2): dx wrong at time steps 0..T-2"
    assert explain(msg, "f", {"": {"f"}}) == msg


def test_preprocessor_rewrites_error_outputs_of_test_cells() -> None:
    test = new_code_cell('check("f")', metadata={"nbgrader": {"grade_id": "test_f", "grade": True}})
    text = "f (public case 1): calling your code raised NotImplementedError: "
    test.outputs = [new_output("error", ename="AssertionError", evalue=text, traceback=[text])]
    nb = new_notebook(cells=[_answer("f", "    raise NotImplementedError()\n"), test])
    ExplainBlankAnswers().preprocess(nb, {})
    assert nb.cells[1].outputs[0].evalue.endswith("you have not implemented f yet")
    assert "NotImplementedError: " not in nb.cells[1].outputs[0].traceback[0]


# --- the real feedback files in Chromium -----------------------------------------------


@pytest.fixture(scope="module")
def course() -> cc.Course:
    return cc.graded_course()


def feedback_file(course: cc.Course, student: str) -> Path:
    return course.root / "feedback" / student / cc.A / f"{cc.A}.html"


def open_offline(browser: Browser, path: Path, width: int) -> tuple[Page, list[str]]:
    """Open ``path`` with every non-file request blocked."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    blocked: list[str] = []

    def guard(route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", guard)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, blocked


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


#: Largest feedback file for one student (the notebook's own text and MathML included).
MAX_FEEDBACK_BYTES = 200 * 1024


@pytest.mark.parametrize("student", [cc.JOSE, cc.SMITH_WRONG, cc.SMITH_BLANK])
def test_feedback_is_one_small_file_with_no_script_and_no_external_resource(
    course: cc.Course, student: str
) -> None:
    path = feedback_file(course, student)
    html = path.read_text(encoding="utf-8")
    external = re.findall(r"<(?:script|link|img)[^>]+(?:src|href)=\"(https?:[^\"]+)", html)
    assert external == []
    assert "<script" not in html  # formulas are MathML: nothing to run
    assert path.stat().st_size <= MAX_FEEDBACK_BYTES, path.stat().st_size
    print(f"\nfeedback of {student}: {path.stat().st_size / 1024:.0f} KiB")


def test_math_is_typeset_offline(course: cc.Course, browser: Browser, tmp_path: Path) -> None:
    page, blocked = open_offline(browser, feedback_file(course, cc.SMITH_BLANK), 900)
    try:
        assert blocked == []
        formulas = page.locator("math")
        assert formulas.count() >= 10
        assert page.locator("merror, code.math").count() == 0  # every formula converted
        # rendered as MathML (laid out with a size), not as the text of its elements
        box = formulas.first.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0
        fractions = page.locator("mfrac")
        if fractions.count():
            frac = fractions.first.bounding_box()
            num = page.locator("mfrac > *:first-child").first.bounding_box()
            assert num["y"] < frac["y"] + frac["height"] / 2  # the numerator sits on top
        text = page.inner_text("body")
        assert "\\tanh" not in text and "$$" not in text  # no raw TeX left
        page.screenshot(path=tmp_path / "feedback-900.png", full_page=True)
    finally:
        page.close()


@pytest.mark.parametrize("width", [900, 420])
def test_failure_messages_wrap_inside_the_page(
    course: cc.Course, browser: Browser, tmp_path: Path, width: int
) -> None:
    page, _ = open_offline(browser, feedback_file(course, cc.SMITH_WRONG), width)
    try:
        assert page.evaluate("() => document.documentElement.scrollWidth") <= width
        errors = page.locator("div.output_error pre")
        assert errors.count() >= 1
        for i in range(errors.count()):
            box = errors.nth(i)
            assert box.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), box.inner_text()
        # the failing rnn_backward message: a screenshot no wider than the page, and
        # taller than one line (it wrapped instead of running off the side)
        message = errors.filter(has_text="rnn_backward").first
        shot = tmp_path / f"message-{width}.png"
        message.screenshot(path=shot)
        line = message.evaluate("e => parseFloat(getComputedStyle(e).lineHeight)")
        shot_width, shot_height = png_size(shot)
        assert shot_width <= width
        if width == 420:
            assert shot_height > 2 * line
        full = tmp_path / f"page-{width}.png"
        page.screenshot(path=full, full_page=True)
        assert png_size(full)[0] == width
    finally:
        page.close()


def test_blank_answers_are_explained(course: cc.Course, browser: Browser) -> None:
    page, _ = open_offline(browser, feedback_file(course, cc.SMITH_BLANK), 900)
    try:
        text = page.inner_text("body")
        for name in ("rnn_step_forward", "rnn_backward", "clip_grad_norm"):
            assert f"you have not implemented {name} yet" in text
        assert "raised NotImplementedError" not in text
    finally:
        page.close()


def test_table_header_cells_are_apart(course: cc.Course, browser: Browser) -> None:
    page, _ = open_offline(browser, feedback_file(course, cc.SMITH_BLANK), 900)
    try:
        header = page.locator(".rendered_html table").first.locator("th")
        labels = [header.nth(i).inner_text().strip() for i in range(header.count())]
        assert labels[:3] == ["part", "graded function", "points"]
        boxes = [header.nth(i).bounding_box() for i in range(3)]
        texts = page.evaluate(
            """() => Array.from(document.querySelector('.rendered_html table')
                .querySelectorAll('th')).slice(0, 3).map(th => {
                    const r = document.createRange(); r.selectNodeContents(th);
                    const b = r.getBoundingClientRect(); return [b.left, b.right]; })"""
        )
        for (_, right), (left, _) in itertools.pairwise(texts):
            assert left - right >= 8  # visible space between "part" and "graded function"
        assert all(b is not None and b["width"] > 0 for b in boxes)
    finally:
        page.close()
