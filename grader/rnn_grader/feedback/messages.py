"""Failure messages a student can act on: a blank answer says so in words.

The grader reports a function that still holds the released stub as ``calling your code
raised NotImplementedError: `` - true, but it reads like a crash. Before the notebook is
turned into HTML, :class:`ExplainBlankAnswers` rewrites that part of each failed test's
message into "you have not implemented ``f`` yet", naming the function that is still a
stub: the tested function itself, or the functions it calls (found in its answer cell).
"""

from __future__ import annotations

import re

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode

__all__ = ["ExplainBlankAnswers", "explain", "stub_functions"]

_RAISED = re.compile(
    r"(?:calling your code|the answer cell '\w+') raised NotImplementedError:[^\n]*"
)
_CASE = re.compile(r"^(?P<name>\w+) \((?P<case>[^)]*)\): ")
_STUB = re.compile(r"^\s*raise\s+NotImplementedError\b", re.M)
_DEF = re.compile(r"^def\s+(\w+)\s*\(", re.M)


def stub_functions(nb: NotebookNode) -> dict[str, set[str]]:
    """What the answer cells of ``nb`` define: still-blank functions and what each calls.

    Returns a dict whose key ``""`` holds the functions whose answer cell still raises
    ``NotImplementedError`` (the released stub), and whose other keys map each function
    defined in an answer cell to the words its source mentions.
    """
    stubs: set[str] = set()
    mentions: dict[str, set[str]] = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") != "code" or not meta.get("solution") or meta.get("grade"):
            continue
        source = str(cell.get("source", ""))
        names = _DEF.findall(source)
        words = set(re.findall(r"\b\w+\b", source))
        for name in names:
            mentions[name] = words - {name}
            if _STUB.search(source):
                stubs.add(name)
    return {"": stubs, **mentions}


def explain(message: str, tested: str, functions: dict[str, set[str]]) -> str:
    """``message`` with "raised NotImplementedError: ..." replaced by plain words."""
    if not _RAISED.search(message):
        return message
    stubs = functions.get("", set())
    if tested in stubs or tested not in functions:
        text = f"you have not implemented {tested} yet"
    else:
        called = sorted(stubs & functions.get(tested, set()))
        if called:
            names = ", ".join(called)
            text = f"{tested} calls {names}, which you have not implemented yet"
        else:
            text = (
                f"{tested}, or a function it calls, is not implemented yet "
                "(it raised NotImplementedError)"
            )
    return _RAISED.sub(text, message, count=1)


class ExplainBlankAnswers(Preprocessor):
    """Rewrite NotImplementedError failures of test cells into "not implemented yet"."""

    enabled = True

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        functions = stub_functions(nb)
        for cell in nb.cells:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
            if cell.get("cell_type") != "code" or not str(gid).startswith("test_"):
                continue
            tested = str(gid)[len("test_") :]
            for output in cell.get("outputs", []):
                if output.get("output_type") != "error":
                    continue
                output["evalue"] = explain(str(output.get("evalue", "")), tested, functions)
                output["traceback"] = [
                    explain(str(line), tested, functions) for line in output.get("traceback", [])
                ]
        return nb, resources
