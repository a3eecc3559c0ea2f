"""Backward passes against numerical differentiation on each backward check's costly case.

For every backward check of an assignment, this script runs the check's large hidden case
(drawn from a throwaway secret) with the instructor's solution and, for ``rnn_bptt``,
``gated_cells`` and ``deep_birnn``, with naive but correct loop implementations (loops over
the batch and over time); it times one run of the forward function alone and extrapolates
what numerical differentiation would take: two forward runs per column of the widest weight
(where perturbing a whole column gives that column's gradient for every row) and two per
entry. All times are measured in this one run, on one thread, beside the check's time
limit::

    python scripts/bench_cost_cases.py rnn_bptt
    python scripts/bench_cost_cases.py gated_cells
    python scripts/bench_cost_cases.py deep_birnn
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy: one thread, as measured
os.environ.setdefault("OMP_NUM_THREADS", "1")

import solution_cells  # this folder's module

from rnn_grader import checks
from rnn_grader.autograde.sandbox import SandboxLimits
from rnn_grader.checks import registry
from rnn_grader.student import selfcheck

#: Correct rnn_bptt answers written as naive loops: one sequence and one step at a time.
NAIVE_RNN_BPTT = {
    "rnn_step_backward": """
def rnn_step_backward(dh_next, cache):
    x, h_prev, Wx, Wh, h_next = cache
    dx, dh_prev = np.zeros_like(x), np.zeros_like(h_prev)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(Wh.shape[0])
    for n in range(x.shape[0]):
        da = dh_next[n] * (1 - h_next[n] ** 2)
        dx[n], dh_prev[n] = Wx @ da, Wh @ da
        dWx += np.outer(x[n], da)
        dWh += np.outer(h_prev[n], da)
        db += da
    return dx, dh_prev, dWx, dWh, db
""",
    "rnn_backward": """
def rnn_backward(dh, cache):
    x, h0, Wx, Wh, h = cache
    N, T, H = h.shape
    dx, dh0 = np.zeros_like(x), np.zeros_like(h0)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(H)
    for n in range(N):
        g = np.zeros(H)
        for t in reversed(range(T)):
            da = (dh[n, t] + g) * (1 - h[n, t] ** 2)
            prev = h[n, t - 1] if t > 0 else h0[n]
            dx[n, t] = Wx @ da
            dWx += np.outer(x[n, t], da)
            dWh += np.outer(prev, da)
            db += da
            g = Wh @ da
        dh0[n] = g
    return dx, dh0, dWx, dWh, db
""",
    "grad_norms_through_time": """
def grad_norms_through_time(dh_last, cache):
    x, h0, Wx, Wh, h = cache
    N, T, H = h.shape
    squares = np.zeros(T)
    for n in range(N):
        g = dh_last[n]
        for t in reversed(range(T)):
            squares[t] += g @ g
            g = Wh @ (g * (1 - h[n, t] ** 2))
    return np.sqrt(squares)
""",
    "embedding_backward": """
def embedding_backward(dx, cache):
    idx, shape = cache
    dW = np.zeros(shape)
    for n in range(idx.shape[0]):
        for t in range(idx.shape[1]):
            dW[idx[n, t]] += dx[n, t]
    return dW
""",
    "softmax_cross_entropy": """
def softmax_cross_entropy(scores, targets, mask):
    N, T, V = scores.shape
    kept = max(int(mask.sum()), 1)
    loss, dscores = 0.0, np.zeros_like(scores)
    for n in range(N):
        for t in range(T):
            if mask[n, t]:
                z = scores[n, t] - scores[n, t].max()
                p = np.exp(z) / np.exp(z).sum()
                loss -= np.log(p[targets[n, t]]) / kept
                dscores[n, t] = p / kept
                dscores[n, t, targets[n, t]] -= 1 / kept
    return float(loss), dscores
""",
}


def _fixture_loops(name: str) -> dict[str, str]:
    """Correct answers written with loops over the batch and over time, as the tests'
    submissions fixtures hold them (``GATED_CELLS_LOOPS``, ``DEEP_BIRNN_LOOPS``); the tests
    run the same answers."""
    sys.path.insert(0, str(solution_cells.ROOT / "tests" / "fixtures" / "submissions"))
    import independent

    return getattr(independent, name)


NAIVE = {
    "rnn_bptt": lambda: NAIVE_RNN_BPTT,
    "gated_cells": lambda: _fixture_loops("GATED_CELLS_LOOPS"),
    "deep_birnn": lambda: _fixture_loops("DEEP_BIRNN_LOOPS"),
}


def finite_difference_work(case: dict) -> tuple[int, int | None]:
    """``(entries, columns)``: forward runs per entry, and per column where columns work."""
    if "Wx" in case:
        return case["Wx"].size + case["Wh"].size, case["Wx"].shape[1]
    if "params" in case:
        p = case["params"]
        return sum(v.size for v in p.values()), max(p["Wh"].shape[0], p["W_out"].shape[1])
    if "scores" in case:
        return case["scores"].size, case["scores"].shape[-1]
    if "params_fwd" in case:  # the bidirectional RNN: both directions' weights
        weights = (*case["params_fwd"], *case["params_bwd"])
        return sum(p.size for p in weights), case["h0_fwd"].shape[1]
    if "layers" in case:  # the stacked RNN: every layer's weights
        weights = [p for layer in case["layers"] for p in layer]
        return sum(p.size for p in weights), max(h.shape[1] for h in case["h0s"])
    if "W_h" in case:  # the highway layer
        return case["W_h"].size + case["W_t"].size, case["W_h"].shape[1]
    return case["W"].size, None  # the embedding: a perturbed column changes only its sum


def seconds(call: dict, namespace: dict, case: dict, repeat: int = 3) -> float:
    """Median wall time of ``repeat`` runs of ``call`` on ``case``, as the driver runs it."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        selfcheck.run(call, namespace, case)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment", choices=sorted(registry.ASSIGNMENTS))
    args = parser.parse_args()
    limit = SandboxLimits().check_timeout
    spaces = {"solution": solution_cells.namespace(args.assignment)}
    if args.assignment in NAIVE:
        spaces["naive loops"] = solution_cells.namespace(args.assignment, NAIVE[args.assignment]())
    print(f"check limit {limit:g} s for all cases of one check; one thread\n")
    header = f"{'check':<24} {'backward pass (s)':>28} {'one forward':>12} {'FD per column':>14}"
    print(header + f" {'FD per entry':>13}")
    for name in registry.ASSIGNMENTS[args.assignment]:
        check = registry.get(name)
        if check.cost is None:
            continue
        case = checks.cases(name, hidden=True, secret=b"benchmark")[-1]
        call = checks.call(name)
        runs = {
            label: seconds(call, ns, case)
            for label, ns in spaces.items()
            if call["steps"][-1]["function"] in ns
        }
        forward = {"steps": call["steps"][:1], "outputs": call["steps"][0]["returns"][:1]}
        one = seconds(forward, spaces["solution"], case)
        entries, columns = finite_difference_work(case)
        per_column = f"{2 * columns * one:14.0f}" if columns else f"{'n/a':>14}"
        measured = ", ".join(f"{label} {t:.2f}" for label, t in runs.items())
        print(f"{name:<24} {measured:>28} {one:12.4f} {per_column} {2 * entries * one:13.0f}")
    print(
        "\nFD per column: 2 x columns x one forward; FD per entry: 2 x entries x one forward "
        "(both extrapolated from the measured forward)."
    )


if __name__ == "__main__":
    main()
