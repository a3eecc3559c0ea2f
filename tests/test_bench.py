"""The benchmark's entry point runs and prints complete tables (no timing assertions); what
it times computes what it claims: the same function, the named gradients, the products."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys

import pytest
import torch
from torch import nn

from rnn_course import bench
from rnn_course.baselines import LOOP_PEERS, GemmFloor


def test_main_prints_one_row_per_size_and_pass(capsys):
    # the allocator stays as it is in the test process (keep_freed_memory is tested apart)
    rows = bench.main(["--config", "3,2,4,5", "--config", "2,1,3,3", "--repeats", "1",
                       "--warmup", "0", "--malloc", "system"])  # fmt: skip
    printed = capsys.readouterr().out
    assert [(r.config.label, r.pass_) for r in rows] == [
        (label, pass_)
        for label in ("T=3 N=2 I=4 H=5", "T=2 N=1 I=3 H=3")
        for pass_ in ("forward", "fwd+bwd", "fwd+bwd+dx")
    ]
    for row in rows:
        assert set(row.times) == set(bench.KEYS)
        values = [row.ms(*key) for key in bench.KEYS]
        values += [row.ratio(cell)[0] for cell in ("LSTM", "GRU")]
        values += [row.gru_over_lstm(impl)[0] for impl in ("ours", "torch")]
        for value in values:
            assert math.isfinite(value) and value > 0
    lines = printed.splitlines()
    assert "1 thread(s)" in lines[0] and "the allocator as the system set it" in lines[0]
    tables = printed.split("\n\n")[1:]  # title, table, title, table, ...
    titles, bodies = tables[0::2], tables[1::2]
    assert [t.strip() for t in titles] == list(bench.TABLES)
    for body, columns in zip(bodies, bench.TABLES.values(), strict=True):
        table = body.strip().splitlines()
        assert table[0].startswith("| size") and len(table) == 2 + len(rows)
        # every line of a Markdown table has the same columns
        assert {line.count("|") for line in table} == {len(columns) + 3}
    assert "fastest peer/ours" in bodies[1] and "LSTM packed/padded" in bodies[2]
    assert "LSTM floor" in bodies[3]
    for row in rows:
        assert set(row.faults) == set(bench.KEYS)
        assert all(row.faults_per_call(*key) >= 0 for key in bench.KEYS)


def fake_row(ms: dict[tuple[str, str], tuple[float, ...]]) -> bench.BenchRow:
    runs = len(next(iter(ms.values())))
    times = {key: (1.0,) * runs for key in bench.KEYS} | ms
    return bench.BenchRow(bench.BenchConfig(10, 2, 3, 4), "fwd+bwd+dx", times)


def test_ratios_are_computed_per_run_from_the_measured_times():
    row = fake_row({
        ("LSTM", "ours"): (3.0, 4.0, 6.0),
        ("LSTM", "torch"): (2.0, 2.0, 2.0),
        ("GRU", "ours"): (1.5, 3.0, 3.0),
        ("GRU", "torch"): (1.0, 1.0, 4.0),
    })  # fmt: skip
    assert row.ms("LSTM", "ours") == 4.0
    assert row.ratio("LSTM") == (2.0, 1.5, 3.0)  # median, min, max of 1.5, 2.0, 3.0
    assert row.ratio("GRU") == (1.5, 0.75, 3.0)  # 1.5, 3.0, 0.75
    assert row.gru_over_lstm("ours") == (0.5, 0.5, 0.75)  # 0.5, 0.75, 0.5
    assert row.gru_over_lstm("torch") == (0.5, 0.5, 2.0)  # 0.5, 0.5, 2.0
    line = bench.format_table([row]).splitlines()[-1]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:4] == ["T=10 N=2 I=3 H=4", "fwd+bwd+dx", "4.00", "2.00"]
    assert cells[4] == "2.00 (1.50–3.00)"
    assert cells[-2:] == ["0.50 (0.50–0.75)", "0.50 (0.50–2.00)"]


def test_the_fastest_peer_is_taken_in_each_run():
    row = fake_row({
        ("LSTM", "ours"): (2.0, 2.0, 2.0),
        ("LSTM", "d2l"): (8.0, 3.0, 9.0),
        ("LSTM", "cell loop"): (6.0, 7.0, 5.0),
        ("LSTM", "script"): (7.0, 9.0, 4.0),
    })  # fmt: skip
    # per run: min(8, 6, 7) = 6, min(3, 7, 9) = 3, min(9, 5, 4) = 4, over ours = 2
    assert row.ratio_of(bench.PEERS, ("LSTM", "ours")) == (2.0, 1.5, 3.0)
    titles = [title for title, _ in bench.FLOOR_COLUMNS]
    line = bench.format_table([row], bench.FLOOR_COLUMNS).splitlines()[-1]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2 + titles.index("fastest peer/ours")] == "2.00 (1.50–3.00)"


def test_one_run_shows_the_ratio_without_a_range():
    row = fake_row({key: (2.0,) if key[1] == "ours" else (4.0,) for key in bench.LAYERS})
    cells = [c.strip() for c in bench.format_table([row]).splitlines()[-1].strip("|").split("|")]
    assert cells[4] == cells[7] == "0.50"
    assert cells[8] == cells[9] == "1.00"


@pytest.mark.parametrize(
    ("pass_", "params_grad", "input_grad"),
    [("forward", False, False), ("fwd+bwd", True, False), ("fwd+bwd+dx", True, True)],
)
@pytest.mark.parametrize("key", list(bench.LAYERS))
@pytest.mark.parametrize("packed", [False, True])
def test_each_pass_computes_the_gradients_it_names(pass_, params_grad, input_grad, key, packed):
    layer = bench.LAYERS[key](4, 5)
    x = torch.randn(3, 2, 4)
    x = bench.packed_input(x, pass_) if packed else bench.timed_input(x, pass_)
    bench._call(layer, x, pass_)()
    assert (layer.weight_hh_l0.grad is not None) == params_grad
    leaf = x.data if packed else x
    assert (leaf.grad is not None) == input_grad


@pytest.mark.parametrize("peer", list(LOOP_PEERS))
def test_loop_peers_compute_torch_nn_s_lstm(peer):
    """The peers are timed on the same function: outputs, final states and gradients of
    torch.nn.LSTM, given its state dict."""
    torch.manual_seed(0)
    reference = nn.LSTM(5, 7, dtype=torch.float64)
    layer = LOOP_PEERS[peer](5, 7).double()
    layer.load_torch_state_dict(reference.state_dict())
    x = torch.randn(6, 3, 5, dtype=torch.float64, requires_grad=True)
    results = []
    for module in (layer, reference):
        out, (h, c) = module(x)
        loss = out.square().sum() + h.sum() + 2 * c.sum()
        results.append([out, h, c, torch.autograd.grad(loss, x)[0]])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("pass_", "gates"), [("forward", 4), ("fwd+bwd", 3), ("fwd+bwd+dx", 4)])
def test_the_floor_runs_the_products_of_its_pass_and_nothing_else(pass_, gates):
    """Forward: the input projection and one recurrent product per step; backward: one
    recurrent product per step and dW_ih, dW_hh (and dX): counted with the profiler."""
    T, N, I, H = 5, 3, 4, 6
    floor = GemmFloor(T, N, I, H, gates, backward=pass_ != "forward",
                      input_grad=pass_ == "fwd+bwd+dx")  # fmt: skip
    with torch.profiler.profile() as prof:
        floor()
    ops = {e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")}
    products = {k: n for k, n in ops.items() if k in ("aten::mm", "aten::addmm", "aten::bmm")}
    want = {"forward": 1 + T, "fwd+bwd": 1 + 2 * T + 2, "fwd+bwd+dx": 1 + 2 * T + 3}[pass_]
    assert products == {"aten::mm": want}
    # nothing but the products and the views they take
    assert set(ops) <= {"aten::mm", "aten::t", "aten::transpose", "aten::as_strided",
                        "aten::resolve_conj", "aten::resolve_neg"}  # fmt: skip
    assert floor.xw.shape == (T * N, gates * H) and floor.dx.shape == (T * N, I)


def test_runs_collect_one_time_per_run():
    rows = bench.run([bench.BenchConfig(3, 2, 4, 5)], repeats=1, warmup=0, runs=2)
    assert [r.pass_ for r in rows] == list(bench.PASSES)
    assert all(len(times) == 2 for r in rows for times in r.times.values())


def test_every_implementation_of_a_cell_gets_the_same_weights_and_input():
    """The calls of one size and pass: run once each, every LSTM computes the same output."""
    outputs = {}

    def record(module, args, output):
        out = output[0]
        outputs[type(module).__name__] = out.data if hasattr(out, "batch_sizes") else out

    calls = bench.make_calls(bench.BenchConfig(4, 3, 5, 6), "forward", 0, torch.device("cpu"))
    handles = [
        torch.nn.modules.module.register_module_forward_hook(record),
    ]
    try:
        for (cell, impl), call in calls.items():
            if cell == "LSTM" and impl not in ("floor", "packed"):
                call()
    finally:
        for h in handles:
            h.remove()
    reference = outputs.pop("LSTM")  # torch.nn's and the package's share the class name
    assert {"ScratchLSTM", "CellLoopLSTM", "ScriptLSTM"} <= set(outputs)
    for name in ("ScratchLSTM", "CellLoopLSTM", "ScriptLSTM"):
        torch.testing.assert_close(outputs[name], reference, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("bad", ["1,2,3", "1,2,x,4", "0,2,3,4"])
def test_bad_config_is_rejected(bad, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--config", bad])
    err = capsys.readouterr().err
    assert "a configuration is T,N,I,H" in err or "sizes must be positive" in err


def test_compile_times_the_compiled_time_loops(capsys, monkeypatch):
    """``--compile BACKEND`` compiles the package's layers (in the warm-up) and says so."""
    compiled = []
    base = bench.LSTM.__mro__[1]  # the layers' common base, which defines the method
    original = base.compile_time_loop

    def spy(self, **options):
        compiled.append((type(self).__name__, options))
        return original(self, **options)

    monkeypatch.setattr(base, "compile_time_loop", spy)
    rows = bench.main(
        ["--config", "2,1,3,3", "--repeats", "1", "--warmup", "1", "--compile", "aot_eager"]
    )
    assert "rnn_course compiled (aot_eager)" in capsys.readouterr().out.splitlines()[0]
    # the padded and the packed layer of each cell, in each pass
    assert sorted(compiled) == sorted(
        [(cell, {"backend": "aot_eager"}) for cell in ("LSTM", "GRU") for _ in range(6)]
    )
    assert all(math.isfinite(r.ratio("LSTM")[0]) for r in rows)


