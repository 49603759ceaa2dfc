"""Schematic drawings: the network with and without BN, the axes each normalizer reduces over,
BN's backward graph and the landscape probe.

Drawn with matplotlib shapes, no data involved. Used in chapters *Batch norm in 30 seconds*
(:func:`plot_mlp`), *Backpropagating through BN* (:func:`plot_backward_graph`), *Recurrent nets
and layer normalization* (:func:`plot_reduction_axes`), *The other normalizers*
(:func:`plot_norm_cube`) and *Hypothesis 3* (:func:`plot_landscape_probe`).

Every drawn element that a test or a reader may look for carries a ``gid``: ``"node"``,
``"bn"``, ``"edge"`` (between layers), ``"connector"`` (inside a neuron), ``"reduced"`` (the
entries one normalization statistic is computed over).

Examples
--------
>>> from bnguide.plots.diagrams import plot_mlp, plot_norm_cube
>>> ax = plot_mlp((4, 5, 5, 3), batch_norm=True, title="With BN")
>>> ax = plot_norm_cube("group")
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Polygon, Rectangle

from bnguide.style import COLORS

__all__ = [
    "NORM_KINDS",
    "plot_backward_graph",
    "plot_landscape_probe",
    "plot_mlp",
    "plot_norm_cube",
    "plot_reduction_axes",
]

_STACK = 3  # examples drawn behind every node: the mini-batch flowing through the net
_GREY = "#bbbbbb"


def _column(size: int, x: float, height: float = 4.0) -> list[tuple[float, float]]:
    # evenly spaced neuron centres, vertically centred on 0
    step = height / max(size - 1, 1)
    return [(x, (i - (size - 1) / 2) * step) for i in range(size)]


def _node(ax, x, y, text, face="white", r=0.3):
    # a node and, behind it, the other examples of the batch (offset up and right)
    for k in range(_STACK - 1, 0, -1):
        shift = 0.11 * k
        ax.add_patch(
            Circle(
                (x + shift, y + shift),
                r,
                facecolor=face,
                edgecolor="#999999",
                lw=0.7,
                zorder=2,
                gid="stack",
            )
        )
    ax.add_patch(Circle((x, y), r, facecolor=face, edgecolor="#333333", zorder=3, gid="node"))
    if text:
        ax.text(x, y, text, ha="center", va="center", fontsize=9, zorder=4)


def plot_mlp(
    layer_sizes: Sequence[int] = (4, 5, 5, 3),
    *,
    batch_norm: bool = False,
    ax=None,
    title: str | None = None,
):
    """Draw an MLP through which a mini-batch flows: inputs, hidden neurons, outputs.

    Every node is drawn as a small stack (the examples of the mini-batch). A hidden neuron is
    two nodes: the weighted sum :math:`\\Sigma` that receives the edges of the layer below and
    the activation :math:`\\sigma`. With ``batch_norm``, a BN bar sits between the two, as in
    Ioffe & Szegedy's networks: it normalizes each neuron's sum over the batch, and no edge
    from the layer below crosses it.

    Parameters
    ----------
    layer_sizes : sequence of int
        Neurons per layer, input first and output last (at least 3 layers).
    batch_norm : bool
        Draw the BN bars.
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
    gap, inner = 3.6, 1.5  # between layers; between a neuron's sum and its activation
    last = len(layer_sizes) - 1
    columns = [_column(size, gap * i) for i, size in enumerate(layer_sizes)]
    edge = COLORS["bn"] if batch_norm else COLORS["baseline"]
    # the x of what leaves each layer: the activation of a hidden neuron, the input itself
    out_x = [x0 + (inner if 0 < i < last else 0.0) for i, ((x0, _), *_) in enumerate(columns)]
    for i in range(last):
        for y0 in (y for _, y in columns[i]):
            for x1, y1 in columns[i + 1]:
                ax.plot([out_x[i], x1], [y0, y1], color=_GREY, lw=0.6, zorder=1, gid="edge")
    for i, column in enumerate(columns):
        hidden = 0 < i < last
        for x, y in column:
            if hidden:
                _node(ax, x, y, "Σ")
                ax.plot([x, x + inner], [y, y], color="#555555", lw=1.0, zorder=1, gid="connector")
                _node(ax, x + inner, y, "σ")
            else:
                _node(ax, x, y, "", face="#f2f2f2")
        name = "input batch" if i == 0 else "output" if i == last else f"hidden {i}"
        ax.text((column[0][0] + out_x[i]) / 2, -2.75, name, ha="center", va="top", fontsize=9)
        if hidden and batch_norm:
            top = column[-1][1] + 0.6
            ax.add_patch(
                FancyBboxPatch(
                    (column[0][0] + inner / 2 - 0.2, -top),
                    0.4,
                    2 * top,
                    boxstyle="round,pad=0.04",
                    facecolor=COLORS["bn"],
                    edgecolor=COLORS["bn"],
                    alpha=0.9,
                    zorder=2.5,
                    gid="bn",
                )
            )
            ax.text(
                column[0][0] + inner / 2,
                top + 0.2,
                "BN",
                ha="center",
                va="bottom",
                color=COLORS["bn"],
                fontsize=10,
                fontweight="bold",
            )
    ax.annotate(
        "each node: one value\nper example of the batch",
        xy=(columns[0][-1][0] + 0.25, columns[0][-1][1] + 0.25),
        xytext=(columns[0][0][0] - 0.6, columns[0][-1][1] + 1.1),
        fontsize=8,
        color="#555555",
        ha="left",
        arrowprops={"arrowstyle": "-", "color": "#999999", "lw": 0.7},
    )
    ax.set_title(title or ("MLP with BN" if batch_norm else "MLP without BN"), color=edge)
    ax.set_xlim(-1.0, gap * last + 1.0)
    ax.set_ylim(-3.3, 3.6)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


def plot_reduction_axes(n: int = 6, d: int = 5, *, axes=None):
    """Which entries of an ``(N, D)`` batch share one mean and variance: BN vs LayerNorm.

    BN computes one statistic per feature over the batch (a column); LayerNorm one per example
    over its features (a row). One column, resp. row, is shaded; arrows show the reduced axis.

    Parameters
    ----------
    n, d : int
        Rows (examples) and columns (features) drawn, at least 2 each.
    axes : pair of matplotlib Axes, optional

    Returns
    -------
    pair of matplotlib Axes
    """
    if int(n) != n or int(d) != d or n < 2 or d < 2:
        raise ValueError(f"plot_reduction_axes: need n, d >= 2 (integers), got n={n}, d={d}.")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    kinds = (("batch norm", COLORS["bn"], "column"), ("layer norm", COLORS["alt1"], "row"))
    for ax, (name, color, along) in zip(axes, kinds, strict=True):
        for i in range(n):
            for j in range(d):
                shaded = j == 1 if along == "column" else i == 1
                ax.add_patch(
                    Rectangle(
                        (j, n - 1 - i),
                        1,
                        1,
                        facecolor=color if shaded else "white",
                        alpha=0.75 if shaded else 1.0,
                        edgecolor="#555555",
                        lw=0.8,
                        gid="reduced" if shaded else "cell",
                    )
                )
        if along == "column":
            ax.add_patch(
                FancyArrowPatch(
                    (1.5, n + 0.1),
                    (1.5, -0.1),
                    arrowstyle="<->",
                    mutation_scale=12,
                    color="#222222",
                    lw=1.2,
                    zorder=5,
                )
            )
            note = "one mean and variance\nper feature, over the N examples"
        else:
            ax.add_patch(
                FancyArrowPatch(
                    (-0.1, n - 1.5),
                    (d + 0.1, n - 1.5),
                    arrowstyle="<->",
                    mutation_scale=12,
                    color="#222222",
                    lw=1.2,
                    zorder=5,
                )
            )
            note = "one mean and variance\nper example, over the D features"
        ax.text(d / 2, -0.35, "features (D)", ha="center", va="top", fontsize=9)
        ax.text(-0.35, n / 2, "examples (N)", ha="right", va="center", rotation=90, fontsize=9)
        ax.text(d / 2, -1.0, note, ha="center", va="top", fontsize=9, color="#333333")
        ax.set_title(name, color=color)
        ax.set_xlim(-1.0, d + 0.3)
        ax.set_ylim(-2.2, n + 0.4)
        ax.set_aspect("equal")
        ax.axis("off")
    return axes


NORM_KINDS = {
    "batch": "batch norm",
    "layer": "layer norm",
    "instance": "instance norm",
    "group": "group norm",
}


def _box(ax, x0, x1, y0, y1, z0, z1, face, gid, alpha=1.0, right=True):
    """The front (z = z0), top (y = y1) and, if ``right``, right faces of a cuboid.

    Oblique projection: depth z goes up and to the right by half its length.
    """

    def p(x, y, z):
        return (x + 0.5 * z, y + 0.5 * z)

    faces = [
        [p(x0, y0, z0), p(x1, y0, z0), p(x1, y1, z0), p(x0, y1, z0)],  # front
        [p(x0, y1, z0), p(x1, y1, z0), p(x1, y1, z1), p(x0, y1, z1)],  # top
        [p(x1, y0, z0), p(x1, y0, z1), p(x1, y1, z1), p(x1, y1, z0)],  # right
    ]
    shades = (1.0, 0.82, 0.68)
    if not right:  # hidden behind the rest of the cube
        faces, shades = faces[:2], shades[:2]
    for pts, shade in zip(faces, shades, strict=True):
        if face == "white":
            color = (shade, shade, shade)
        else:
            color = face
        ax.add_patch(
            Polygon(
                pts,
                closed=True,
                facecolor=color,
                edgecolor="#444444",
                lw=0.8,
                alpha=alpha * (1.0 if face == "white" else shade),
                gid=gid,
            )
        )


