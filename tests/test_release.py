"""The student side: what ships beside each released notebook, and that it needs only NumPy.

* ``public_checks.json`` and ``selfcheck.py`` in ``assignments/<a>/`` are exactly what
  ``make release`` writes from the reference today (they cannot drift);
* ``selfcheck.py`` imports only NumPy and the standard library, and the student folder holds
  no hidden case, no reference and no solution;
* the released notebook, with the instructor's answers pasted in, passes every public check
  in a kernel where ``torch``, ``rnn_course`` and ``rnn_grader`` cannot be imported (the
  setup cell's time is measured by ``python -m rnn_grader.setup_bench``, not here), and its
  gradient-check cells print small relative errors;
* every backward function has a gradient-check cell, every graded function's arguments
  have their shapes stated where it is introduced, and each backward function says whose
  cache it receives;
* links to the book point to the published pages (``html: baseurl:`` of ``_config.yml``),
  and ``nbgrader validate`` in the released folder prints nothing on stderr.
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

import nbclient
import nbformat
import numpy as np
import pytest

from rnn_grader import release
from rnn_grader.checks import registry
from rnn_grader.student import selfcheck

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "submissions"))
import mistakes as fx

ROOT = Path(__file__).resolve().parents[1]
STUDENT_FILES = {"selfcheck.py", "public_checks.json", "nbgrader_config.py"}
VENV_BIN = Path(sys.executable).parent


def _per_block(names: str, gates: str) -> list[str]:
    """``name/gate`` for each stacked parameter and each of its gate blocks, in order."""
    return [f"{name}/{gate}" for name in names.split() for gate in gates]


#: Every backward function's gradient-check cell and the names it prints a relative error for
#: (a parameter, or a parameter and a gate block as "name/block").
GRADIENT_CHECKS = {
    "rnn_bptt": {
        "rnn_step_backward": ["x", "h_prev", "Wx", "Wh", "b"],
        "rnn_backward": ["x", "h0", "Wx", "Wh", "b"],
        "grad_norms_through_time": ["from rnn_backward", "numerical"],
        "embedding_backward": ["W"],
        "softmax_cross_entropy": ["scores"],
        "char_lm_loss": ["W_embed", "Wx", "Wh", "b", "W_out", "b_out"],
    },
    "gated_cells": {
        "lstm_step_backward": ["dx", "dh_prev", "dc_prev", *_per_block("dWx dWh db", "ifgo")],
        "lstm_backward": ["dx", "dh0", *_per_block("dWx dWh db", "ifgo")],
        "gru_step_backward": ["dx", "dh_prev", *_per_block("dWx dWh dbx dbh", "rzn")],
    },
    "deep_birnn": {
        "birnn_backward": [
            "dx",
            "dh0_fwd",
            "dh0_bwd",
            "dWx_fwd",
            "dWh_fwd",
            "db_fwd",
            "dWx_bwd",
            "dWh_bwd",
            "db_bwd",
        ],
        "stacked_rnn_backward": [
            "dx",
            *(f"d{p}_{l}" for l in (1, 2, 3) for p in ("Wx", "Wh", "b", "h0")),
        ],
        "highway_backward": ["dx", "dW_h", "db_h", "dW_t", "db_t"],
    },
}
#: A line of ``gradient_errors``'s table, or a ``name: relative error e`` line.
TABLE_LINE = re.compile(r"^(\w+) +(\w*) +(\d\.\d+e[+-]\d+)(?:  <-- check this)?$", re.M)
NAMED_LINE = re.compile(r"^\s*([\w ]+?):\s+relative error (\S+)$", re.M)


def printed_errors(text: str) -> dict[str, float]:
    """The relative errors a gradient-check cell printed, by name (or name/block)."""
    table = {f"{n}/{b}" if b else n: float(e) for n, b, e in TABLE_LINE.findall(text)}
    return table or {name: float(e) for name, e in NAMED_LINE.findall(text)}


#: Arguments whose description is not ``name (shape)``: a phrase that states it instead.
STATED_OTHERWISE = {
    "grads": "a dict from names to gradient arrays of any shapes",
    "max_norm": "a float `max_norm > 0`",  # in clip_grad_norm's and train_char_lm's text
    "params_fwd": "two parameter tuples `(Wx (D, H), Wh (H, H), b (H,))`",
    "params_bwd": "two parameter tuples `(Wx (D, H), Wh (H, H), b (H,))`",
    "h0s": "initial states `(N, H_ℓ)`",
    "layers": "`(Wx (H_{ℓ-1}, H_ℓ), Wh (H_ℓ, H_ℓ), b (H_ℓ,))`",
    "residual": "`residual=True`",
    "params": "a dict of six arrays",
    "data": "an integer array of character ids",
    "steps": "`steps` (an int",
    "seq_len": "`seq_len` (an int",
    "batch_size": "`batch_size` (an int",
    "lr": "`lr` (a float",
}

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
    config = (folder / "nbgrader_config.py").read_text(encoding="utf-8")
    assert config == release.STUDENT_CONFIG, f"{folder}/nbgrader_config.py is stale"


def test_student_config_imports_nothing_of_the_course() -> None:
    modules = set()
    for node in ast.walk(ast.parse(release.STUDENT_CONFIG)):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").split(".")[0])
    # zmq comes with nbgrader (jupyter_client); the course's packages are not installed
    # nbgrader itself, and zmq with it; the course's packages are not installed
    assert modules <= {"nbgrader", "zmq"} | set(sys.stdlib_module_names), modules


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
    for name, grads in GRADIENT_CHECKS[assignment].items():
        (cell,) = _gradient_check_cells(executed.cells, name)
        text = "".join(o.get("text", "") for o in cell.outputs)
        errors = printed_errors(text)
        assert list(errors) == grads, (name, text)
        assert all(e < 1e-7 for e in errors.values()), (name, text)
        if name == "birnn_backward":
            assert "largest |dx| at a padded step: 0.0" in text, text
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


@pytest.mark.slow
def test_a_failing_check_shows_its_message_without_the_checkers_frames(tmp_path: Path) -> None:
    a = "rnn_bptt"
    folder = tmp_path / a
    folder.mkdir()
    for name in STUDENT_FILES:
        (folder / name).write_bytes((ROOT / "assignments" / a / name).read_bytes())
    sources = fx.mistake("h0_in_output").apply(fx.solution_sources(ROOT, a))
    (folder / f"{a}.ipynb").write_text(json.dumps(fx.notebook_with(ROOT, a, sources)))
    client = nbclient.NotebookClient(
        nbformat.read(folder / f"{a}.ipynb", as_version=4),
        timeout=300,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(folder)}},
    )
    executed = client.execute()
    (cell,) = [c for c in executed.cells if fx.grade_id(c) == "test_rnn_forward"]
    (error,) = [o for o in cell.outputs if o.output_type == "error"]
    text = "\n".join(error.traceback)
    assert error.ename == "CheckFailed"
    assert "selfcheck.py" not in text and "File " not in text and "Traceback" not in text
    assert "rnn_forward (public case 1)" in text and "HINT:" in text
    assert max(len(line) for line in text.splitlines()) <= selfcheck.WIDTH
    # nbgrader validate prints the same message, no line cut short
    done = subprocess.run(
        [str(Path(sys.executable).parent / "nbgrader"), "validate", f"{a}.ipynb"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    (block,) = [b for b in done.stdout.split("=" * 20) if 'check("rnn_forward")' in b]
    assert "HINT:" in block
    message = [ln for ln in block.splitlines() if ln.startswith("    ")]
    assert message and not any(ln.endswith("...") for ln in message), block


def test_setup_bench_measures_both_setups(tmp_path: Path) -> None:
    from rnn_grader import setup_bench

    rows = setup_bench.main(["--repeats", "1", "--release-dir", str(ROOT / "assignments")])
    assert [r[0] for r in rows] == list(registry.ASSIGNMENTS)
    assert all(plain > 0 and with_torch > plain for _, plain, with_torch in rows)


# --------------------------------------------------------------------------- self-help


def _released(assignment: str) -> nbformat.NotebookNode:
    return nbformat.read(ROOT / "assignments" / assignment / f"{assignment}.ipynb", 4)


def _plain(cell: dict) -> bool:
    return not cell.get("metadata", {}).get("nbgrader")


def test_the_gradient_table_is_read_per_gradient_and_block() -> None:
    table = selfcheck.gradient_errors(
        {"dx": np.ones(2), "dWh": np.ones((2, 4))},
        {"dx": np.ones(2), "dWh": np.concatenate([np.ones((2, 2)), np.zeros((2, 2))], axis=1)},
        {"dWh": ["u", "r"]},
    )
    errors = printed_errors(table + "\nlargest |dx| at a padded step: 0.0\n")
    assert list(errors) == ["dx", "dWh/u", "dWh/r"]
    assert errors["dWh/r"] == 1.0 and errors["dx"] == 0.0


def _gradient_check_cells(cells: list, name: str) -> list:
    """Ungraded code cells after ``name``'s test cell (up to the next graded cell) that call
    ``name`` and compare with ``numerical_gradient`` (by ``relative_error`` or a table of
    ``gradient_errors``)."""
    test = next(i for i, c in enumerate(cells) if fx.grade_id(c) == f"test_{name}")
    found = []
    for cell in cells[test + 1 :]:
        if not _plain(cell):
            break
        if (
            cell["cell_type"] == "code"
            and re.search(rf"\b{name}\(", cell["source"])
            and "numerical_gradient(" in cell["source"]
            and ("relative_error(" in cell["source"] or "gradient_errors(" in cell["source"])
        ):
            found.append(cell)
    return found


@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_every_backward_function_has_a_gradient_check_cell(assignment: str) -> None:
    backward = [n for n in registry.ASSIGNMENTS[assignment] if registry.get(n).cost]
    assert sorted(backward) == sorted(GRADIENT_CHECKS[assignment])
    cells = _released(assignment).cells
    for name in backward:
        found = _gradient_check_cells(cells, name)
        assert len(found) == 1, f"{assignment}: {name} has {len(found)} gradient-check cells"


def _introduction(cells: list, name: str) -> str:
    """The last Markdown cell before ``name``'s answer cell that shows a call of ``name``."""
    answer = next(i for i, c in enumerate(cells) if fx.grade_id(c) == name)
    for cell in reversed(cells[:answer]):
        if cell["cell_type"] == "markdown" and f"`{name}(" in cell["source"]:
            return " ".join(cell["source"].split())
    raise AssertionError(f"{name} is never introduced before its answer cell")