def test_compile_needs_a_warmup(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--config", "2,1,3,3", "--compile", "--warmup", "0"])
    assert "--warmup 1" in capsys.readouterr().err


def test_profile_sorts_one_call_s_time_into_products_operations_and_views(capsys):
    config = bench.BenchConfig(6, 3, 4, 5)
    prof = bench.profile(config)
    assert 0 < prof.products < 1 and 0 < prof.pointwise < 1 and 0 < prof.views < 1
    assert prof.total > 0 and prof.floor > 0
    assert prof.outside == pytest.approx(1 - prof.products - prof.pointwise - prof.views)
    assert prof.per_step(0.5) == pytest.approx(1e3 * 0.5 * prof.total / 6)
    assert bench.main(["--profile", "--config", "6,3,4,5"]) == []
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| size | call ms | floor ms | products")
    assert lines[2].startswith("| T=6 N=3 I=4 H=5 |")


KEEP_SCRIPT = """
import sys
import torch
from rnn_course import bench
from rnn_course.layers import LSTM

if sys.argv[1] == "keep":
    assert bench.keep_freed_memory()
torch.manual_seed(0)
layer, x = LSTM(64, 64), torch.randn(100, 16, 64, requires_grad=True)
def call():
    out, _ = layer(x)
    out.sum().backward()
faults = []
for _ in range(15):
    before = bench.minor_faults()
    call()
    faults.append(bench.minor_faults() - before)
print(sorted(faults[5:])[5])  # the median call after five
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="keep_freed_memory only knows glibc; elsewhere it returns False (tested below)",
)
def test_keep_freed_memory_lets_the_layer_reuse_its_buffers(tmp_path):
    """Run where glibc maps every block of 128 KiB or more afresh (its environment
    variable, the worst case of its history), the LSTM's call (T=100, N=16, H=64, forward
    and backward) touches over a thousand fresh pages; after keep_freed_memory() the median
    call reuses the memory its previous calls freed (a call now and then still grows the
    heap by a block)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "OMP_NUM_THREADS": "1"}
    faults = {}
    for mode in ("system", "keep"):
        done = subprocess.run([sys.executable, "-c", KEEP_SCRIPT, mode], capture_output=True,
                              text=True, check=True, cwd=tmp_path, env=env)  # fmt: skip
        faults[mode] = float(done.stdout.split()[-1])
    assert faults["system"] > 1000, faults
    assert faults["keep"] < 50, faults


def test_keep_freed_memory_says_false_where_the_c_library_is_not_glibc(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", "1.2"))
    assert bench.keep_freed_memory() is False
