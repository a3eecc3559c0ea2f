"""The margin of the ``train_char_lm`` check: the solution's validation loss on hidden draws.

The check passes a training loop if the parameters it returns reach a validation loss of at
most :data:`rnn_grader.checks.char_lm.THRESHOLD`. This script trains the instructor's
solution (the answer cells of ``solutions/rnn_bptt/rnn_bptt.ipynb``) on ``--draws``
hidden cases, each drawn from a different course secret (another seed and another window
of the text), and prints every validation loss, their median and range, the margin to the
threshold, and two count-based baselines for scale::

    python scripts/char_lm_margin.py --draws 20
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy: small products
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import solution_cells  # this folder's module

from rnn_grader import checks
from rnn_grader.checks import char_lm
from rnn_grader.student import selfcheck


def baselines() -> tuple[float, float]:
    """Validation loss of add-one unigram and add-0.1 bigram counts of the training text."""
    chars, train, valid = char_lm.corpus()
    V = len(chars)
    unigram = np.bincount(train, minlength=V) + 1.0
    bigram = np.full((V, V), 0.1)
    np.add.at(bigram, (train[:-1], train[1:]), 1.0)
    bigram /= bigram.sum(axis=1, keepdims=True)
    return (
        float(-np.mean(np.log(unigram / unigram.sum())[valid[1:]])),
        float(-np.mean(np.log(bigram[valid[:-1], valid[1:]]))),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=20, help="hidden cases to train on")
    args = parser.parse_args()
    ns = solution_cells.namespace("rnn_bptt")
    losses = []
    start = time.perf_counter()
    for k in range(args.draws):
        case = checks.cases("train_char_lm", hidden=True, secret=f"margin-{k}".encode())[0]
        spec = checks.expected("train_char_lm", case)[selfcheck.CRITERION_KEY]
        out = selfcheck.run(checks.call("train_char_lm"), ns, case)
        windows = selfcheck.validation_windows(spec["valid"], spec["length"])
        loss = selfcheck.char_lm_validation_loss(out["params"], *windows)
        losses.append(loss)
        print(f"draw {k:2d}: seed {case['params']['seed']:>10}, validation loss {loss:.3f}")
    seconds = (time.perf_counter() - start) / args.draws
    values = np.array(losses)
    unigram, bigram = baselines()
    print(
        f"\n{args.draws} draws: median {np.median(values):.3f}, range "
        f"{values.min():.3f} to {values.max():.3f}; threshold {char_lm.THRESHOLD}; "
        f"smallest margin {char_lm.THRESHOLD - values.max():.3f}; {seconds:.2f} s per run"
    )
    print(f"count baselines on the same text: unigram {unigram:.3f}, bigram {bigram:.3f}")


if __name__ == "__main__":
    main()