def _arguments(source: str, name: str) -> list[str]:
    tree = ast.parse(source)
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name)
    return [a.arg for a in fn.args.args]


@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_every_argument_has_its_shape_stated(assignment: str) -> None:
    cells = _released(assignment).cells
    solution = fx.solution_sources(ROOT, assignment)
    for name in registry.ASSIGNMENTS[assignment]:
        text = _introduction(cells, name)
        for arg in _arguments(solution[name], name):
            if arg == "cache":
                forward = "rnn_forward" if name == "grad_norms_through_time" else None
                forward = forward or name.replace("backward", "forward")
                phrase = f"the object **your** `{forward}` returned"
            else:
                phrase = STATED_OTHERWISE.get(arg, f"`{arg} (")
            assert phrase in text, f"{assignment}.{name}: {arg!r} not stated ({phrase!r})"


def test_stacked_blocks_are_stated() -> None:
    gated = " ".join(c["source"] for c in _released("gated_cells").cells)
    gated = " ".join(gated.split())
    for shape in ("`Wx (D, 4H)`", "`Wh (H, 4H)`", "`b (4H,)`", "`Wx (D, 3H)`", "`bx (3H,)`"):
        assert shape in gated, shape
    assert "`[H:2H]` to f, `[2H:3H]` to g and `[3H:]` to o" in gated
    assert "`[H:2H]` to z and `[2H:]` to n" in gated
    assert "`bx (3H,)` and `bh (3H,)`" in gated


