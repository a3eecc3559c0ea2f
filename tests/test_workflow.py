"""The GitHub Actions workflow that builds and publishes the book."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture(scope="module")
def workflow(repo_root: Path) -> dict[Any, Any]:
    return yaml.safe_load((repo_root / ".github" / "workflows" / "book.yml").read_text())


def _steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def _uses(workflow: dict[Any, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in _steps(workflow) if s.get("uses", "").split("@")[0] == action]


def test_runs_on_push_to_main(workflow: dict[Any, Any]) -> None:
    # PyYAML reads the bare key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert "main" in triggers["push"]["branches"]


def test_sets_up_python_311(workflow: dict[Any, Any]) -> None:
    setups = _uses(workflow, "actions/setup-python")
    assert setups, "no actions/setup-python step"
    assert str(setups[0]["with"]["python-version"]) == "3.11"


def test_builds_with_make_book(workflow: dict[Any, Any]) -> None:
    commands = [s.get("run", "") for s in _steps(workflow)]
    assert any(line.strip().startswith("make book") for c in commands for line in c.splitlines())


def test_uploads_the_html_output(workflow: dict[Any, Any]) -> None:
    uploads = _uses(workflow, "actions/upload-pages-artifact")
    assert len(uploads) == 1
    assert uploads[0]["with"]["path"].rstrip("/") == "_build/html"


def test_deploys_after_the_build(workflow: dict[Any, Any]) -> None:
    deploy_jobs = [
        job
        for job in workflow["jobs"].values()
        if any(s.get("uses", "").startswith("actions/deploy-pages") for s in job["steps"])
    ]
    assert len(deploy_jobs) == 1
    needs = deploy_jobs[0]["needs"]
    build_job = next(
        name
        for name, job in workflow["jobs"].items()
        if any(s.get("uses", "").startswith("actions/upload-pages-artifact") for s in job["steps"])
    )
    assert build_job in ([needs] if isinstance(needs, str) else needs)


def test_has_the_pages_permissions(workflow: dict[Any, Any]) -> None:
    permissions = workflow["permissions"]
    assert permissions["pages"] == "write"
    assert permissions["id-token"] == "write"
