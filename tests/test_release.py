"""The student side: what ships beside each released notebook, and that it needs only NumPy.

* ``public_checks.json`` and ``selfcheck.py`` in ``assignments/<a>/`` are exactly what
  ``make release`` writes from the reference today (they cannot drift);
* ``selfcheck.py`` imports only NumPy and the standard library, and the student folder holds
  no hidden case, no reference and no solution;
* the released notebook, with the instructor's answers pasted in, passes every public check
  in a kernel where ``torch``, ``rnn_course`` and ``rnn_grader`` cannot be imported (the
  setup cell's time is measured by ``python -m rnn_grader.setup_bench``, not here).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from rnn_grader import release
from rnn_grader.checks import registry
from rnn_grader.student import selfcheck

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "submissions"))
import mistakes as fx

ROOT = Path(__file__).resolve().parents[1]
STUDENT_FILES = {"selfcheck.py", "public_checks.json"}

BLOCKER = """
import sys
class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "rnn_course", "rnn_grader"):
            raise ImportError(f"{name} is not installed in a student's environment")
        return None
sys.meta_path.insert(0, _Blocked())
"""


def _structure(value: object) -> object:
    """Everything but the floating-point values of computed arrays."""
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return ("array", value["dtype"], tuple(value["shape"]))
        return {k: _structure(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_structure(v) for v in value]
    return type(value).__name__ if isinstance(value, float) else value


def _close(a: object, b: object) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray | float):
        return bool(np.allclose(a, b, rtol=1e-12, atol=1e-14, equal_nan=True))
    return a == b


@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_shipped_data_is_what_the_reference_gives_today(assignment: str) -> None:
    folder = ROOT / "assignments" / assignment
    assert {p.name for p in folder.iterdir()} == {f"{assignment}.ipynb", *STUDENT_FILES}
    shipped = json.loads((folder / "public_checks.json").read_text(encoding="utf-8"))
    today = json.loads(release.dumps(release.public_data(assignment)))
    stale = f"assignments/{assignment}/public_checks.json is stale: run `make release`"
    # inputs, calls and hints are identical; computed values agree to rounding (BLAS
    # reduction order depends on the machine and its threads)
    assert _structure(shipped) == _structure(today), stale
    assert _close(selfcheck.decode(shipped), selfcheck.decode(today)), stale
    assert (folder / "selfcheck.py").read_bytes() == Path(selfcheck.__file__).read_bytes()


def test_selfcheck_imports_only_numpy_and_the_standard_library() -> None:
    tree = ast.parse(Path(selfcheck.__file__).read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0
            modules.add((node.module or "").split(".")[0])
    assert modules <= {"numpy"} | set(sys.stdlib_module_names)


@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_public_data_holds_only_public_cases(assignment: str) -> None:
    data = json.loads((ROOT / "assignments" / assignment / "public_checks.json").read_text())
    assert list(data["checks"]) == list(registry.ASSIGNMENTS[assignment])
    for name, spec in data["checks"].items():
        public = registry.get(name).cases(hidden=False)
        assert len(spec["cases"]) == len(public)
        for case, want in zip(spec["cases"], public, strict=True):
            assert json.dumps(case["inputs"]) == json.dumps(selfcheck.encode(want))


@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_student_files_hold_no_solution_and_no_hidden_test(assignment: str) -> None:
    folder = ROOT / "assignments" / assignment
    text = "\n".join(p.read_text(encoding="utf-8") for p in folder.iterdir())
    for marker in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS", "hidden=True", "secret"):
        assert marker not in text.replace("a secret of your course", ""), marker
    source = fx.load(fx.solution_path(ROOT, assignment))
    for cell in source["cells"]:
        code = fx.source(cell)
        for region in re.findall(r"### BEGIN SOLUTION(.*?)### END SOLUTION", code, re.S):
            lines = [ln.strip() for ln in region.splitlines() if len(ln.strip()) > 30]
            leaked = [ln for ln in lines if ln in text]
            assert not leaked, (fx.grade_id(cell), leaked[:3])


def _execute_without_torch(notebook: Path, tmp: Path) -> tuple[nbformat.NotebookNode, float]:
    """Run ``notebook`` in a fresh kernel that cannot import torch or the course packages."""
    blocker = tmp / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    out = tmp / "executed.ipynb"
    code = (
        "import sys, time, nbformat\n"
        "from nbclient import NotebookClient\n"
        f"nb = nbformat.read({str(notebook)!r}, as_version=4)\n"
        f"client = NotebookClient(nb, timeout=300, kernel_name='python3', "
        f"resources={{'metadata': {{'path': {str(notebook.parent)!r}}}}})\n"
        "with client.setup_kernel():\n"
        "    for i, cell in enumerate(nb.cells):\n"
        "        t0 = time.perf_counter()\n"
        "        client.execute_cell(cell, i)\n"
        "        cell.metadata['seconds'] = time.perf_counter() - t0\n"
        f"nbformat.write(nb, {str(out)!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(blocker), "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return nbformat.read(out, as_version=4), time.perf_counter() - t0


@pytest.mark.slow
@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_released_notebook_completes_without_torch(assignment: str, tmp_path: Path) -> None:
    folder = tmp_path / assignment
    folder.mkdir()
    for name in STUDENT_FILES:
        (folder / name).write_bytes((ROOT / "assignments" / assignment / name).read_bytes())
    nb = fx.notebook_with(ROOT, assignment, fx.solution_sources(ROOT, assignment))
    (folder / f"{assignment}.ipynb").write_text(json.dumps(nb))
    executed, _ = _execute_without_torch(folder / f"{assignment}.ipynb", tmp_path)
    tests = [c for c in executed.cells if (fx.grade_id(c) or "").startswith("test_")]
    assert len(tests) == len(registry.ASSIGNMENTS[assignment])
    for cell in tests:
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert "public cases passed" in text, (fx.grade_id(cell), cell.outputs)
    setup = next(c for c in executed.cells if "from selfcheck import" in c.source)
    assert "torch" not in setup.source and "rnn_course" not in setup.source
    # the blocker really blocks: importing torch in that kernel environment fails
    probe = subprocess.run(
        [sys.executable, "-c", "import torch"],
        env={**os.environ, "PYTHONPATH": str(tmp_path / "blocker")},
        capture_output=True,
        text=True,
    )
    assert probe.returncode != 0 and "not installed in a student's environment" in probe.stderr


def test_setup_bench_measures_both_setups(tmp_path: Path) -> None:
    from rnn_grader import setup_bench

    rows = setup_bench.main(["--repeats", "1", "--release-dir", str(ROOT / "assignments")])
    assert [r[0] for r in rows] == list(registry.ASSIGNMENTS)
    assert all(plain > 0 and with_torch > plain for _, plain, with_torch in rows)
