"""Shared fixtures: the devices to run on, and the repository root.

Grading needs a course secret; the tests use their own (never a course's), through the
environment so that nbgrader subprocesses see it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
TEST_SECRET = "tests-only-course-secret-4f1c9a"
os.environ["RNN_COURSE_SECRET"] = TEST_SECRET

# the CUDA cases carry the ``cuda`` marker: ``pytest -m cuda`` (``make gpu-check``) runs them
DEVICES = [pytest.param("cpu", id="cpu")] + (
    [pytest.param("cuda", id="cuda", marks=pytest.mark.cuda)] if torch.cuda.is_available() else []
)


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Every device-parametrized test runs on the CPU and, where present, on CUDA.

    On a machine with CUDA, ``pytest -m cuda`` selects the CUDA cases only.
    """
    return torch.device(request.param)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


#: Debian's Chromium, started headless without the background traffic a closed network refuses.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for every browser test of the session."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: install Debian's chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
