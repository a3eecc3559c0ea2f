"""The benchmark's entry point runs and prints a complete table (no timing assertions)."""

from __future__ import annotations

import math

import pytest

from rnn_course import bench


def test_main_prints_one_row_per_size_cell_and_pass(capsys):
    rows = bench.main(
        ["--config", "3,2,4,5", "--config", "2,1,3,3", "--repeats", "1", "--warmup", "0"]
    )
    printed = capsys.readouterr().out
    assert [(r.config.label, r.cell, r.pass_) for r in rows] == [
        (label, cell, pass_)
        for label in ("T=3 N=2 I=4 H=5", "T=2 N=1 I=3 H=3")
        for cell in ("LSTM", "GRU")
        for pass_ in ("forward", "forward+backward")
    ]
    for row in rows:
        for value in (row.ours_ms, row.torch_ms, row.ratio):
            assert math.isfinite(value) and value > 0
    table_lines = [line for line in printed.splitlines() if line.startswith("T=")]
    assert len(table_lines) == len(rows)
    assert "rnn_course ms" in printed and "torch.nn ms" in printed and "ratio" in printed


def test_format_table_shows_the_ratio():
    config = bench.BenchConfig(10, 2, 3, 4)
    row = bench.BenchRow("LSTM", config, "forward", ours_ms=3.0, torch_ms=2.0)
    assert row.ratio == 1.5
    assert bench.format_table([row]).splitlines()[-1].split()[-1] == "1.50"


@pytest.mark.parametrize("bad", ["1,2,3", "1,2,x,4", "0,2,3,4"])
def test_bad_config_is_rejected(bad, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--config", bad])
    err = capsys.readouterr().err
    assert "a configuration is T,N,I,H" in err or "sizes must be positive" in err
