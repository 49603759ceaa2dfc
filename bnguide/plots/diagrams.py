"""Schematic drawings: a small multilayer perceptron without and with batch-norm layers.

Drawn with matplotlib shapes, no data involved. Used in chapter *Batch norm in 30 seconds*.

Examples
--------
>>> from bnguide.plots.diagrams import plot_mlp
>>> ax = plot_mlp((4, 5, 5, 3), batch_norm=True, title="With BN")
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyBboxPatch

from bnguide.style import COLORS

__all__ = ["plot_mlp"]


def _column(size: int, x: float, height: float = 4.0) -> list[tuple[float, float]]:
    # evenly spaced neuron centres, vertically centred on 0
    step = height / max(size - 1, 1)
    return [(x, (i - (size - 1) / 2) * step) for i in range(size)]


def plot_mlp(
    layer_sizes: Sequence[int] = (4, 5, 5, 3),
    *,
    batch_norm: bool = False,
    ax=None,
    title: str | None = None,
):
    """Draw an MLP: inputs, hidden layers (linear map then activation), outputs.

    With ``batch_norm``, a BN block sits in every hidden layer between the linear map and the
    activation, as in Ioffe & Szegedy's networks.

    Parameters
    ----------
    layer_sizes : sequence of int
        Neurons per layer, input first and output last (at least 3 layers).
    batch_norm : bool
        Draw the BN blocks.
    ax : matplotlib Axes, optional
    title : str, optional
        Default: "MLP without BN" or "MLP with BN".

    Returns
    -------
    matplotlib Axes
    """
    if len(layer_sizes) < 3 or min(layer_sizes) < 1:
        raise ValueError(
            f"plot_mlp: need an input, at least one hidden and an output layer, each with at "
            f"least one neuron; got layer_sizes={tuple(layer_sizes)}."
        )
    ax = ax or plt.gca()
    gap = 3.0
    columns = [_column(size, gap * i) for i, size in enumerate(layer_sizes)]
    edge = COLORS["bn"] if batch_norm else COLORS["baseline"]
    for left, right in zip(columns[:-1], columns[1:], strict=True):
        for x0, y0 in left:
            for x1, y1 in right:
                ax.plot([x0, x1], [y0, y1], color="#bbbbbb", lw=0.6, zorder=1)
    last = len(columns) - 1
    for i, column in enumerate(columns):
        hidden = 0 < i < last
        for x, y in column:
            face = "#f2f2f2" if not hidden else "white"
            ax.add_patch(Circle((x, y), 0.32, facecolor=face, edgecolor="#333333", zorder=3))
            if hidden:
                ax.text(x, y, "σ", ha="center", va="center", fontsize=9, zorder=4)
        name = "input" if i == 0 else "output" if i == last else f"hidden {i}"
        ax.text(column[0][0], -2.9, name, ha="center", va="top", fontsize=9)
        if hidden and batch_norm:
            top = column[-1][1] + 0.55
            box = FancyBboxPatch(
                (column[0][0] - 1.25, -top),
                0.55,
                2 * top,
                boxstyle="round,pad=0.05",
                facecolor=COLORS["bn"],
                edgecolor=COLORS["bn"],
                alpha=0.9,
                zorder=2,
            )
            ax.add_patch(box)
            ax.text(
                column[0][0] - 0.975,
                0,
                "BN",
                rotation=90,
                ha="center",
                va="center",
                color="white",
                fontsize=10,
                fontweight="bold",
                zorder=4,
            )
    ax.set_title(title or ("MLP with BN" if batch_norm else "MLP without BN"), color=edge)
    ax.set_xlim(-1.0, gap * last + 1.0)
    ax.set_ylim(-3.4, 2.8)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax
