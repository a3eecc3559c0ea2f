"""Time the package's LSTM and GRU against :mod:`torch.nn`, loop peers and the GEMM floor.

Run ``python -m rnn_course.bench`` (or ``make bench``). For each size and pass these are
timed, all with the same weights and inputs (:data:`IMPLEMENTATIONS`):

* ``ours``: the package's layer on a padded tensor; ``packed``: the same layer on a
  :class:`~torch.nn.utils.rnn.PackedSequence` of equal lengths (the same work, plus the
  packed path's bookkeeping);
* ``torch``: :class:`torch.nn.LSTM` / :class:`torch.nn.GRU` (oneDNN or cuDNN kernels);
* ``floor``: the matrix products the algorithm cannot avoid, and nothing else
  (:class:`rnn_course.baselines.GemmFloor`);
* for the LSTM, the pure-PyTorch loops people write (:mod:`rnn_course.baselines`): ``d2l``
  (from scratch, per-gate products), ``cell loop`` (:class:`torch.nn.LSTMCell` in a Python
  loop) and ``script`` (PyTorch's fastrnns TorchScript layer).

Their calls are interleaved within each repeat in a rotating order, so that a busy machine
slows all of them alike. A run reports the median milliseconds per call of each after a
warm-up; every ratio is computed from those medians. With ``--runs R`` the whole
measurement is repeated R times and the tables show the median over the runs and, for the
ratios, their range.

The three passes:

* ``forward``: one call without recording a graph;
* ``fwd+bwd``: forward and backward, gradients of the parameters only (the input is data);
* ``fwd+bwd+dx``: the same plus the input's gradient, as for any layer that is not the
  first one of a model, or that reads an embedding.

The floor of each pass has that pass's products: the input projection and the recurrent
products for ``forward``; plus the backward recurrent products and ``dW_ih``, ``dW_hh`` for
``fwd+bwd``; plus ``dX`` for ``fwd+bwd+dx``.

On the CPU the clock is the processor time of the process (:func:`time.process_time`), which
equals the wall time of a single-threaded run on an idle machine and is disturbed less by
other programs on a shared one. On CUDA (``--device cuda``) every call is followed by a
synchronization and the clock is the wall time; :mod:`torch.nn`'s layers run cuDNN. The
device is chosen once; nothing inside a timed call waits for it but the final
synchronization.

Fresh memory. Every call of a layer allocates its buffers anew; the floor allocates none.
Memory the process has never touched costs a page fault per 4 KiB page on first use (3.6 µs
each on the virtual machine the README's tables come from). glibc's ``malloc`` maps a
large block afresh, and unmaps it when it is freed, whenever the block is at least its
*mmap threshold*, a value it adjusts from the history of the process's frees; so the same
call of the LSTM at T=100, N=16, H=64 was measured at 87 to 1,400 page faults per call from
one process to the next, and at 1,400 it took 2.5 to 2.8 times the floor instead of 1.9.
To measure the layers and not that history, the benchmark asks glibc (where the process
runs on it) to keep freed memory for reuse (:func:`keep_freed_memory`, what jemalloc and
tcmalloc, which PyTorch's CPU performance guide recommends, do by design); ``--malloc
system`` leaves the allocator as it is. Either way the fourth table shows the page faults
per call of each implementation, counted by the kernel (``ru_minflt``), so that a reader
sees how much fresh memory each call still touched. The setting is the benchmark
process's: importing :mod:`rnn_course` changes nothing.
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from rnn_course.baselines import LOOP_PEERS, GemmFloor
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
# the layers of the first table: (cell, implementation) → layer class
LAYERS: dict[tuple[str, str], type[nn.Module]] = {
    ("LSTM", "ours"): LSTM,
    ("LSTM", "torch"): nn.LSTM,
    ("GRU", "ours"): GRU,
    ("GRU", "torch"): nn.GRU,
}
GATES = {"LSTM": 4, "GRU": 3}
# everything timed, per cell; the timed order rotates over all of them
IMPLEMENTATIONS: dict[str, tuple[str, ...]] = {
    "LSTM": ("ours", "packed", "torch", "floor", *LOOP_PEERS),
    "GRU": ("ours", "packed", "torch", "floor"),
}
KEYS = tuple((cell, impl) for cell, impls in IMPLEMENTATIONS.items() for impl in impls)

# glibc's mallopt parameters (malloc.h) and the value the benchmark gives both: 1 GiB
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse in this process (see the module).

    Sets the mmap threshold (blocks at least this large are mapped afresh and unmapped when
    freed) and the trim threshold (free memory at the top of the heap beyond this is given
    back) to :data:`KEEP_BYTES`. Returns whether it did: ``False`` where the process does
    not run on glibc, whose ``malloc`` is the only one this knows how to tell.
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(p, KEEP_BYTES) == 1 for p in (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD))


def minor_faults() -> int:
    """The page faults this process has taken that needed no disk: first touches of fresh
    memory, mostly (0 where the platform does not count them)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@dataclass(frozen=True)
