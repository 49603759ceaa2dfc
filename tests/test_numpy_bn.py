"""bnguide.numpy_bn against PyTorch in float64, finite differences, and Algorithm 2."""

import numpy as np
import pytest
import torch

from bnguide import numpy_bn
from bnguide.gradcheck import numerical_gradient, relative_error

SHAPES = [(16, 5), (8, 3, 7), (4, 3, 5, 6), (3, 2, 3, 4, 5)]


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    channels = shape[1]
    # every channel with its own mean and scale, so a mix-up between channels shows
    loc = rng.normal(0.0, 3.0, channels).reshape((1, -1) + (1,) * (len(shape) - 2))
    scale = rng.uniform(0.5, 4.0, channels).reshape(loc.shape)
    x = loc + scale * rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 2.0, channels)
    beta = rng.normal(0.0, 1.0, channels)
    dout = rng.standard_normal(shape)
    return x, gamma, beta, dout


def _torch_reference(x, gamma, beta, dout, eps=1e-5):
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(gamma, requires_grad=True)
    bt = torch.tensor(beta, requires_grad=True)
    out = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=eps)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_torch(shape):
    x, gamma, beta, dout = _data(shape)
    out, _ = numpy_bn.batchnorm_forward(x, gamma, beta)
    ref, *_ = _torch_reference(x, gamma, beta, dout)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "backward", [numpy_bn.batchnorm_backward, numpy_bn.batchnorm_backward_graph]
)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_torch(shape, backward):
    x, gamma, beta, dout = _data(shape, seed=1)
    _, cache = numpy_bn.batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = backward(dout, cache)
    _, dx_ref, dgamma_ref, dbeta_ref = _torch_reference(x, gamma, beta, dout)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(dgamma, dgamma_ref, rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(dbeta, dbeta_ref, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("shape", SHAPES)
def test_graph_and_closed_form_backward_agree(shape):
    x, gamma, beta, dout = _data(shape, seed=2)
    _, cache = numpy_bn.batchnorm_forward(x, gamma, beta)
    for a, b in zip(
        numpy_bn.batchnorm_backward(dout, cache),
        numpy_bn.batchnorm_backward_graph(dout, cache),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 4), (3, 2, 2, 3)])
def test_backward_matches_finite_differences(shape):
    x, gamma, beta, dout = _data(shape, seed=3)
    _, cache = numpy_bn.batchnorm_forward(x, gamma, beta)
    dx, dgamma, dbeta = numpy_bn.batchnorm_backward(dout, cache)

    def f_x(v):
        return numpy_bn.batchnorm_forward(v, gamma, beta)[0]

    def f_gamma(v):
        return numpy_bn.batchnorm_forward(x, v, beta)[0]

    def f_beta(v):
        return numpy_bn.batchnorm_forward(x, gamma, v)[0]

    assert relative_error(dx, numerical_gradient(f_x, x, dout)) < 1e-7
    assert relative_error(dgamma, numerical_gradient(f_gamma, gamma, dout)) < 1e-7
    assert relative_error(dbeta, numerical_gradient(f_beta, beta, dout)) < 1e-7


def _backward_without_variance_path(dout, cache):
    # A classic wrong derivation: forgets that the variance depends on x.
    g_hat = dout * cache.gamma
    dx = cache.inv_std * (g_hat - g_hat.mean(axis=cache.axes, keepdims=True))
    return dx


def test_all_ones_upstream_gradient_cannot_catch_a_wrong_backward():
    x, gamma, beta, _ = _data((8, 3), seed=4)
    _, cache = numpy_bn.batchnorm_forward(x, gamma, beta)

    def f(v):
        return numpy_bn.batchnorm_forward(v, gamma, beta)[0]

    ones = np.ones_like(x)
    # sum(BN(x)) does not depend on x: the true gradient is zero, and so is the wrong one
    np.testing.assert_allclose(numerical_gradient(f, x, ones), 0.0, atol=1e-8)
    np.testing.assert_allclose(_backward_without_variance_path(ones, cache), 0.0, atol=1e-12)
    # a random upstream gradient exposes the wrong derivation and passes the right one
    dout = np.random.default_rng(5).standard_normal(x.shape)
    numeric = numerical_gradient(f, x, dout)
    assert relative_error(_backward_without_variance_path(dout, cache), numeric) > 1e-2
    assert relative_error(numpy_bn.batchnorm_backward(dout, cache)[0], numeric) < 1e-7


