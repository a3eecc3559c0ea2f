"""The book's figures: one style, curves over many seeds, and the pieces of its diagrams.

Every chapter draws the same kinds of things: a quantity per seed and its median, a
training curve smoothed over a few steps, a comparison in which every seed is a dot, and
data-flow diagrams built from boxes, operator circles and arrows. They are written once
here, so that a figure in one chapter looks like a figure in another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch
from torch import Tensor

#: One color per cell type, used in every chapter.
CELL_COLORS: dict[str, str] = {"rnn": "tab:gray", "lstm": "tab:red", "gru": "tab:blue"}
#: The names of the cell types in legends and text.
CELL_NAMES: dict[str, str] = {"rnn": "tanh RNN", "lstm": "LSTM", "gru": "GRU"}


def use_book_style() -> None:
    """Fonts that stay readable in a figure at most 8.5 inches wide."""
    plt.rcParams.update(
        {
            "font.size": 11,
            "legend.fontsize": 10,
            "axes.titlesize": 11,
            "figure.dpi": 100,
            "legend.framealpha": 0.9,
        }
    )


def smooth(values: Tensor | Sequence[float], width: int = 10) -> Tensor:
    """Moving average over the last ``width`` steps along the first axis.

    The first ``width - 1`` entries average over the steps so far, so the result has the
    length of the input. ``values`` may be ``(steps,)`` or ``(steps, G)``.
    """
    v = torch.as_tensor(values, dtype=torch.float64)
    c = torch.cat([torch.zeros_like(v[:1]), v.cumsum(0)])
    n = torch.arange(1, v.shape[0] + 1)
    lo = (n - width).clamp(min=0)
    count = (n - lo).to(v.dtype).view(-1, *([1] * (v.dim() - 1)))
    return (c[1:] - c[lo]) / count


def band(
    ax: Axes,
    x: Sequence[float] | Tensor,
    runs: Tensor,
    label: str | None = None,
    *,
    log: bool = False,
    alpha: float = 0.2,
    **style: Any,
) -> None:
    """The median over seeds as a line and the range over seeds as a shaded band.

    Args:
        ax: where to draw.
        x: the positions, ``(steps,)``.
        runs: ``(seeds, steps)``, one row per seed.
        label: the legend entry of the median line.
        log: a logarithmic y axis.
        alpha: the band's opacity.
        style: passed to the line (``color``, ``ls``, ``marker``, …).
    """
    runs = torch.as_tensor(runs, dtype=torch.float64)
    plot = ax.semilogy if log else ax.plot
    (line,) = plot(x, runs.median(0).values, label=label, **style)
    ax.fill_between(x, runs.min(0).values, runs.max(0).values, color=line.get_color(), alpha=alpha)


def seed_lines(
    ax: Axes,
    x: Sequence[float] | Tensor,
    runs: Tensor,
    label: str | None = None,
    *,
    color: str,
    log: bool = False,
    **style: Any,
) -> None:
    """Every seed as a thin line and the median over seeds as a thick one.

    ``runs`` is ``(seeds, steps)``; the legend entry goes to the median.
    """
    runs = torch.as_tensor(runs, dtype=torch.float64)
    plot = ax.semilogy if log else ax.plot
    for row in runs:
        plot(x, row, color=color, lw=0.7, alpha=0.45, **style)
    plot(x, runs.median(0).values, color=color, lw=2.2, label=label, **style)


def seed_dots(
    ax: Axes,
    values: Mapping[str, Sequence[float] | Tensor],
    *,
    colors: Mapping[str, str] | None = None,
    threshold: float | None = None,
    horizontal: bool = True,
) -> None:
    """One row of dots per condition, one dot per seed, and the median as a bar.

    Args:
        ax: where to draw.
        values: condition name → the values of its seeds.
        colors: condition name → color (default: the property cycle).
        threshold: a dashed line at this value (a success threshold, or chance).
        horizontal: conditions on the y axis and values along x (default), or the reverse.
    """
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, (name, vals) in enumerate(values.items()):
        v = torch.as_tensor(vals, dtype=torch.float64)
        color = (colors or {}).get(name, cycle[row % len(cycle)])
        # spread equal values a little so that every seed stays visible
        jitter = 0.22 * (torch.arange(len(v)) / max(len(v) - 1, 1) - 0.5)
        pos = row + jitter
        med = v.median().item()
        if horizontal:
            ax.plot(v, pos, "o", ms=7, alpha=0.7, color=color, mec="k", mew=0.5)
            ax.plot([med, med], [row - 0.3, row + 0.3], color=color, lw=3)
        else:
            ax.plot(pos, v, "o", ms=7, alpha=0.7, color=color, mec="k", mew=0.5)
            ax.plot([row - 0.3, row + 0.3], [med, med], color=color, lw=3)
    names = list(values)
    if horizontal:
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(-0.6, len(names) - 0.4)
        if threshold is not None:
            ax.axvline(threshold, color="gray", ls="--", lw=1)
    else:
        ax.set_xticks(range(len(names)), names)
        ax.set_xlim(-0.6, len(names) - 0.4)
        if threshold is not None:
            ax.axhline(threshold, color="gray", ls="--", lw=1)


# ------------------------------------------------------------------------------------------
# Diagrams
# ------------------------------------------------------------------------------------------


def box(
    ax: Axes,
    xy: tuple[float, float],
    text: str,
    color: str,
    *,
    w: float = 1.1,
    h: float = 0.8,
    fontsize: int = 13,
) -> None:
    """A rounded box of width ``w`` and height ``h`` centered at ``xy``, with ``text``."""
    x, y = xy
    patch = FancyBboxPatch(
        (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=color, ec="k"
    )
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def op(ax: Axes, xy: tuple[float, float], text: str, *, r: float = 0.3, scale: float = 1.0) -> None:
    """An operator circle (``×``, ``+``) of radius ``r`` centered at ``xy``."""
    ax.add_patch(Circle(xy, r, fc="white", ec="k", zorder=3))
    ax.text(*xy, text, ha="center", va="center", fontsize=14 * scale, zorder=4)


def arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    *,
    color: str = "k",
    lw: float = 1.4,
    ls: str = "-",
    rad: float = 0.0,
) -> None:
    """An arrow from ``start`` whose head ends exactly at ``end``."""
    patch = FancyArrowPatch(
        start,
        end,
        arrowstyle="-|>",
        mutation_scale=14,
        color=color,
        lw=lw,
        ls=ls,
        connectionstyle=f"arc3,rad={rad}",
        shrinkA=0,
        shrinkB=0,
    )
    ax.add_patch(patch)


def line(
    ax: Axes, xs: Sequence[float], ys: Sequence[float], *, color: str = "k", lw: float = 1.4
) -> None:
    """A polyline without an arrowhead (a wire of a diagram)."""
    ax.plot(xs, ys, color=color, lw=lw, solid_capstyle="round")


#: The parts of the LSTM step that :func:`draw_lstm_step` can highlight.
LSTM_PATHS = ("forget", "write", "read")


def draw_lstm_step(ax: Axes, highlight: str | None = None, *, scale: float = 1.0) -> None:
    """One LSTM step as a data-flow diagram; ``highlight`` one gate's path, or none.

    The cell path runs along the top, from :math:`\\mathbf{c}^{(t-1)}` through the forget
    gate's product and the write's sum to :math:`\\mathbf{c}^{(t)}`; the four blocks
    (:math:`\\mathbf{f}, \\mathbf{i}, \\mathbf{g}, \\mathbf{o}`) read
    :math:`\\mathbf{h}^{(t-1)}` and :math:`\\mathbf{x}^{(t)}` from the bus at the bottom.
    ``highlight="forget"``, ``"write"`` or ``"read"`` draws that path in color and the rest
    in gray. ``scale`` multiplies the text size (below 1 for a small figure).
    """
    if highlight is not None and highlight not in LSTM_PATHS:
        raise ValueError(f"highlight must be None or one of {LSTM_PATHS}, got {highlight!r}")
    red, hot = "tab:red", "tab:orange"
    faint = "0.75"

    def color(part: str, default: str = "k") -> str:
        if highlight is None:
            return default
        return hot if part == highlight else faint

    cell = red if highlight is None else faint
    ax.set_xlim(-0.5, 12.5)
    ax.set_ylim(-0.8, 7.0)
    ax.set_aspect("equal")
    ax.axis("off")
    frame = FancyBboxPatch(
        (1.6, 0.9), 9.3, 5.8, boxstyle="round,pad=0.1", fc="#f4f4f4", ec="gray", ls="--"
    )
    ax.add_patch(frame)
    # the cell path: c(t-1) -> (x f) -> (+ i*g) -> c(t); no matrix on the way
    line(ax, [0.2, 3.7], [6, 6], color=color("forget", cell), lw=2.5)
    op(ax, (4.0, 6), "×", scale=scale)
    line(ax, [4.3, 6.7], [6, 6], color=cell if highlight != "forget" else hot, lw=2.5)
    op(ax, (7.0, 6), "+", scale=scale)
    arrow(ax, (7.3, 6), (12.2, 6), color=cell if highlight is None else faint, lw=2.5)
    ax.text(0.0, 6.3, r"$\mathbf{c}^{(t-1)}$", fontsize=14 * scale)
    ax.text(11.3, 6.3, r"$\mathbf{c}^{(t)}$", fontsize=14 * scale)
    # one bus carries h(t-1) and x(t) to all four blocks
    line(ax, [0.2, 9.6], [0.3, 0.3])
    ax.text(0.0, -0.3, r"$\mathbf{h}^{(t-1)}$", fontsize=14 * scale)
    arrow(ax, (2.2, -0.6), (2.2, 0.3))
    ax.text(2.4, -0.55, r"$\mathbf{x}^{(t)}$", fontsize=14 * scale)
    blocks = [
        (4.0, r"$\sigma$", r"$\mathbf{f}$", "#c6dbef", "forget"),
        (6.0, r"$\sigma$", r"$\mathbf{i}$", "#c6dbef", "write"),
        (8.0, r"$\tanh$", r"$\mathbf{g}$", "#fdd0a2", "write"),
        (9.6, r"$\sigma$", r"$\mathbf{o}$", "#c6dbef", "read"),
    ]
    for x, fn, name, face, part in blocks:
        lit = highlight is None or part == highlight
        arrow(ax, (x, 0.3), (x, 1.8), color=color(part))
        box(ax, (x, 2.2), fn, face if lit else "#eeeeee", fontsize=13 * scale)
        ax.text(x + 0.65, 2.55, name, fontsize=14 * scale, color="k" if lit else "0.6")
    # erase: f scales the old cell
    arrow(ax, (4.0, 2.6), (4.0, 5.7), color=color("forget"))
    # write: i times the candidate, added to the cell
    op(ax, (7.0, 4.0), "×", scale=scale)
    line(ax, [6.0, 6.0], [2.6, 4.0], color=color("write"))
    arrow(ax, (6.0, 4.0), (6.7, 4.0), color=color("write"))
    line(ax, [8.0, 8.0], [2.6, 4.0], color=color("write"))
    arrow(ax, (8.0, 4.0), (7.3, 4.0), color=color("write"))
    arrow(ax, (7.0, 4.3), (7.0, 5.7), color=color("write"))
    # read: h = o * tanh(c)
    line(ax, [10.4, 10.4], [6.0, 5.15], color=color("read", cell))
    box(ax, (10.4, 4.8), r"$\tanh$", "#fdd0a2" if highlight in (None, "read") else "#eeeeee",
        w=1.0, h=0.7, fontsize=13 * scale)  # fmt: skip
    arrow(ax, (10.4, 4.45), (10.4, 3.5), color=color("read"))
    op(ax, (10.4, 3.2), "×", scale=scale)
    line(ax, [9.6, 9.6], [2.6, 3.2], color=color("read"))
    arrow(ax, (9.6, 3.2), (10.1, 3.2), color=color("read"))
    arrow(ax, (10.7, 3.2), (12.2, 3.2), color=color("read"))
    ax.text(11.2, 3.5, r"$\mathbf{h}^{(t)}$", fontsize=14 * scale)


def draw_gru_step(ax: Axes, reset_after: bool) -> None:
    """One GRU step, with the reset gate before (the lecture) or after the recurrent product.

    The red path carries :math:`\\mathbf{h}^{(t-1)}` to :math:`\\mathbf{h}^{(t)}` scaled by
    :math:`1 - \\mathbf{u}`, with no weight matrix.
    """
    ax.set_xlim(-0.3, 14.3)
    ax.set_ylim(-0.8, 5.3)
    ax.set_aspect("equal")
    ax.axis("off")
    red = "tab:red"
    # the carry path: h(t-1) -> x (1 - u) -> + -> h(t)
    line(ax, [0.3, 10.7], [4.5, 4.5], color=red, lw=2.5)
    op(ax, (11.0, 4.5), "×")
    line(ax, [11.3, 12.2], [4.5, 4.5], color=red, lw=2.5)
    op(ax, (12.5, 4.5), "+")
    arrow(ax, (12.8, 4.5), (14.2, 4.5), color=red, lw=2.5)
    ax.text(0.0, 4.8, r"$\mathbf{h}^{(t-1)}$", fontsize=14)
    ax.text(13.1, 4.8, r"$\mathbf{h}^{(t)}$", fontsize=14)
    # the bus that brings h(t-1) and x(t) to the gates
    line(ax, [0.8, 0.8], [4.5, 0.2])
    line(ax, [0.8, 10.0], [0.2, 0.2])
    arrow(ax, (2.0, -0.7), (2.0, 0.2))
    ax.text(2.2, -0.65, r"$\mathbf{x}^{(t)}$", fontsize=14)
    arrow(ax, (3.0, 0.2), (3.0, 1.12))
    box(ax, (3.0, 1.5), r"$\sigma$: $\mathbf{r}$", "#c6dbef", w=1.3, h=0.75)
    arrow(ax, (10.0, 0.2), (10.0, 1.12))
    box(ax, (10.0, 1.5), r"$\sigma$: $\mathbf{u}$", "#c6dbef", w=1.3, h=0.75)
    # u controls the mix: (1 - u) on the carry path, u on the candidate
    line(ax, [10.65, 11.0], [1.5, 1.5])
    arrow(ax, (11.0, 1.5), (11.0, 4.2))
    ax.text(11.15, 3.9, r"$1-\mathbf{u}$", fontsize=12)
    op(ax, (12.5, 3.0), "×")
    line(ax, [10.6, 10.6], [1.88, 2.3])
    line(ax, [10.6, 12.5], [2.3, 2.3])
    arrow(ax, (12.5, 2.3), (12.5, 2.7))
    arrow(ax, (12.5, 3.3), (12.5, 4.2))
    # candidate path: reset and recurrent product in one of two orders
    line(ax, [5.0, 5.0], [4.5, 3.38])
    if reset_after:
        box(ax, (5.0, 3.0), r"$W_{h\tilde{h}}$", "#eeeeee", w=1.3, h=0.75)
        arrow(ax, (5.65, 3.0), (6.2, 3.0))
        op(ax, (6.5, 3.0), "×")
        line(ax, [3.0, 3.0], [1.88, 2.3])
        line(ax, [3.0, 6.5], [2.3, 2.3])
        arrow(ax, (6.5, 2.3), (6.5, 2.7))
        start = 6.8
        title = "reset after: r ⊙ (W h), torch.nn.GRU"
    else:
        arrow(ax, (5.0, 3.8), (5.0, 3.3))
        op(ax, (5.0, 3.0), "×")
        line(ax, [3.0, 3.0], [1.88, 3.0])
        arrow(ax, (3.0, 3.0), (4.7, 3.0))
        arrow(ax, (5.3, 3.0), (5.85, 3.0))
        box(ax, (6.5, 3.0), r"$W_{h\tilde{h}}$", "#eeeeee", w=1.3, h=0.75)
        start = 7.15
        title = "reset before: W (r ⊙ h), the lecture"
    arrow(ax, (start, 3.0), (7.85, 3.0))
    box(ax, (8.5, 3.0), r"$\tanh$", "#fdd0a2", w=1.3, h=0.75)
    arrow(ax, (8.5, 0.2), (8.5, 2.62))  # the input's contribution to the candidate
    line(ax, [9.15, 9.4], [3.0, 3.0])
    line(ax, [9.4, 9.4], [3.0, 3.6])
    line(ax, [9.4, 12.0], [3.6, 3.6])
    arrow(ax, (12.0, 3.6), (12.29, 3.21))
    ax.text(9.5, 3.75, r"$\tilde{\mathbf{h}}$", fontsize=14)
    ax.set_title(title, fontsize=12)


def text_heatmap(
    ax: Axes,
    text: str,
    values: Sequence[float] | Tensor,
    *,
    width: int = 64,
    cmap: str = "RdBu_r",
    fontsize: int = 10,
) -> None:
    """Show ``text`` in a monospaced grid, each character on a color given by its value.

    Values are scaled symmetrically around zero (blue negative, red positive); line
    breaks in the text start a new row, and rows wrap after ``width`` characters.
    """
    v = torch.as_tensor(values, dtype=torch.float64)
    if len(v) != len(text):
        raise ValueError(f"values must have one entry per character, got {len(v)} for {len(text)}")
    scale = max(v.abs().max().item(), 1e-12)
    colormap = plt.get_cmap(cmap)
    row, col = 0, 0
    for char, value in zip(text, v.tolist(), strict=True):
        if char == "\n" or col == width:
            row, col = row + 1, 0
            if char == "\n":
                continue
        ax.add_patch(
            # pale ends of the colormap, so that the character stays readable
            plt.Rectangle((col, -row - 1), 1, 1, color=colormap(0.5 + 0.35 * value / scale), lw=0)
        )
        ax.text(col + 0.5, -row - 0.5, char, ha="center", va="center", fontsize=fontsize,
                family="monospace")  # fmt: skip
        col += 1
    ax.set_xlim(0, width)
    ax.set_ylim(-row - 1, 0)
    ax.set_aspect("equal")
    ax.axis("off")