def plot_norm_cube(kind: str, *, n: int = 4, c: int = 6, hw: int = 4, groups: int = 2, ax=None):
    """The ``N x C x (H, W)`` activation tensor, with the entries one statistic is computed over.

    As in Wu & He's Figure 2 (Group Normalization): batch norm reduces over ``N, H, W`` for one
    channel, layer norm over ``C, H, W`` for one example, instance norm over ``H, W`` for one
    example and channel, group norm over ``H, W`` and one group of channels for one example.

    Parameters
    ----------
    kind : {"batch", "layer", "instance", "group"}
    n, c, hw : int
        Examples, channels and spatial size drawn (the H and W axes share one edge).
    groups : int
        Channel groups for ``kind="group"``; must divide ``c``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    if kind not in NORM_KINDS:
        raise ValueError(
            f"plot_norm_cube: unknown kind {kind!r}; use one of {', '.join(map(repr, NORM_KINDS))}."
        )
    if min(n, c, hw, groups) < 1 or c % groups:
        raise ValueError(
            f"plot_norm_cube: n, c, hw and groups must be positive and groups must divide c; "
            f"got n={n}, c={c}, hw={hw}, groups={groups}."
        )
    ax = ax or plt.gca()
    color = {"batch": COLORS["bn"], "layer": COLORS["alt1"], "instance": COLORS["alt2"]}.get(
        kind, COLORS["alt3"]
    )
    # axes: N to the right (x), H,W up (y), C into the page (z); the reduced block touches the
    # front-top so that its faces are visible
    _box(ax, 0, n, 0, hw, 0, c, "white", "cube")
    x1 = n if kind == "batch" else 1
    z1 = {"batch": 1, "layer": c, "instance": 1, "group": c // groups}[kind]
    _box(ax, 0, x1, 0, hw, 0, z1, color, "reduced", alpha=0.85, right=x1 == n)
    ax.text(n / 2, -0.35, "N (examples)", ha="center", va="top", fontsize=9)
    ax.text(-0.3, hw / 2, "H, W", ha="right", va="center", fontsize=9)
    ax.text(
        n + 0.5 * c + 0.25,
        hw + 0.25 * c,
        "C (channels)",
        ha="left",
        va="center",
        fontsize=9,
        rotation=0,
    )
    ax.set_title(NORM_KINDS[kind], color=color)
    ax.set_xlim(-1.2, n + 0.5 * c + 2.6)
    ax.set_ylim(-1.0, hw + 0.5 * c + 0.4)
    ax.set_aspect("equal")
    ax.axis("off")
    return ax


# (label, x, y) of every node of the graph, forward from left to right
_GRAPH_NODES = {
    "x": ("$x$", 0.0, 1.0),
    "mu": ("$\\mu = \\frac{1}{N}\\sum_i x_i$", 2.0, 2.2),
    "xc": ("$x - \\mu$", 4.0, 1.0),
    "var": ("$\\sigma^2 = \\frac{1}{N}\\sum_i (x_i-\\mu)^2$", 6.0, 2.2),
    "inv": ("$1/\\sqrt{\\sigma^2+\\epsilon}$", 8.0, 2.2),
    "xhat": ("$\\hat x$", 8.0, 1.0),
    "y": ("$y = \\gamma \\hat x + \\beta$", 10.0, 1.0),
    "gamma": ("$\\gamma, \\beta$", 10.0, 2.2),
    "loss": ("$L$", 12.0, 1.0),
}
_GRAPH_EDGES = [
    ("x", "mu"),
    ("x", "xc"),
    ("mu", "xc"),
    ("xc", "var"),
    ("var", "inv"),
    ("inv", "xhat"),
    ("xc", "xhat"),
    ("xhat", "y"),
    ("gamma", "y"),
    ("y", "loss"),
]


def plot_backward_graph(ax=None):
    """BN's forward pass as a computational graph, with the backward pass running against it.

    Black arrows: the forward pass, one node per intermediate (the staged graph of CS231n's
    assignment). Red dashed arrows: the gradient flowing back along every edge; at ``x`` three
    paths meet (directly, through the mean and through the variance), which is why the short
    formula of the backward chapter has three terms.

    Parameters
    ----------
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = ax or plt.gca()
    for key, (label, x, y) in _GRAPH_NODES.items():
        face = "#fde0cc" if key == "loss" else "#e8f1f8" if key != "gamma" else "#f2f2f2"
        ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=10,
            zorder=3,
            gid="node",
            bbox={"boxstyle": "round,pad=0.35", "facecolor": face, "edgecolor": "#555555"},
        )
    for a, b in _GRAPH_EDGES:
        (_, xa, ya), (_, xb, yb) = _GRAPH_NODES[a], _GRAPH_NODES[b]
        ax.add_patch(
            FancyArrowPatch(
                (xa, ya),
                (xb, yb),
                arrowstyle="-|>",
                mutation_scale=11,
                color="#222222",
                lw=1.1,
                shrinkA=22,
                shrinkB=22,
                zorder=2,
                gid="forward",
            )
        )
        ax.add_patch(
            FancyArrowPatch(
                (xb, yb - 0.12),
                (xa, ya - 0.12),
                arrowstyle="-|>",
                mutation_scale=9,
                color=COLORS["baseline"],
                lw=1.0,
                ls="--",
                shrinkA=22,
                shrinkB=22,
                zorder=2,
                connectionstyle="arc3,rad=0.25",
                gid="backward",
            )
        )
    ax.text(
        0.0,
        0.15,
        "three paths back to $x$:\ndirect, via $\\mu$, via $\\sigma^2$",
        ha="left",
        va="top",
        fontsize=9,
        color=COLORS["baseline"],
    )
    ax.plot([], [], color="#222222", label="forward")
    ax.plot([], [], color=COLORS["baseline"], ls="--", label="backward (gradients)")
    ax.legend(loc="upper right", fontsize=9)
    ax.set_title("Batch norm as a computational graph")
    ax.set_xlim(-0.8, 12.8)
    ax.set_ylim(-0.6, 3.0)
    ax.axis("off")
    return ax