def test_population_statistics_are_algorithm_2():
    rng = np.random.default_rng(6)
    batches = rng.normal(2.0, 3.0, size=(50, 32, 4))  # 50 batches of m=32 examples, 4 features
    means = batches.mean(axis=1)
    variances = batches.var(axis=1)  # biased, as the forward pass computes them
    mean, var = numpy_bn.population_statistics(means, variances, batch_size=32)
    np.testing.assert_allclose(mean, batches.reshape(-1, 4).mean(axis=0), rtol=1e-12)
    # m/(m-1) E[sigma_B^2] is the average unbiased per-batch variance
    np.testing.assert_allclose(var, batches.var(axis=1, ddof=1).mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("shape", [(5, 4), (1, 4), (2, 3, 4, 4), (1, 3, 4, 4)])
def test_inference_matches_torch_eval(shape):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape) * 2 + 1
    channels = shape[1]
    gamma, beta = rng.uniform(0.5, 2, channels), rng.normal(size=channels)
    mean, var = rng.normal(size=channels), rng.uniform(0.5, 3, channels)
    out = numpy_bn.batchnorm_inference(x, gamma, beta, mean, var)
    ref = torch.nn.functional.batch_norm(
        torch.tensor(x),
        torch.tensor(mean),
        torch.tensor(var),
        torch.tensor(gamma),
        torch.tensor(beta),
        training=False,
    )
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-12, atol=1e-12)


def test_inference_treats_examples_independently():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 3))
    args = (np.ones(3), np.zeros(3), np.full(3, 0.5), np.full(3, 2.0))
    together = numpy_bn.batchnorm_inference(x, *args)
    alone = np.concatenate([numpy_bn.batchnorm_inference(x[i : i + 1], *args) for i in range(6)])
    np.testing.assert_array_equal(together, alone)


def test_forward_statistics_are_biased_and_two_pass_accurate():
    rng = np.random.default_rng(9)
    x = (1e3 + 1e-2 * rng.standard_normal((64, 3))).astype(np.float32)
    _, cache = numpy_bn.batchnorm_forward(x, np.ones(3, np.float32), np.zeros(3, np.float32))
    exact = x.astype(np.float64).var(axis=0)
    np.testing.assert_allclose(cache.var.ravel(), exact, rtol=1e-3)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.ones((4, 3), dtype=np.int64), "expected a floating-point input, got dtype int64"),
        (np.ones(3), r"expected at least 2D input .* \(got 1D input of shape \(3,\)\)"),
        (np.ones((1, 3)), "Expected more than 1 value per channel when training"),
    ],
)
def test_forward_rejects_bad_input(x, message):
    with pytest.raises(ValueError, match=message):
        numpy_bn.batchnorm_forward(x, np.ones(3), np.zeros(3))


def test_forward_rejects_mismatched_gamma():
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\).*got shape \(4,\)"):
        numpy_bn.batchnorm_forward(np.ones((4, 3)), np.ones(4), np.zeros(3))


def test_forward_rejects_non_positive_eps():
    with pytest.raises(ValueError, match="eps must be positive during training, but got 0"):
        numpy_bn.batchnorm_forward(np.arange(12.0).reshape(4, 3), np.ones(3), np.zeros(3), eps=0.0)


def test_inference_rejects_mismatched_statistics():
    with pytest.raises(ValueError, match=r"var must have shape \(3,\)"):
        numpy_bn.batchnorm_inference(
            np.ones((2, 3)), np.ones(3), np.zeros(3), np.zeros(3), np.ones(2)
        )


def test_population_statistics_rejects_batch_of_one():
    with pytest.raises(ValueError, match="batch_size must be at least 2"):
        numpy_bn.population_statistics(np.zeros((3, 2)), np.zeros((3, 2)), batch_size=1)


def test_numerical_gradient_rejects_integer_input():
    with pytest.raises(ValueError, match="x must be floating point"):
        numerical_gradient(lambda v: v, np.ones(3, dtype=int), np.ones(3))
