"""The bias-drift demonstration of normalizing outside the gradient step."""

import numpy as np
import pytest

from bnguide.outside_normalization import simulate_bias_drift


def test_mean_outside_the_step_drifts_linearly_and_the_loss_is_flat():
    r = simulate_bias_drift(steps=50, lr=0.2, mean_in_graph=False, seed=1)
    assert r.bias.shape == (51, 4) and r.loss.shape == (51,)
    steps = np.diff(r.bias, axis=0)  # the same update every step
    np.testing.assert_allclose(steps, np.broadcast_to(steps[0], steps.shape), rtol=1e-10)
    assert np.linalg.norm(r.bias[-1]) > 1.0
    assert np.ptp(r.loss) < 1e-10


def test_drift_goes_towards_the_targets_mean_and_scales_with_the_learning_rate():
    # targets have mean about +1 and x_hat has mean 0, so b is pushed up, at a rate set by lr
    slow = simulate_bias_drift(steps=1, lr=0.1, mean_in_graph=False, n=64, d=2, seed=2)
    fast = simulate_bias_drift(steps=1, lr=0.3, mean_in_graph=False, n=64, d=2, seed=2)
    assert np.all(slow.bias[1] > 0)
    np.testing.assert_allclose(fast.bias[1], 3 * slow.bias[1], rtol=1e-12)


def test_mean_inside_the_step_leaves_the_bias_alone():
    r = simulate_bias_drift(steps=30, mean_in_graph=True, seed=3)
    assert np.abs(r.bias).max() < 1e-12
    outside = simulate_bias_drift(steps=30, mean_in_graph=False, seed=3)
    np.testing.assert_allclose(r.loss, outside.loss, rtol=1e-12)


def test_rejects_zero_steps():
    with pytest.raises(ValueError, match="steps must be at least 1"):
        simulate_bias_drift(steps=0)