class BenchRow:
    """One size and pass: the milliseconds per call of everything timed, one per run.

    ``times`` maps ``(cell, implementation)`` to the milliseconds of each run; every ratio
    is computed per run and summarized by its median and range. ``faults`` holds the page
    faults per call of each, one per run likewise.
    """

    config: BenchConfig
    pass_: str
    times: dict[tuple[str, str], tuple[float, ...]]
    # page faults per call (mean over the repeats), one per run
    faults: dict[tuple[str, str], tuple[float, ...]] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return len(next(iter(self.times.values())))

    def ms(self, cell: str, impl: str) -> float:
        """Median over runs of the milliseconds per call."""
        return statistics.median(self.times[cell, impl])

    def faults_per_call(self, cell: str, impl: str) -> float:
        """Median over runs of the page faults per call (see the module)."""
        return statistics.median(self.faults[cell, impl])

    def ratio_of(
        self, num: tuple[str, str] | Sequence[tuple[str, str]], den: tuple[str, str]
    ) -> tuple[float, float, float]:
        """``num`` time / ``den`` time, per run: median, min and max over runs.

        ``num`` may be several keys: the fastest of them in each run.
        """
        keys = [num] if isinstance(num[0], str) else list(num)
        r = [
            min(self.times[key][j] for key in keys) / self.times[den][j]  # type: ignore[index]
            for j in range(self.runs)
        ]
        return statistics.median(r), min(r), max(r)

    def ratio(self, cell: str) -> tuple[float, float, float]:
        """``rnn_course`` / :mod:`torch.nn` for ``cell``: median, min and max over runs."""
        return self.ratio_of((cell, "ours"), (cell, "torch"))

    def gru_over_lstm(self, impl: str) -> tuple[float, float, float]:
        """GRU time / LSTM time of one implementation: median, min and max over runs."""
        return self.ratio_of(("GRU", impl), ("LSTM", impl))


