"""Section 3.3 of Ioffe & Szegedy in float64, and the init-scale and saturation experiments."""

import numpy as np
import pytest

from bnguide import experiments
from bnguide.experiments import init_scale, saturation
from bnguide.scale_invariance import check_rescaling


def test_rescaling_identities_hold_to_float64_precision():
    check = check_rescaling(scales=(1e-4, 0.5, 3.0, 1e4), seed=1)
    for errors in (check.output_error, check.jacobian_error, check.gradient_error):
        assert errors.shape == (4,) and errors.max() < 1e-13
    assert check.orthogonality < 1e-13


def test_eps_breaks_the_identity_for_small_weights():
    # with eps > 0 the variance of a tiny a * W u is swamped by eps: the identities fail, and
    # fail less the larger a is
    check = check_rescaling(scales=(1e-3, 1e-1, 10.0), eps=1e-3)
    assert check.gradient_error[0] > 0.1
    assert np.all(np.diff(check.gradient_error) < 0)


def test_rescaling_rejects_bad_input():
    with pytest.raises(ValueError, match="positive numbers"):
        check_rescaling(scales=(1.0, -2.0))
    with pytest.raises(ValueError, match="n must be at least 2"):
        check_rescaling(n=1)


def test_experiments_are_listed():
    found = experiments.available()
    assert found["init-scale"] is init_scale and found["saturation"] is saturation
    hash(init_scale.Config()) and hash(saturation.Config())


def test_config_errors():
    with pytest.raises(ValueError, match="positive weight standard deviations"):
        init_scale.Config(stds=(0.1, 0.0))
    with pytest.raises(ValueError, match="examples must be"):
        saturation.Config(examples=1)


def test_init_scale_tiny_run():
    config = init_scale.Config(stds=(1e-3, 1.0), seeds=(0, 1), hidden=(8, 8), steps=3)
    result = init_scale.run(config)
    for name in ("plain", "bn"):
        assert result.accuracy[name].shape == (2, 2)
        assert ((0 <= result.accuracy[name]) & (result.accuracy[name] <= 1)).all()
    # BN's forward pass ignores the weight scale: same predictions at init for both scales,
    # up to eps (the tiny scale's variance is comparable to eps only in deep layers)
    assert result.gamma.shape == (2, 2, 2, 8)
    # section 3.3: the gradient wrt small weights is large, so they grow in relative terms
    assert (result.weight_growth["bn"][0] > result.weight_growth["bn"][1]).all()


def test_saturation_tiny_run():
    config = saturation.Config(seeds=(0, 1), hidden=(8, 8, 8), steps=2, examples=50)
    result = saturation.run(config)
    for variant in ("sigmoid", "bn-sigmoid"):
        for moment in ("init", "trained"):
            stats = result.stats[variant][moment]
            assert stats.saturated.shape == (2, 3)
            assert np.allclose(stats.activation_hist.sum(-1), 1)
