"""The schematic drawings: each draws the parts it names, reduces over the right entries, and
refuses bad input with a message."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bnguide.plots import diagrams  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _gid(ax, gid):
    return [p for p in [*ax.patches, *ax.lines, *ax.texts] if p.get_gid() == gid]


@pytest.mark.parametrize("batch_norm", [False, True])
def test_plot_mlp(batch_norm):
    ax = diagrams.plot_mlp((3, 4, 2), batch_norm=batch_norm)
    # inputs and outputs: one node each; a hidden neuron: a sum and an activation
    assert len(_gid(ax, "node")) == 3 + 2 * 4 + 2
    # every node is a stack: the examples of the batch behind it
    assert len(_gid(ax, "stack")) == (diagrams._STACK - 1) * len(_gid(ax, "node"))
    assert len(_gid(ax, "bn")) == (1 if batch_norm else 0)
    assert len(_gid(ax, "edge")) == 3 * 4 + 4 * 2
    assert ("with BN" if batch_norm else "without BN") in ax.get_title()


def test_bn_bar_crosses_no_incoming_edge():
    ax = diagrams.plot_mlp((4, 5, 5, 3), batch_norm=True)
    bars = _gid(ax, "bn")
    assert len(bars) == 2
    for bar in bars:
        x0, x1 = bar.get_x(), bar.get_x() + bar.get_width()
        for edge in _gid(ax, "edge"):
            xs = edge.get_xdata()
            assert max(xs) < x0 or min(xs) > x1  # edges between layers end before the bar
        # only a neuron's own sum -> activation connectors pass through it
        through = [c for c in _gid(ax, "connector") if min(c.get_xdata()) < x0 < max(c.get_xdata())]
        assert len(through) == 5


def test_plot_mlp_rejects_too_few_layers():
    with pytest.raises(ValueError, match="at least one hidden"):
        diagrams.plot_mlp((3, 2))


def test_plot_reduction_axes_shades_a_column_and_a_row():
    bn, ln = diagrams.plot_reduction_axes(n=6, d=5)
    cols = {p.get_x() for p in _gid(bn, "reduced")}
    rows = {p.get_y() for p in _gid(bn, "reduced")}
    assert len(cols) == 1 and len(rows) == 6  # one feature, every example
    cols = {p.get_x() for p in _gid(ln, "reduced")}
    rows = {p.get_y() for p in _gid(ln, "reduced")}
    assert len(cols) == 5 and len(rows) == 1  # one example, every feature
    assert bn.get_title() == "batch norm" and ln.get_title() == "layer norm"
    with pytest.raises(ValueError, match="n, d >= 2"):
        diagrams.plot_reduction_axes(n=1)


def _front_face(ax):
    # the first polygon of the reduced block is its front face: (x range, y range)
    pts = _gid(ax, "reduced")[0].get_xy()
    return np.ptp(pts[:, 0]), np.ptp(pts[:, 1])


def _top_depth(ax):
    # the second polygon is its top face; its extent in y is half the depth (oblique drawing)
    pts = _gid(ax, "reduced")[1].get_xy()
    return 2 * np.ptp(pts[:, 1])


@pytest.mark.parametrize(
    ("kind", "width", "depth"),
    [("batch", 4, 1), ("layer", 1, 6), ("instance", 1, 1), ("group", 1, 3)],
)
def test_plot_norm_cube_reduces_over_the_right_entries(kind, width, depth):
    # n=4 examples, c=6 channels, 2 groups of 3: the reduced block spans `width` examples and
    # `depth` channels, and always the whole spatial extent
    ax = diagrams.plot_norm_cube(kind, n=4, c=6, hw=4, groups=2)
    w, h = _front_face(ax)
    assert (w, h) == (width, 4)
    assert _top_depth(ax) == pytest.approx(depth)
    assert ax.get_title() == diagrams.NORM_KINDS[kind]


def test_plot_norm_cube_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown kind 'weight'"):
        diagrams.plot_norm_cube("weight")
    with pytest.raises(ValueError, match="groups must divide c"):
        diagrams.plot_norm_cube("group", c=5, groups=2)


def test_plot_backward_graph_has_a_backward_arrow_for_every_forward_one():
    ax = diagrams.plot_backward_graph()
    forward, backward = _gid(ax, "forward"), _gid(ax, "backward")
    assert len(forward) == len(backward) == len(diagrams._GRAPH_EDGES)
    # three edges leave x's consumers back to x: direct, via the mean, via the variance chain
    into_x = [(a, b) for a, b in diagrams._GRAPH_EDGES if a == "x"]
    assert len(into_x) == 2 and ("mu", "xc") in diagrams._GRAPH_EDGES
    assert len(_gid(ax, "node")) == len(diagrams._GRAPH_NODES)
    assert ax.get_legend() is not None


def test_plot_landscape_probe():
    left, right = diagrams.plot_landscape_probe(etas=(0.05, 0.1, 0.2))
    assert left.get_title() and right.get_xlabel() and right.get_ylabel()
    probe_points = left.get_lines()[1]
    assert len(probe_points.get_xdata()) == 3
    # the probe points lie on a line through w (steps along one direction)
    w = np.array([left.get_lines()[0].get_xdata()[0], left.get_lines()[0].get_ydata()[0]])
    d = np.c_[probe_points.get_xdata(), probe_points.get_ydata()] - w
    assert np.allclose(d[0, 0] * d[1:, 1] - d[0, 1] * d[1:, 0], 0, atol=1e-12)
    with pytest.raises(ValueError, match="two positive etas"):
        diagrams.plot_landscape_probe(etas=(0.1, -0.1))
