"""The implementation chapter's figures: each draws what it claims, with labels and titles."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bnguide import conditioning, numerics  # noqa: E402
from bnguide.outside_normalization import simulate_bias_drift  # noqa: E402
from bnguide.plots import implementation  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _labelled(ax):
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert ax.get_legend() is not None


def test_plot_conditioning():
    x, y = conditioning.make_regression(n=50)
    results = {
        m: conditioning.gradient_descent(conditioning.preprocess(x, m), y, steps=20)
        for m in ("raw", "standardize")
    }
    ax = implementation.plot_conditioning(results)
    _labelled(ax)
    assert len(ax.get_lines()) == 2


def test_plot_bias_drift():
    axes = implementation.plot_bias_drift(
        simulate_bias_drift(steps=5), simulate_bias_drift(steps=5, mean_in_graph=True)
    )
    for ax in axes:
        _labelled(ax)
        assert len(ax.get_lines()) == 2


def test_plot_running_averages():
    values = np.arange(10.0)
    ax = implementation.plot_running_averages(values, {"a": values * 0.5, "b": values * 0.9})
    _labelled(ax)
    assert len(ax.get_lines()) == 3


def test_plot_variance_error():
    ax = implementation.plot_variance_error(numerics.variance_error_sweep([1.0, 10.0], n=64))
    _labelled(ax)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


def test_plot_gamma_beta():
    ax = implementation.plot_gamma_beta({"a": (1.0, 0.0), "b": (2.0, 1.0)})
    _labelled(ax)
    assert len(ax.patches) == 2  # one histogram per setting
