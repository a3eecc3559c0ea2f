"""How long a released notebook's setup cell takes, beside a setup that imports torch.

``python -m rnn_grader.setup_bench [--repeats R]`` runs, in fresh interpreters started in
``assignments/<a>/`` and interleaved, (1) the setup cell of each released notebook and
(2) the same cell preceded by ``import torch`` (what a self-check that needs the companion
package costs), and prints the medians and their ratio. Interpreter start-up is excluded:
each run times its cell with ``time.perf_counter`` inside the interpreter.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from rnn_grader.checks.registry import ASSIGNMENTS

TIMER = (
    "import time\nt0 = time.perf_counter()\nexec(compile({src!r}, '<setup>', 'exec'))\n"
    "print(time.perf_counter() - t0)\n"
)


def setup_source(notebook: Path) -> str:
    """The source of the notebook's setup cell (the one that imports the self-check)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "code" and "from selfcheck import" in src:
            return src
    raise ValueError(f"{notebook} has no setup cell importing selfcheck")


def _seconds(src: str, cwd: Path) -> float:
    out = subprocess.run(
        [sys.executable, "-c", TIMER.format(src=src)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure(release_dir: Path, assignment: str, repeats: int) -> tuple[float, float]:
    """Median seconds of the setup cell, and of the same cell after ``import torch``."""
    folder = release_dir / assignment
    src = setup_source(folder / f"{assignment}.ipynb")
    plain, with_torch = [], []
    for _ in range(repeats):
        plain.append(_seconds(src, folder))
        with_torch.append(_seconds("import torch\n" + src, folder))
    return statistics.median(plain), statistics.median(with_torch)


def main(argv: Sequence[str] | None = None) -> list[tuple[str, float, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--release-dir", type=Path, default=Path("assignments"))
    args = parser.parse_args(argv)
    rows = [(a, *measure(args.release_dir, a, args.repeats)) for a in ASSIGNMENTS]
    print("| assignment | setup cell (s) | with import torch (s) | ratio |")
    print("|---|---|---|---|")
    for a, plain, torch_ in rows:
        print(f"| {a} | {plain:.3f} | {torch_:.3f} | {torch_ / plain:.1f} |")
    return rows


if __name__ == "__main__":
    main()