def _bowl(w1, w2):
    # a narrow valley with a ripple: the landscape the probe explores
    return 0.5 * w1**2 + 4.0 * w2**2 + 0.3 * np.sin(3 * w1)


def plot_landscape_probe(*, etas: Sequence[float] = (0.05, 0.1, 0.15, 0.2), axes=None):
    """Santurkar et al.'s probe on a made-up two-weight loss: step along ``-eta g`` and look.

    Left: the loss contours, the current weights ``w``, the gradient direction and the points
    ``w - eta g`` for several ``eta``. Right: the loss at those points (their spread is the
    "loss landscape" band of the why part) and how far the gradient there is from ``g`` (the
    "gradient predictiveness" band).

    Parameters
    ----------
    etas : sequence of float
        Step sizes probed, positive.
    axes : pair of matplotlib Axes, optional

    Returns
    -------
    pair of matplotlib Axes
    """
    etas = np.asarray(etas, dtype=float)
    if etas.ndim != 1 or len(etas) < 2 or not (etas > 0).all():
        raise ValueError(f"plot_landscape_probe: need at least two positive etas, got {etas}.")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    left, right = axes
    w = np.array([1.6, 0.35])

    def grad(p):
        return np.array([p[0] + 0.9 * np.cos(3 * p[0]), 8.0 * p[1]])

    g = grad(w)
    g_unit = g / np.linalg.norm(g)
    points = w[None] - etas[:, None] * g[None]  # (K, 2): steps along -g
    a, b = np.meshgrid(np.linspace(-2.2, 2.2, 200), np.linspace(-0.9, 0.9, 120))
    left.contour(a, b, _bowl(a, b), levels=14, colors="#bbbbbb", linewidths=0.7)
    left.plot(*w, "o", color="#222222", label="current weights $w$", zorder=4)
    left.annotate(
        "",
        xy=w - 0.8 * g_unit,
        xytext=w,
        arrowprops={"arrowstyle": "-|>", "color": "#222222", "lw": 1.4},
    )
    left.plot(points[:, 0], points[:, 1], "o", color=COLORS["bn"], label="$w - \\eta g$", zorder=4)
    left.set_title("Probe: steps along $-\\eta g$")
    left.set_xlabel("weight 1")
    left.set_ylabel("weight 2")
    left.legend(loc="lower left")
    losses = _bowl(points[:, 0], points[:, 1])
    changes = [np.linalg.norm(grad(p) - g) for p in points]
    right.plot(etas, losses, "o-", color=COLORS["bn"], label="loss at $w - \\eta g$")
    right.plot(
        etas, changes, "s--", color=COLORS["baseline"], label="$\\|\\nabla L(w-\\eta g) - g\\|$"
    )
    right.fill_between(
        etas, losses.min(), losses.max(), color=COLORS["bn"], alpha=0.12, label="spread of the loss"
    )
    right.set_title("What the probe records")
    right.set_xlabel("step size $\\eta$")
    right.set_ylabel("value")
    right.legend()
    return axes
