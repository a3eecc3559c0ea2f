"""Shared fixtures: the devices to run on, and the repository root."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Every device-parametrized test runs on the CPU and, where present, on CUDA."""
    return torch.device(request.param)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
