"""The API page documents every public module of the package."""

from __future__ import annotations

import pkgutil
import re

import rnn_course


def test_api_page_has_an_automodule_for_every_public_module(repo_root):
    text = (repo_root / "book" / "api.md").read_text()
    documented = set(re.findall(r"^\.\. automodule:: ([\w.]+)$", text, flags=re.M))
    modules = {"rnn_course"} | {
        info.name
        for info in pkgutil.walk_packages(rnn_course.__path__, "rnn_course.")
        if not info.name.rsplit(".", 1)[-1].startswith("_")
    }
    assert {"rnn_course.lstm_loop", "rnn_course.gru_loop", "rnn_course.loop_context"} <= modules
    assert modules - documented == set()
    assert documented - modules == set()  # and nothing that no longer exists