def test_clipping_rule_matches_the_contract_and_names_the_book_s_variants() -> None:
    cells = _released("rnn_bptt").cells
    text = " ".join(_introduction(cells, "clip_grad_norm").split())
    assert "**If `total_norm > max_norm`**" in text
    assert "by exactly `max_norm / total_norm`" in text
    assert "torch.nn.utils.clip_grad_norm_" in text and "10^{-6}" in text
    assert "Pascanu" in text and "\\ge" in text


@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_written_questions_say_what_is_assessed_and_keep_the_rubric_for_instructors(
    assignment: str,
) -> None:
    """Students see the points, what is assessed and a length guide; the rubric, one line
    per point, and the model answer are in the solution's answer cell only."""
    cells = _released(assignment).cells
    solution = fx.load(fx.solution_path(ROOT, assignment))["cells"]
    answers = [c for c in cells if (fx.grade_id(c) or "").startswith("written_")]
    answers = [c for c in answers if not fx.grade_id(c).endswith("_question")]
    assert answers
    released_text = " ".join(c["source"] for c in cells)
    assert "Rubric" not in released_text and "Model answer" not in released_text
    for answer in answers:
        gid = fx.grade_id(answer)
        question = next(c for c in cells if fx.grade_id(c) == f"{gid}_question")
        points = answer["metadata"]["nbgrader"]["points"]
        text = question["source"]
        assert f"**Question ({points} points).**" in text, gid
        assert re.search(r"\*Assessed \(.*?; (\d+) to (\d+) sentences\):\*", text, re.S), gid
        key = fx.source(next(c for c in solution if fx.grade_id(c) == gid))
        rubric = re.search(r"\*Rubric \(instructor's copy\)\.\*(.*?)\*Model answer", key, re.S)
        assert rubric, f"{gid}: the solution has no rubric before its model answer"
        items = re.findall(r"(\d+) points?:", rubric[1])
        assert sum(map(int, items)) == points, (gid, items)


