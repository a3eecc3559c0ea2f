"""The commands and settings the instructors' pages and the README show are real.

Every code block of those pages is read with markdown-it-py (the parser MyST uses):
``make`` targets must exist in the Makefile; ``rnn-course`` command lines (also those in
comments) must parse with the CLI's own parser; configuration lines ``c.Class.trait =
value`` must name a trait the class has and set a value it accepts; self-check calls must
name a graded function; the README's Python example runs.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from traitlets.config import Config

from rnn_grader import cli
from rnn_grader.checks import registry

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("book/instructors.md", "book/trusted_grading.md", "README.md")
MAKE_TARGETS = {
    target
    for rule in re.findall(r"^([\w -]+):(?!=)", (ROOT / "Makefile").read_text(), re.M)
    for target in rule.split()
}


def check_setting(name: str, trait: str, c: Config) -> None:
    """Raise unless ``c.<name>.<trait>`` is a real setting with an accepted value."""
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import ClearSolutions, Execute

    from rnn_grader.autograde.preprocessor import TrustedExecute
    from rnn_grader.lms.course import settings_from_config

    traitlets = {
        cls.__name__: cls for cls in (TrustedExecute, CourseDirectory, Execute, ClearSolutions)
    }
    if name in ("LmsCourse", "LatePolicy"):  # read by the LMS commands, which validate them
        settings_from_config(c, ROOT)
        return
    assert name in traitlets, f"the docs configure {name}, which this test does not know"
    cls = traitlets[name]
    assert trait in cls.class_trait_names(config=True), f"{name} has no setting {trait}"
    cls(config=c)  # traitlets validates the value


def blocks(info: str) -> list[tuple[str, str]]:
    """``(page, code)`` of every fenced block whose language is ``info``."""
    md = MarkdownIt()
    return [
        (page, tok.content)
        for page in PAGES
        for tok in md.parse((ROOT / page).read_text())
        if tok.type == "fence" and tok.info.strip() == info
    ]


def test_every_make_target_and_cli_command_exists() -> None:
    parser = cli._parser()
    seen = 0
    for page, code in blocks("bash"):
        for line in code.splitlines():
            command, _, comment = line.partition("#")
            words = shlex.split(command.replace("<", "").replace(">", ""))
            if words[:1] == ["make"]:
                targets = [w for w in words[1:] if "=" not in w]
                assert set(targets) <= MAKE_TARGETS, (page, line)
                seen += 1
            for text in (command, comment):
                if "rnn-course " in text:
                    args = shlex.split(text[text.index("rnn-course ") + len("rnn-course ") :])
                    cut = next((i for i, a in enumerate(args) if a.startswith("(")), len(args))
                    args = args[:cut]  # a remark in parentheses ends the command
                    parser.parse_args(args)  # exits (SystemExit) on an unknown command/option
                    seen += 1
    assert seen >= 15


def test_a_misspelled_setting_is_refused() -> None:
    c = Config()
    c.LatePolicy.percent_per_days = 10.0
    with pytest.raises(ValueError, match="no setting percent_per_days"):
        check_setting("LatePolicy", "percent_per_days", c)
    c = Config()
    c.TrustedExecute.check_timeot = 10.0
    with pytest.raises(AssertionError, match="no setting check_timeot"):
        check_setting("TrustedExecute", "check_timeot", c)


def test_every_configuration_line_sets_a_real_trait() -> None:
    seen = 0
    for page, code in blocks("python"):
        for line in code.splitlines():
            found = re.match(r"c\.(\w+)\.(\w+) = (.+?)(\s+#.*)?$", line)
            if not found:
                continue
            name, trait, value = found[1], found[2], found[3]
            c = Config()
            exec(compile(f"c.{name}.{trait} = {value}", page, "exec"), {"c": c})
            check_setting(name, trait, c)
            seen += 1
    assert seen >= 15


def test_self_check_examples_name_graded_functions() -> None:
    names = [n for _, code in blocks("python") for n in re.findall(r'check\("(\w+)"', code)]
    assert names and set(names) <= set(registry.NAMES)


@pytest.mark.parametrize("page", ["README.md"])
def test_readme_python_example_runs(page: str) -> None:
    (code,) = [c for p, c in blocks("python") if p == page]
    exec(compile(code, page, "exec"), {})


def test_configure_example_runs() -> None:
    (code,) = [c for _, c in blocks("python") if "configure(c)" in c]
    c = Config()
    exec(code, {"c": c})
    assert c.Autograde.exporter_class is not None