def _sync(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def timed_input(x: torch.Tensor, pass_: str) -> torch.Tensor:
    """The input of ``pass_``: a leaf that requires its gradient only for ``fwd+bwd+dx``."""
    return x.detach().requires_grad_(pass_ == "fwd+bwd+dx")


def packed_input(x: torch.Tensor, pass_: str) -> PackedSequence:
    """``x (T, N, H_in)`` packed as sequences of equal length, its data a leaf like
    :func:`timed_input`'s (packing is done once, outside the timed calls)."""
    T, N = x.shape[0], x.shape[1]
    packed = pack_padded_sequence(x.detach(), torch.full((N,), T), enforce_sorted=False)
    return packed._replace(data=timed_input(packed.data, pass_))


def _call(layer: nn.Module, x: torch.Tensor | PackedSequence, pass_: str) -> Callable[[], None]:
    """A closure running one call of ``pass_`` (see the module) and waiting for the device.

    ``x`` comes from :func:`timed_input` or :func:`packed_input`; its gradient, if it
    requires one, is computed.
    """
    leaf = x.data if isinstance(x, PackedSequence) else x
    sync = _sync(leaf.device)
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
        leaf.grad = None
        out, _ = layer(x)
        (out.data if isinstance(out, PackedSequence) else out).sum().backward()
        sync()

    return forward_backward


def _floor_call(floor: GemmFloor, device: torch.device) -> Callable[[], None]:
    sync = _sync(device)

    def products() -> None:
        floor()
        sync()

    return products


def _seconds(fn: Callable[[], None], clock: Callable[[], float]) -> float:
    start = clock()
    fn()
    return clock() - start


@dataclass(frozen=True)
class Measured:
    """What :func:`measure` found for one implementation."""

    seconds: float  # median per call
    faults: float  # page faults per call, mean over the timed calls


def make_calls(
    config: BenchConfig,
    pass_: str,
    seed: int,
    device: torch.device,
    compile_backend: str | None = None,
    keys: Sequence[tuple[str, str]] = KEYS,
) -> dict[tuple[str, str], Callable[[], None]]:
    """One closure per key, each running one call of ``pass_``; every layer of a cell gets
    the weights of the same :mod:`torch.nn` layer, and all get the same input."""
    torch.manual_seed(seed)
    x = torch.randn(config.seq_len, config.batch, config.input_size, device=device)
    padded, packed = timed_input(x, pass_), packed_input(x, pass_)
    I, H = config.input_size, config.hidden_size
    calls: dict[tuple[str, str], Callable[[], None]] = {}
    for cell, impl in keys:
        torch.manual_seed(seed)  # every implementation of a cell gets these weights
        reference = LAYERS[cell, "torch"](I, H, device=device)
        if impl == "torch":
            calls[cell, impl] = _call(reference, padded, pass_)
        elif impl in ("ours", "packed"):
            ours = LAYERS[cell, "ours"](I, H, device=device)
            ours.load_state_dict(reference.state_dict())
            if compile_backend is not None:
                ours.compile_time_loop(backend=compile_backend)
            calls[cell, impl] = _call(ours, padded if impl == "ours" else packed, pass_)
        elif impl == "floor":
            floor = GemmFloor(
                config.seq_len, config.batch, I, H, GATES[cell],
                backward=pass_ != "forward", input_grad=pass_ == "fwd+bwd+dx",
                device=device, seed=seed,
            )  # fmt: skip
            calls[cell, impl] = _floor_call(floor, device)
        else:
            peer = LOOP_PEERS[impl](I, H, device=device)
            peer.load_torch_state_dict(reference.state_dict())
            calls[cell, impl] = _call(peer, padded, pass_)
    return calls


def measure(
    config: BenchConfig,
    pass_: str,
    repeats: int,
    warmup: int,
    seed: int,
    device: torch.device | str = "cpu",
    compile_backend: str | None = None,
    keys: Sequence[tuple[str, str]] = KEYS,
) -> dict[tuple[str, str], Measured]:
    """Median seconds and mean page faults per call of each key, timed interleaved.

    Within repeat ``r`` the calls run in the order of ``keys`` rotated by ``r``, so that
    each one follows each other equally often. With ``compile_backend`` the package's
    layers run their time loops compiled by :func:`torch.compile` with that backend
    (:meth:`rnn_course.layers.LSTM.compile_time_loop`); the warm-up calls compile them.
    """
    device = torch.device(device)
    calls = make_calls(config, pass_, seed, device, compile_backend, keys)
    # the processor time of this process on the CPU: on a shared machine other programs
    # delay a call without adding to it; wall time on CUDA, where the host waits
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    keys = list(keys)
    for _ in range(warmup):
        for key in keys:
            calls[key]()
    times: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    faults = dict.fromkeys(keys, 0)
    for r in range(repeats):
        for j in range(len(keys)):
            key = keys[(r + j) % len(keys)]
            before = minor_faults()
            times[key].append(_seconds(calls[key], clock))
            faults[key] += minor_faults() - before
    return {key: Measured(statistics.median(t), faults[key] / repeats) for key, t in times.items()}


def run(
    configs: Sequence[BenchConfig] = DEFAULT_CONFIGS,
    repeats: int = 20,
    warmup: int = 3,
    seed: int = 0,
    runs: int = 1,
    device: torch.device | str = "cpu",
    compile_backend: str | None = None,
    keys: Sequence[tuple[str, str]] = KEYS,
) -> list[BenchRow]:
    """Measure every size and pass ``runs`` times; return the rows of the tables."""
    collected: dict[tuple[BenchConfig, str], dict[tuple[str, str], list[Measured]]] = {}
    for _ in range(runs):
        for config in configs:
            for pass_ in PASSES:
                got = measure(config, pass_, repeats, warmup, seed, device, compile_backend, keys)
                per_key = collected.setdefault((config, pass_), {k: [] for k in keys})
                for key, measured in got.items():
                    per_key[key].append(measured)
    return [
        BenchRow(
            config,
            pass_,
            {k: tuple(1e3 * m.seconds for m in v) for k, v in measured.items()},
            {k: tuple(m.faults for m in v) for k, v in measured.items()},
        )
        for (config, pass_), measured in collected.items()
    ]


def _ratio_text(value: tuple[float, float, float], runs: int) -> str:
    median, low, high = value
    return f"{median:.2f}" if runs == 1 else f"{median:.2f} ({low:.2f}–{high:.2f})"


Column = tuple[str, Callable[[BenchRow], str]]


def _ms(cell: str, impl: str) -> Callable[[BenchRow], str]:
    return lambda row: f"{row.ms(cell, impl):.2f}"


def _ratio(
    num: tuple[str, str] | Sequence[tuple[str, str]], den: tuple[str, str]
) -> Callable[[BenchRow], str]:
    return lambda row: _ratio_text(row.ratio_of(num, den), row.runs)


PEERS = tuple(("LSTM", impl) for impl in LOOP_PEERS)

# the package and torch.nn, as before: LSTM and GRU side by side
COLUMNS: tuple[Column, ...] = (
    ("LSTM ours ms", _ms("LSTM", "ours")),
    ("LSTM torch ms", _ms("LSTM", "torch")),
    ("LSTM ours/torch", _ratio(("LSTM", "ours"), ("LSTM", "torch"))),
    ("GRU ours ms", _ms("GRU", "ours")),
    ("GRU torch ms", _ms("GRU", "torch")),
    ("GRU ours/torch", _ratio(("GRU", "ours"), ("GRU", "torch"))),
    ("GRU/LSTM ours", _ratio(("GRU", "ours"), ("LSTM", "ours"))),
    ("GRU/LSTM torch", _ratio(("GRU", "torch"), ("LSTM", "torch"))),
)
# against the floor, and the LSTM loops people write (their time over ours: > 1 is slower)
FLOOR_COLUMNS: tuple[Column, ...] = (
    ("LSTM floor ms", _ms("LSTM", "floor")),
    ("LSTM ours/floor", _ratio(("LSTM", "ours"), ("LSTM", "floor"))),
    ("LSTM torch/floor", _ratio(("LSTM", "torch"), ("LSTM", "floor"))),
    *((f"{impl}/ours", _ratio(("LSTM", impl), ("LSTM", "ours"))) for _, impl in PEERS),
    ("fastest peer/ours", _ratio(PEERS, ("LSTM", "ours"))),
    ("GRU floor ms", _ms("GRU", "floor")),
    ("GRU ours/floor", _ratio(("GRU", "ours"), ("GRU", "floor"))),
    ("GRU torch/floor", _ratio(("GRU", "torch"), ("GRU", "floor"))),
)
# a PackedSequence of equal lengths against the padded tensor
PACKED_COLUMNS: tuple[Column, ...] = (
    ("LSTM packed ms", _ms("LSTM", "packed")),
    ("LSTM packed/padded", _ratio(("LSTM", "packed"), ("LSTM", "ours"))),
    ("GRU packed ms", _ms("GRU", "packed")),
    ("GRU packed/padded", _ratio(("GRU", "packed"), ("GRU", "ours"))),
)


def _faults(cell: str, impl: str) -> Callable[[BenchRow], str]:
    return lambda row: f"{row.faults_per_call(cell, impl):.0f}"


# fresh memory each call touched (see the module): page faults per call
FAULT_COLUMNS: tuple[Column, ...] = tuple(
    (f"{cell} {impl}", _faults(cell, impl))
    for cell, impl in (
        ("LSTM", "ours"), ("LSTM", "packed"), ("LSTM", "torch"), ("LSTM", "floor"),
        ("GRU", "ours"), ("GRU", "packed"), ("GRU", "torch"),
    )
)  # fmt: skip
TABLES: dict[str, tuple[Column, ...]] = {
    "rnn_course and torch.nn": COLUMNS,
    "against the GEMM floor and the LSTM loop peers": FLOOR_COLUMNS,
    "PackedSequence (equal lengths) against the padded tensor": PACKED_COLUMNS,
    "page faults per call (first touches of fresh memory)": FAULT_COLUMNS,
}


def format_table(rows: Sequence[BenchRow], columns: Sequence[Column] = COLUMNS) -> str:
    """A Markdown table (readable as plain text), one row per size and pass.

    Milliseconds are medians over runs; a ratio shows its median and, with several runs,
    its range in parentheses.
    """
    cells = [["size", "pass", *(title for title, _ in columns)]]
    for row in rows:
        cells.append([row.config.label, row.pass_, *(value(row) for _, value in columns)])
    widths = [max(len(line[j]) for line in cells) for j in range(len(cells[0]))]

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


# operator names by what they do, for the profile (everything else is "other operations")
PRODUCTS = frozenset({"aten::mm", "aten::addmm", "aten::addmm_", "aten::bmm", "aten::matmul"})
VIEWS = frozenset({
    "aten::unbind", "aten::split", "aten::split_with_sizes", "aten::select", "aten::slice",
    "aten::narrow", "aten::as_strided", "aten::view", "aten::unsqueeze", "aten::expand",
    "aten::t", "aten::transpose", "aten::chunk", "aten::unflatten", "aten::reshape",
    "aten::alias", "aten::detach", "aten::resolve_conj", "aten::resolve_neg",
    "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::new_empty",
    "aten::new_full", "aten::full",
})  # fmt: skip


# the profile runs the layer at least this many times and for at least this long
PROFILED_CALLS = 3
PROFILED_SECONDS = 1.0


@dataclass(frozen=True)
class Profile:
    """Where one call's processor time goes (see :func:`profile`).

    ``total`` is the call's time as the benchmark measures it; the shares are fractions of
    the profiled calls' own time, so that a machine busier while profiling than while timing
    does not skew them.
    """

    config: BenchConfig
    total: float  # milliseconds per call, unprofiled (median of three)
    products: float  # share of the profiled time in matrix products
    pointwise: float  # share in other operations: activations, products by element, copies
    views: float  # share in making views and empty buffers
    floor: float  # the GEMM floor's time, milliseconds per call, unprofiled

    @property
    def outside(self) -> float:
        """The share no operation accounts for: Python, autograd and the profiler itself."""
        return 1.0 - self.products - self.pointwise - self.views

    def per_step(self, share: float) -> float:
        """Microseconds per time step of ``share`` of the (unprofiled) call."""
        return 1e3 * share * self.total / self.config.seq_len


def profile(config: BenchConfig, cell: str = "LSTM", seed: int = 0) -> Profile:
    """Profile ``fwd+bwd+dx`` calls of the package's layer; time them and the GEMM floor (CPU).

    Each is timed three times; then the layer runs under :mod:`torch.profiler`
    (:data:`PROFILED_CALLS` times, more, up to 200, if they take less than
    :data:`PROFILED_SECONDS`),
    whose self times per operator give the shares. The profiler adds
    a few microseconds per operation: a profile shows where the time goes, the tables how
    much there is.
    """
    calls = make_calls(config, "fwd+bwd+dx", seed, torch.device("cpu"), None,
                       [(cell, "ours"), (cell, "floor")])  # fmt: skip
    for call in calls.values():
        call()  # warm up
    ms = {
        impl: 1e3
        * statistics.median(_seconds(calls[cell, impl], time.process_time) for _ in range(3))
        for impl in ("ours", "floor")
    }
    repeats = max(PROFILED_CALLS, min(200, round(PROFILED_SECONDS / (ms["ours"] / 1e3))))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        # the profiler's times are wall times: the shares are of the profiled wall time
        start = time.perf_counter()
        for _ in range(repeats):
            calls[cell, "ours"]()
        profiled = 1e6 * (time.perf_counter() - start)
    self_us = {
        e.key: e.self_cpu_time_total for e in prof.key_averages() if e.key.startswith("aten::")
    }
    products = sum(v for k, v in self_us.items() if k in PRODUCTS) / profiled
    views = sum(v for k, v in self_us.items() if k in VIEWS) / profiled
    pointwise = sum(self_us.values()) / profiled - products - views
    return Profile(config, ms["ours"], products, pointwise, views, ms["floor"])


def format_profile(profiles: Sequence[Profile]) -> str:
    """A Markdown table of :func:`profile`'s results: shares, and µs per step."""
    head = (
        "| size | call ms | floor ms | products | other operations | views | outside "
        "| other operations µs/step |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for p in profiles:
        lines.append(
            f"| {p.config.label} | {p.total:.1f} | {p.floor:.1f} | {p.products:.0%} "
            f"| {p.pointwise:.0%} | {p.views:.0%} | {p.outside:.0%} "
            f"| {p.per_step(p.pointwise):.0f} |"
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
        description="Time rnn_course's LSTM and GRU against torch.nn's, loop peers and the "
        "GEMM floor, interleaved.",
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
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of timing, profile one call of the LSTM per size (fwd+bwd+dx, CPU): "
        "matrix products, other operations, views, and the floor's products",
    )
    parser.add_argument(
        "--malloc",
        choices=("keep", "system"),
        default="keep",
        help="keep (default): ask glibc to keep freed memory for reuse, so that page faults "
        "of fresh memory do not depend on the process's history; system: leave the "
        "allocator as it is",
    )
    args = parser.parse_args(argv)
    kept = args.malloc == "keep" and keep_freed_memory()
    if args.profile:
        torch.set_num_threads(args.threads)
        profiles = [profile(c, seed=args.seed) for c in args.config or DEFAULT_CONFIGS[:1]]
        print(format_profile(profiles))
        return []
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
        f"median of {args.runs} run(s) of {args.repeats} interleaved repeats; "
        + ("glibc keeps freed memory" if kept else "the allocator as the system set it")
        + ("" if args.compile is None else f"; rnn_course compiled ({args.compile})")
    )
    rows = run(
        configs, args.repeats, max(args.warmup, 0), args.seed, args.runs, device, args.compile
    )
    for title, columns in TABLES.items():
        print(f"\n{title}\n")
        print(format_table(rows, columns))
    return rows


if __name__ == "__main__":
    main()
