"""Time the package's LSTM and GRU layers against :mod:`torch.nn`'s, side by side.

Run ``python -m rnn_course.bench`` (or ``make bench``). For each configuration, cell and
pass (forward, forward+backward) both implementations get the same weights and inputs;
their calls alternate within each repeat, so that a busy machine slows both alike, and the
table reports the median milliseconds per call after a warm-up, and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from rnn_course.layers import GRU, LSTM


@dataclass(frozen=True)
class BenchConfig:
    """One problem size."""

    seq_len: int  # T, time steps
    batch: int  # N, sequences per batch
    input_size: int  # H_in
    hidden_size: int  # H

    @property
    def label(self) -> str:
        return f"T={self.seq_len} N={self.batch} I={self.input_size} H={self.hidden_size}"


DEFAULT_CONFIGS = (BenchConfig(100, 64, 256, 256), BenchConfig(100, 16, 64, 64))
PAIRS: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "LSTM": (LSTM, nn.LSTM),
    "GRU": (GRU, nn.GRU),
}
PASSES = ("forward", "forward+backward")


@dataclass(frozen=True)
class BenchRow:
    """One line of the table: median milliseconds per call and their ratio."""

    cell: str
    config: BenchConfig
    pass_: str
    ours_ms: float
    torch_ms: float

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.torch_ms


def _call(layer: nn.Module, x: torch.Tensor, backward: bool) -> Callable[[], None]:
    """A closure running one forward (no graph) or one forward+backward call."""
    if not backward:

        def forward() -> None:
            with torch.no_grad():
                layer(x)

        return forward

    params = list(layer.parameters())

    def forward_backward() -> None:
        for p in params:
            p.grad = None
        out, _ = layer(x)
        out.sum().backward()

    return forward_backward


def _seconds(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_pair(
    cell: str, config: BenchConfig, backward: bool, repeats: int, warmup: int, seed: int
) -> tuple[float, float]:
    """Median seconds per call of (rnn_course, torch.nn), timed in alternating order."""
    ours_cls, torch_cls = PAIRS[cell]
    torch.manual_seed(seed)
    reference = torch_cls(config.input_size, config.hidden_size)
    ours = ours_cls(config.input_size, config.hidden_size)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(config.seq_len, config.batch, config.input_size)
    calls = (_call(ours, x, backward), _call(reference, x, backward))
    for _ in range(warmup):
        for fn in calls:
            fn()
    times: tuple[list[float], list[float]] = ([], [])
    for r in range(repeats):
        # alternate which goes first so neither always follows the other's cache state
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for j in order:
            times[j].append(_seconds(calls[j]))
    return statistics.median(times[0]), statistics.median(times[1])


def run(
    configs: Sequence[BenchConfig] = DEFAULT_CONFIGS,
    cells: Sequence[str] = tuple(PAIRS),
    repeats: int = 20,
    warmup: int = 3,
    seed: int = 0,
) -> list[BenchRow]:
    """Measure every configuration, cell and pass; return the rows of the table."""
    rows = []
    for config in configs:
        for cell in cells:
            for pass_ in PASSES:
                ours, ref = measure_pair(
                    cell, config, pass_ == "forward+backward", repeats, warmup, seed
                )
                rows.append(BenchRow(cell, config, pass_, 1e3 * ours, 1e3 * ref))
    return rows


def format_table(rows: Sequence[BenchRow]) -> str:
    """A plain-text table, one row per configuration, cell and pass."""
    header = (
        f"{'size':<28} {'cell':<5} {'pass':<17} "
        f"{'rnn_course ms':>13} {'torch.nn ms':>11} {'ratio':>6}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.config.label:<28} {row.cell:<5} {row.pass_:<17} "
            f"{row.ours_ms:>13.3f} {row.torch_ms:>11.3f} {row.ratio:>6.2f}"
        )
    return "\n".join(lines)


def _config(text: str) -> BenchConfig:
    try:
        T, N, I, H = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a configuration is T,N,I,H (four integers), got {text!r}"
        ) from None
    if min(T, N, I, H) <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return BenchConfig(T, N, I, H)


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> list[BenchRow]:
    """Parse the command line, run the benchmark, print the table and return its rows."""
    parser = argparse.ArgumentParser(
        prog="python -m rnn_course.bench",
        description="Time rnn_course's LSTM and GRU against torch.nn's on the CPU.",
    )
    parser.add_argument(
        "--config",
        type=_config,
        action="append",
        metavar="T,N,I,H",
        help="sequence length, batch, input and hidden size (repeatable; default "
        "100,64,256,256 and 100,16,64,64)",
    )
    parser.add_argument("--cells", nargs="+", choices=tuple(PAIRS), default=list(PAIRS))
    parser.add_argument("--repeats", type=_positive, default=20, help="timed calls (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    parser.add_argument(
        "--threads", type=_positive, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    configs = args.config or list(DEFAULT_CONFIGS)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU")
    rows = run(configs, args.cells, args.repeats, max(args.warmup, 0), args.seed)
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
