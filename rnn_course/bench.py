"""Time the package's LSTM and GRU layers against :mod:`torch.nn`'s, side by side.

Run ``python -m rnn_course.bench`` (or ``make bench``). For each size and pass the four
layers (``rnn_course`` and :mod:`torch.nn`, LSTM and GRU) get the same weights and inputs,
and their calls are interleaved within each repeat in a rotating order, so that a busy
machine slows all four alike. A run reports the median milliseconds per call of each layer
after a warm-up; the ratios (``rnn_course`` / :mod:`torch.nn`, and GRU / LSTM for each
implementation) are computed from those medians. With ``--runs R`` the whole measurement is
repeated R times and the table shows the median over the runs and, for the ratios, their
range.

The three passes:

* ``forward``: one call without recording a graph;
* ``fwd+bwd``: forward and backward, gradients of the parameters only (the input is data);
* ``fwd+bwd+dx``: the same plus the input's gradient, as for any layer that is not the
  first one of a model, or that reads an embedding.

On the CPU the clock is the processor time of the process (:func:`time.process_time`), which
equals the wall time of a single-threaded run on an idle machine and is disturbed less by
other programs on a shared one. On CUDA (``--device cuda``) every call is followed by a
synchronization and the clock is the wall time; :mod:`torch.nn`'s layers run cuDNN.
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


DEFAULT_CONFIGS = (
    BenchConfig(100, 64, 256, 256),
    BenchConfig(100, 16, 64, 64),
    BenchConfig(50, 32, 64, 64),  # the book's typical size
)
PASSES = ("forward", "fwd+bwd", "fwd+bwd+dx")
# (cell, implementation) → layer class; the timed order rotates over these four
LAYERS: dict[tuple[str, str], type[nn.Module]] = {
    ("LSTM", "ours"): LSTM,
    ("LSTM", "torch"): nn.LSTM,
    ("GRU", "ours"): GRU,
    ("GRU", "torch"): nn.GRU,
}


@dataclass(frozen=True)
class BenchRow:
    """One line of the table: median milliseconds per call of the four layers.

    ``times`` maps ``(cell, implementation)`` to the milliseconds of each run (one entry per
    run); every ratio is computed per run and summarized by its median and range.
    """

    config: BenchConfig
    pass_: str
    times: dict[tuple[str, str], tuple[float, ...]]

    def ms(self, cell: str, impl: str) -> float:
        """Median over runs of the milliseconds per call."""
        return statistics.median(self.times[cell, impl])

    def _ratios(self, num: tuple[str, str], den: tuple[str, str]) -> list[float]:
        return [a / b for a, b in zip(self.times[num], self.times[den], strict=True)]

    def ratio(self, cell: str) -> tuple[float, float, float]:
        """``rnn_course`` / :mod:`torch.nn` for ``cell``: median, min and max over runs."""
        r = self._ratios((cell, "ours"), (cell, "torch"))
        return statistics.median(r), min(r), max(r)

    def gru_over_lstm(self, impl: str) -> tuple[float, float, float]:
        """GRU time / LSTM time of one implementation: median, min and max over runs."""
        r = self._ratios(("GRU", impl), ("LSTM", impl))
        return statistics.median(r), min(r), max(r)


def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def timed_input(x: torch.Tensor, pass_: str) -> torch.Tensor:
    """The input of ``pass_``: a leaf that requires its gradient only for ``fwd+bwd+dx``."""
    return x.detach().requires_grad_(pass_ == "fwd+bwd+dx")


def _call(layer: nn.Module, x: torch.Tensor, pass_: str) -> Callable[[], None]:
    """A closure running one call of ``pass_`` (see the module) and waiting for the device.

    ``x`` comes from :func:`timed_input`; its gradient, if it requires one, is computed.
    """
    sync = _sync(x.device)
    if pass_ == "forward":

        def forward() -> None:
            with torch.no_grad():
                layer(x)
            sync()

        return forward

    params = list(layer.parameters())

    def forward_backward() -> None:
        for p in params:
            p.grad = None
        x.grad = None
        out, _ = layer(x)
        out.sum().backward()
        sync()

    return forward_backward


def _seconds(fn: Callable[[], None], clock: Callable[[], float]) -> float:
    start = clock()
    fn()
    return clock() - start


def measure(
    config: BenchConfig,
    pass_: str,
    repeats: int,
    warmup: int,
    seed: int,
    device: torch.device | str = "cpu",
    compile_backend: str | None = None,
) -> dict[tuple[str, str], float]:
    """Median seconds per call of each of the four layers, timed interleaved.

    Within repeat ``r`` the layers run in the order of :data:`LAYERS` rotated by ``r``, so
    that each one follows each other equally often. With ``compile_backend`` the package's
    layers run their time loops compiled by :func:`torch.compile` with that backend
    (:meth:`rnn_course.layers.LSTM.compile_time_loop`); the warm-up calls compile them.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    x = torch.randn(config.seq_len, config.batch, config.input_size, device=device)
    x = timed_input(x, pass_)
    calls = {}
    for cell in ("LSTM", "GRU"):
        reference = LAYERS[cell, "torch"](config.input_size, config.hidden_size, device=device)
        ours = LAYERS[cell, "ours"](config.input_size, config.hidden_size, device=device)
        ours.load_state_dict(reference.state_dict())
        if compile_backend is not None:
            ours.compile_time_loop(backend=compile_backend)
        calls[cell, "ours"] = _call(ours, x, pass_)
        calls[cell, "torch"] = _call(reference, x, pass_)
    # the processor time of this process on the CPU: on a shared machine other programs
    # delay a call without adding to it; wall time on CUDA, where the host waits
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    keys = list(LAYERS)
    for _ in range(warmup):
        for key in keys:
            calls[key]()
    times: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    for r in range(repeats):
        for j in range(len(keys)):
            key = keys[(r + j) % len(keys)]
            times[key].append(_seconds(calls[key], clock))
    return {key: statistics.median(t) for key, t in times.items()}


