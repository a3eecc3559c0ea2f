"""The benchmark's entry point runs and prints a complete table (no timing assertions)."""

from __future__ import annotations

import math

import pytest
import torch

from rnn_course import bench


def test_main_prints_one_row_per_size_and_pass(capsys):
    rows = bench.main(
        ["--config", "3,2,4,5", "--config", "2,1,3,3", "--repeats", "1", "--warmup", "0"]
    )
    printed = capsys.readouterr().out
    assert [(r.config.label, r.pass_) for r in rows] == [
        (label, pass_)
        for label in ("T=3 N=2 I=4 H=5", "T=2 N=1 I=3 H=3")
        for pass_ in ("forward", "fwd+bwd", "fwd+bwd+dx")
    ]
    for row in rows:
        assert set(row.times) == set(bench.LAYERS)
        values = [row.ms(*key) for key in bench.LAYERS]
        values += [row.ratio(cell)[0] for cell in ("LSTM", "GRU")]
        values += [row.gru_over_lstm(impl)[0] for impl in ("ours", "torch")]
        for value in values:
            assert math.isfinite(value) and value > 0
    lines = printed.splitlines()
    table = [line for line in lines if line.startswith("| T=")]
    assert len(table) == len(rows)
    assert lines[1].startswith("| size") and "GRU/LSTM ours" in lines[1]
    assert "1 thread(s)" in lines[0]
    # every line of the Markdown table has the same columns
    assert {line.count("|") for line in lines[1:]} == {len(bench.COLUMNS) + 1}


def fake_row(ms: dict[tuple[str, str], tuple[float, ...]]) -> bench.BenchRow:
    return bench.BenchRow(bench.BenchConfig(10, 2, 3, 4), "fwd+bwd+dx", ms)


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
def test_each_pass_computes_the_gradients_it_names(pass_, params_grad, input_grad, key):
    layer = bench.LAYERS[key](4, 5)
    x = bench.timed_input(torch.randn(3, 2, 4), pass_)
    bench._call(layer, x, pass_)()
    assert (layer.weight_hh_l0.grad is not None) == params_grad
    assert (x.grad is not None) == input_grad


def test_runs_collect_one_time_per_run():
    rows = bench.run([bench.BenchConfig(3, 2, 4, 5)], repeats=1, warmup=0, runs=2)
    assert [r.pass_ for r in rows] == list(bench.PASSES)
    assert all(len(times) == 2 for r in rows for times in r.times.values())


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
    assert sorted(compiled) == sorted(
        [(cell, {"backend": "aot_eager"}) for cell in ("LSTM", "GRU") for _ in bench.PASSES]
    )
    assert all(math.isfinite(r.ratio("LSTM")[0]) for r in rows)


def test_compile_needs_a_warmup(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--config", "2,1,3,3", "--compile", "--warmup", "0"])
    assert "--warmup 1" in capsys.readouterr().err