def test_model_answers_and_detailed_rubrics_stay_in_the_solutions() -> None:
    """deep_birnn's written answers hold the rubric and a model answer in solutions/; the
    released answer cell is empty and no line of either reaches the released notebook."""
    source = fx.load(fx.solution_path(ROOT, "deep_birnn"))
    answers = {
        fx.grade_id(c): fx.source(c)
        for c in source["cells"]
        if (fx.grade_id(c) or "").startswith("written_") and c["metadata"]["nbgrader"]["solution"]
    }
    assert len(answers) == 3
    released = _released("deep_birnn").cells
    text = "\n".join(c["source"] for c in released)
    for gid, answer in answers.items():
        assert answer.lstrip().startswith("*Rubric (instructor's copy).*"), gid
        assert "*Model answer.*" in answer, gid
        (cell,) = [c for c in released if fx.grade_id(c) == gid]
        assert cell["source"].strip() == "YOUR ANSWER HERE", gid
        leaked = [ln for ln in answer.splitlines() if len(ln) > 40 and ln in text]
        assert not leaked, (gid, leaked[:2])


def test_book_base_url_comes_from_the_html_section() -> None:
    base = release.book_base_url(ROOT / "_config.yml")
    assert base.startswith("https://") and base.endswith("/")
    # GitHub Pages of the repository the configuration names
    repo = re.search(
        r"url: https://github.com/([^/\s]+)/([^/\s]+)", (ROOT / "_config.yml").read_text()
    )
    assert repo and base == f"https://{repo[1]}.github.io/{repo[2]}/"