def run(
    configs: Sequence[BenchConfig] = DEFAULT_CONFIGS,
    repeats: int = 20,
    warmup: int = 3,
    seed: int = 0,
    runs: int = 1,
    device: torch.device | str = "cpu",
    compile_backend: str | None = None,
) -> list[BenchRow]:
    """Measure every size and pass ``runs`` times; return the rows of the table."""
    collected: dict[tuple[BenchConfig, str], dict[tuple[str, str], list[float]]] = {}
    for _ in range(runs):
        for config in configs:
            for pass_ in PASSES:
                got = measure(config, pass_, repeats, warmup, seed, device, compile_backend)
                per_key = collected.setdefault((config, pass_), {k: [] for k in LAYERS})
                for key, seconds in got.items():
                    per_key[key].append(1e3 * seconds)
    return [
        BenchRow(config, pass_, {k: tuple(v) for k, v in times.items()})
        for (config, pass_), times in collected.items()
    ]


def _ratio_text(value: tuple[float, float, float], runs: int) -> str:
    median, low, high = value
    return f"{median:.2f}" if runs == 1 else f"{median:.2f} ({low:.2f}–{high:.2f})"


COLUMNS = (
    "size",
    "pass",
    "LSTM ours ms",
    "LSTM torch ms",
    "LSTM ours/torch",
    "GRU ours ms",
    "GRU torch ms",
    "GRU ours/torch",
    "GRU/LSTM ours",
    "GRU/LSTM torch",
)


def format_table(rows: Sequence[BenchRow]) -> str:
    """A Markdown table (readable as plain text), one row per size and pass.

    Milliseconds are medians over runs; a ratio shows its median and, with several runs,
    its range in parentheses.
    """
    cells = [list(COLUMNS)]
    for row in rows:
        runs = len(row.times["LSTM", "ours"])
        cells.append([
            row.config.label,
            row.pass_,
            f"{row.ms('LSTM', 'ours'):.2f}",
            f"{row.ms('LSTM', 'torch'):.2f}",
            _ratio_text(row.ratio("LSTM"), runs),
            f"{row.ms('GRU', 'ours'):.2f}",
            f"{row.ms('GRU', 'torch'):.2f}",
            _ratio_text(row.ratio("GRU"), runs),
            _ratio_text(row.gru_over_lstm("ours"), runs),
            _ratio_text(row.gru_over_lstm("torch"), runs),
        ])  # fmt: skip
    widths = [max(len(line[j]) for line in cells) for j in range(len(COLUMNS))]

    def line(values: list[str]) -> str:
        padded = (
            v.ljust(w) if j < 2 else v.rjust(w)
            for j, (v, w) in enumerate(zip(values, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|" + "|".join("-" * (w + 1) + (":" if j >= 2 else "-") for j, w in enumerate(widths)) + "|"
    )
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


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
        description="Time rnn_course's LSTM and GRU against torch.nn's, interleaved.",
    )
    parser.add_argument(
        "--config",
        type=_config,
        action="append",
        metavar="T,N,I,H",
        help="sequence length, batch, input and hidden size (repeatable; default "
        "100,64,256,256, 100,16,64,64 and 50,32,64,64)",
    )
    parser.add_argument("--repeats", type=_positive, default=20, help="timed calls (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    parser.add_argument("--runs", type=_positive, default=1, help="whole measurements (default 1)")
    parser.add_argument("--threads", type=_positive, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compile",
        nargs="?",
        const="inductor",
        metavar="BACKEND",
        help="compile rnn_course's time loops with torch.compile (backend inductor unless "
        "named); compilation happens in the warm-up, which must be at least 1",
    )
    args = parser.parse_args(argv)
    if args.compile is not None and args.warmup < 1:
        parser.error("--compile needs --warmup 1 or more: the warm-up compiles the loops")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA is not available")
    torch.set_num_threads(args.threads)
    configs = args.config or list(DEFAULT_CONFIGS)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {where}; "
        f"median of {args.runs} run(s) of {args.repeats} interleaved repeats"
        + ("" if args.compile is None else f"; rnn_course compiled ({args.compile})")
    )
    rows = run(
        configs, args.repeats, max(args.warmup, 0), args.seed, args.runs, device, args.compile
    )
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
