"""The shared figure helpers draw what they promise."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from rnn_course import plotting


def test_smooth_is_a_running_mean_with_a_short_start() -> None:
    out = plotting.smooth([1.0, 3.0, 5.0, 7.0], width=2)
    torch.testing.assert_close(out, torch.tensor([1.0, 2.0, 4.0, 6.0], dtype=torch.float64))


def test_smooth_works_column_by_column() -> None:
    values = torch.tensor([[1.0, 10.0], [3.0, 30.0]])
    out = plotting.smooth(values, width=5)
    torch.testing.assert_close(out[1], torch.tensor([2.0, 20.0], dtype=torch.float64))


def test_band_draws_the_median_and_the_range() -> None:
    fig, ax = plt.subplots()
    runs = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    plotting.band(ax, [0, 1], runs, "median")
    (line,) = ax.get_lines()
    assert list(line.get_ydata()) == [3.0, 4.0]
    assert line.get_label() == "median"
    plt.close(fig)


def test_seed_lines_and_dots_draw_one_mark_per_seed() -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2)
    plotting.seed_lines(ax1, [0, 1, 2], torch.rand(4, 3), "m", color="k")
    assert len(ax1.get_lines()) == 5  # four seeds and the median
    plotting.seed_dots(ax2, {"a": [0.1, 0.2], "b": [0.9, 1.0, 0.8]}, threshold=0.5)
    assert [t.get_text() for t in ax2.get_yticklabels()] == ["a", "b"]
    plt.close(fig)


@pytest.mark.parametrize("highlight", [None, "forget", "write", "read"])
def test_lstm_diagram_draws_every_highlight(highlight) -> None:
    fig, ax = plt.subplots()
    plotting.draw_lstm_step(ax, highlight)
    assert ax.patches
    plt.close(fig)


def test_lstm_diagram_rejects_an_unknown_path() -> None:
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="highlight"):
        plotting.draw_lstm_step(ax, "output")
    plt.close(fig)


def test_arrows_end_where_they_are_told() -> None:
    fig, ax = plt.subplots()
    plotting.arrow(ax, (0.0, 0.0), (1.0, 2.0))
    (patch,) = ax.patches
    assert patch.shrinkB == 0 and patch.shrinkA == 0
    plt.close(fig)


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_diagram_titles_its_form(reset_after) -> None:
    fig, ax = plt.subplots()
    plotting.draw_gru_step(ax, reset_after)
    assert ("after" in ax.get_title()) == reset_after
    plt.close(fig)


def test_text_heatmap_draws_one_cell_per_character() -> None:
    fig, ax = plt.subplots()
    plotting.text_heatmap(ax, "ab\ncd", [0.0, 1.0, 0.0, -1.0, 0.5], width=10)
    assert len(ax.patches) == 4 and len(ax.texts) == 4
    with pytest.raises(ValueError, match="one entry per character"):
        plotting.text_heatmap(ax, "abc", [0.0])
    plt.close(fig)