def test_book_links_are_resolved_from_placeholders(tmp_path: Path) -> None:
    base = "https://example.org/course/"
    text = "See [BPTT](book:02_bptt) and [the algorithm](book:04_clipping#clipping-algorithm)."
    assert release.link_book_pages(text, base, ROOT / "book") == (
        "See [BPTT](https://example.org/course/book/02_bptt.html) and "
        "[the algorithm](https://example.org/course/book/04_clipping.html#clipping-algorithm)."
    )
    with pytest.raises(ValueError, match="no_such_page"):
        release.link_book_pages("[x](book:no_such_page)", base, ROOT / "book")
    locked = {
        "cells": [
            {
                "cell_type": "markdown",
                "source": "[x](book:02_bptt)",
                "metadata": {"nbgrader": {"grade_id": "intro", "locked": True}},
            }
        ]
    }
    with pytest.raises(ValueError, match="intro"):
        release.link_notebook(locked, base)
    config = tmp_path / "_config.yml"
    config.write_text("title: x\nhtml:\n  use_x: true\n  baseurl: https://a.b/c  # note\n")
    assert release.book_base_url(config) == "https://a.b/c/"
    config.write_text("title: x\nhtml:\n  use_x: true\nbaseurl: https://a.b/c\n")
    with pytest.raises(ValueError, match="no baseurl"):
        release.book_base_url(config)


@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_released_notebooks_link_to_the_published_book(assignment: str) -> None:
    base = release.book_base_url(ROOT / "_config.yml")
    source = {c["id"]: c for c in fx.load(fx.solution_path(ROOT, assignment))["cells"]}
    released = _released(assignment).cells
    links = 0
    for cell in released:
        text = cell["source"]
        assert "../../book" not in text and "](book:" not in text, cell["id"]
        for url in re.findall(r"\]\((https?://[^)\s]+)\)", text):
            if url.startswith(base):
                links += 1
                page = url[len(base) :].split("#")[0]
                assert page.startswith("book/") and page.endswith(".html"), url
                assert (ROOT / page.replace(".html", ".md")).is_file(), url
        original = fx.source(source[cell["id"]])
        if release.BOOK_LINK.search(original):
            # only plain cells carry links: locked text is stored (and checksummed) as released
            assert _plain(cell), cell["id"]
            assert text == release.link_book_pages(original, base), cell["id"]
    assert links >= 3


@pytest.mark.slow
def test_validate_in_the_released_folder_is_quiet(tmp_path: Path) -> None:
    assignment = "deep_birnn"
    folder = tmp_path / assignment
    folder.mkdir()
    for name in STUDENT_FILES:
        (folder / name).write_bytes((ROOT / "assignments" / assignment / name).read_bytes())
    nb = fx.notebook_with(ROOT, assignment, fx.solution_sources(ROOT, assignment))
    written = {
        fx.grade_id(c): fx.source(c)
        for c in fx.load(fx.solution_path(ROOT, assignment))["cells"]
        if (fx.grade_id(c) or "").startswith("written_")
    }
    for cell in nb["cells"]:  # the model answers, so that every cell is answered
        if fx.grade_id(cell) in written and cell["metadata"]["nbgrader"].get("solution"):
            cell["source"] = written[fx.grade_id(cell)]
    (folder / f"{assignment}.ipynb").write_text(json.dumps(nb))
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run(
        ["nbgrader", "validate", f"{assignment}.ipynb"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Success! Your notebook passes all the tests." in done.stdout, done.stdout[-2000:]
    assert done.stderr == "", done.stderr


@pytest.mark.parametrize("assignment", fx.ASSIGNMENTS)
def test_assignment_page_names_every_graded_function(assignment: str) -> None:
    """The book's assignment page and the registry are one contract: same functions."""
    page = (ROOT / "book" / "assignments" / f"{assignment}.md").read_text()
    named = set(re.findall(r"`(\w+)`", page))
    missing = [n for n in registry.ASSIGNMENTS[assignment] if n not in named]
    assert not missing, f"{assignment}: the page does not name {missing}"
