"""bnguide.conditioning against closed-form references (least squares, eigenvalues)."""

import numpy as np
import pytest

from bnguide import conditioning


def test_preprocessings_have_their_defining_statistics():
    x, _ = conditioning.make_regression(n=100, seed=1)
    mm = conditioning.preprocess(x, "min-max")
    np.testing.assert_allclose(mm.min(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(mm.max(0), 1.0)
    st = conditioning.preprocess(x, "standardize")
    np.testing.assert_allclose(st.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(st.std(0), 1.0)
    wh = conditioning.preprocess(x, "whiten")
    np.testing.assert_allclose(np.cov(wh.T, bias=True), np.eye(2), atol=1e-10)
    np.testing.assert_array_equal(conditioning.preprocess(x, "raw"), x)


def test_condition_number_matches_numpy():
    x, _ = conditioning.make_regression(n=50, seed=2)
    design = np.c_[x, np.ones(len(x))]
    assert conditioning.condition_number(x) == pytest.approx(np.linalg.cond(design) ** 2, rel=1e-6)


def test_gradient_descent_converges_to_least_squares_when_well_conditioned():
    x, y = conditioning.make_regression(n=80, seed=3)
    result = conditioning.gradient_descent(conditioning.preprocess(x, "whiten"), y, steps=5)
    design = np.c_[conditioning.preprocess(x, "whiten"), np.ones(len(x))]
    best, *_ = np.linalg.lstsq(design, y, rcond=None)
    assert result.optimum == pytest.approx(np.mean((design @ best - y) ** 2))
    assert result.loss[-1] == pytest.approx(result.optimum, rel=1e-10)
    assert conditioning.steps_to_tolerance(result) == 1


def test_loss_never_increases_with_the_default_step():
    x, y = conditioning.make_regression(seed=4)
    for method in conditioning.PREPROCESSINGS:
        loss = conditioning.gradient_descent(conditioning.preprocess(x, method), y, steps=200).loss
        assert np.all(np.diff(loss) <= 1e-9 * loss[:-1])


def test_standardizing_reduces_the_condition_number_by_orders_of_magnitude():
    x, _ = conditioning.make_regression(seed=0)
    raw = conditioning.condition_number(x)
    standardized = conditioning.condition_number(conditioning.preprocess(x, "standardize"))
    assert raw > 1000 * standardized


def test_normalization_cost_leading_terms():
    cost = conditioning.normalization_cost(60, 100)
    assert cost == {"batch norm": 3 * 60 * 100, "whitening": 2 * 60 * 100**2 + 9 * 100**3}


def test_bad_arguments():
    x, _ = conditioning.make_regression(n=10)
    with pytest.raises(ValueError, match="method must be one of"):
        conditioning.preprocess(x, "zscore")
    with pytest.raises(ValueError, match="at least 3 examples"):
        conditioning.make_regression(n=2)
    with pytest.raises(ValueError, match="need m >= 2"):
        conditioning.normalization_cost(1, 10)
