"""The diagnostics figures, drawn from tiny real runs of their experiments."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from bnguide.experiments import init_scale, saturation  # noqa: E402
from bnguide.plots import diagnostics  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def scale_result():
    return init_scale.run(init_scale.Config(stds=(1e-2, 1.0), seeds=(0, 1), hidden=(6, 6), steps=2))


def test_plot_layer_histograms():
    result = saturation.run(saturation.Config(seeds=(0,), hidden=(5, 5, 5), steps=1, examples=20))
    axes = diagnostics.plot_layer_histograms(result)
    assert axes.shape == (2, 4)
    for ax in axes[0]:
        assert ax.get_title() and ax.get_xlabel()
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert len(labels) == 3 and all("saturated" in s for s in labels)
    assert "no BN" in axes[0, 0].get_title() and "BN" in axes[0, 3].get_title()
    with pytest.raises(ValueError, match=r"\(2, 4\) grid"):
        diagnostics.plot_layer_histograms(result, axes=plt.subplots(1, 2)[1])


def test_plot_init_scale(scale_result):
    ax = diagnostics.plot_init_scale(scale_result)
    assert ax.get_xscale() == "log" and ax.get_title() and ax.get_ylabel()
    # a mean line and one dot series per seed, per variant; plus chance
    assert len(ax.get_lines()) == 2 * (1 + 2) + 1


def test_plot_learned_affine(scale_result):
    axes = diagnostics.plot_learned_affine(scale_result, std=1.0)
    for ax in axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_legend() is not None
    with pytest.raises(ValueError, match="was not run"):
        diagnostics.plot_learned_affine(scale_result, std=0.5)
