"""bnguide.functional.batch_norm against torch.nn.functional.batch_norm, gradcheck, numerics."""

import pytest
import torch

from bnguide import functional
from bnguide.functional import BatchNormFunction, batch_norm

F64 = torch.float64
SHAPES = [(16, 5), (8, 3, 7), (4, 3, 5, 6), (3, 2, 3, 4, 5)]


def _inputs(shape, seed=0, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    channels = shape[1]
    per_channel = (1, channels) + (1,) * (len(shape) - 2)
    loc = 3 * torch.randn(per_channel, generator=gen, dtype=dtype)
    scale = 0.5 + 3 * torch.rand(per_channel, generator=gen, dtype=dtype)
    x = loc + scale * torch.randn(shape, generator=gen, dtype=dtype)
    weight = 0.5 + torch.rand(channels, generator=gen, dtype=dtype)
    bias = torch.randn(channels, generator=gen, dtype=dtype)
    grad = torch.randn(shape, generator=gen, dtype=dtype)
    return x, weight, bias, grad


def _grads(fn, x, weight, bias, grad):
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    out = fn(*leaves)
    out.backward(grad)
    return out.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch_outputs_gradients_and_running_stats(shape, training):
    x, weight, bias, grad = _inputs(shape)
    channels = shape[1]
    stats = {}
    for name, impl in [("ours", batch_norm), ("torch", torch.nn.functional.batch_norm)]:
        rm = torch.linspace(-1, 1, channels, dtype=F64)
        rv = torch.linspace(0.5, 2, channels, dtype=F64)

        def fn(x, w, b, impl=impl, rm=rm, rv=rv):
            return impl(x, rm, rv, w, b, training=training, momentum=0.3, eps=1e-3)

        stats[name] = (*_grads(fn, x, weight, bias, grad), rm, rv)
    (out, grads, rm, rv), (out_ref, grads_ref, rm_ref, rv_ref) = stats["ours"], stats["torch"]
    torch.testing.assert_close(out, out_ref, rtol=1e-12, atol=1e-12)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-11)
    torch.testing.assert_close(rm, rm_ref, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(rv, rv_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("affine", [True, False])
def test_matches_torch_without_running_stats_and_parameters(affine):
    x, weight, bias, grad = _inputs((10, 4, 3), seed=1)
    w, b = (weight, bias) if affine else (None, None)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = batch_norm(xa, None, None, w, b, training=True)
    ref = torch.nn.functional.batch_norm(xb, None, None, w, b, training=True)
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-11)


def test_weight_without_bias_and_bias_without_weight():
    x, weight, bias, grad = _inputs((7, 3), seed=2)
    for w, b in [(weight, None), (None, bias)]:
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        batch_norm(xa, None, None, w, b, training=True).backward(grad)
        torch.nn.functional.batch_norm(xb, None, None, w, b, training=True).backward(grad)
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 2, 3)])
def test_gradcheck_training(shape):
    x, weight, bias, _ = _inputs(shape, seed=3)
    inputs = [t.requires_grad_() for t in (x, weight, bias)]
    assert torch.autograd.gradcheck(
        lambda x, w, b: batch_norm(x, None, None, w, b, training=True), inputs
    )


def test_gradcheck_evaluation():
    x, weight, bias, _ = _inputs((5, 3, 2), seed=4)
    rm, rv = torch.randn(3, dtype=F64), torch.rand(3, dtype=F64) + 0.5
    inputs = [t.requires_grad_() for t in (x, weight, bias)]
    assert torch.autograd.gradcheck(
        lambda x, w, b: batch_norm(x, rm, rv, w, b, training=False), inputs
    )


def test_gradcheck_autograd_function_without_affine():
    x, *_ = _inputs((4, 3, 3), seed=5)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda x: BatchNormFunction.apply(x, None, None, 1e-5)[0], [x])


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 2, 2)])
def test_gradgradcheck_second_derivatives(shape):
    x, weight, bias, _ = _inputs(shape, seed=6)
    inputs = [t.requires_grad_() for t in (x, weight, bias)]
    assert torch.autograd.gradgradcheck(
        lambda x, w, b: batch_norm(x, None, None, w, b, training=True), inputs
    )


def test_running_stats_updated_in_place_without_autograd_history():
    x, weight, bias, _ = _inputs((8, 3), seed=7)
    x.requires_grad_()
    weight.requires_grad_()
    rm, rv = torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)
    pointers = rm.data_ptr(), rv.data_ptr()
    batch_norm(x, rm, rv, weight, bias, training=True, momentum=0.5)
    assert (rm.data_ptr(), rv.data_ptr()) == pointers
    assert rm.grad_fn is None and rv.grad_fn is None
    assert not rm.requires_grad and not rv.requires_grad
    torch.testing.assert_close(rm, 0.5 * x.detach().mean(0))
    torch.testing.assert_close(rv, 0.5 + 0.5 * x.detach().var(0, correction=1))


def test_running_stats_keep_their_dtype():
    x, *_ = _inputs((8, 3), seed=8, dtype=torch.float64)
    rm, rv = torch.zeros(3), torch.ones(3)  # float32 buffers, float64 input
    batch_norm(x, rm, rv, training=True)
    assert rm.dtype == rv.dtype == torch.float32
    torch.testing.assert_close(rm, (0.1 * x.mean(0)).float())


@pytest.mark.parametrize("training", [True, False])
def test_channels_last_input(training):
    x, weight, bias, grad = _inputs((4, 3, 5, 6), seed=9)
    x = x.contiguous(memory_format=torch.channels_last)
    rm, rv = torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = batch_norm(xa, rm.clone(), rv.clone(), weight, bias, training=training)
    ref = torch.nn.functional.batch_norm(
        xb, rm.clone(), rv.clone(), weight, bias, training=training
    )
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-11)
    assert out.is_contiguous(memory_format=torch.channels_last)


def _normalization_error(impl, x32):
    out = impl(x32, None, None, training=True).double()
    x64 = x32.double()  # the same float32 numbers, normalized exactly in float64
    exact = (x64 - x64.mean(0)) / torch.sqrt(x64.var(0, correction=0) + 1e-5)
    return (out - exact).abs().max().item()


def test_float32_large_mean_small_std_as_accurate_as_torch():
    gen = torch.Generator().manual_seed(10)
    x32 = 1e3 + 1e-2 * torch.randn(512, 8, generator=gen)  # float32
    ours = _normalization_error(batch_norm, x32)
    native = _normalization_error(torch.nn.functional.batch_norm, x32)
    assert ours <= 2 * native, (ours, native)
    assert ours < 2e-2  # the shortcut below is off by orders of magnitude


def test_shortcut_variance_fails_on_the_same_data():
    # E[x^2] - E[x]^2 cancels catastrophically in float32: what the two-pass mean avoids.
    gen = torch.Generator().manual_seed(10)
    x32 = 1e3 + 1e-2 * torch.randn(512, 8, generator=gen)
    exact = x32.double().var(0, correction=0)
    shortcut = (x32 * x32).mean(0) - x32.mean(0) ** 2
    two_pass = ((x32 - x32.mean(0)) ** 2).mean(0)
    assert ((shortcut.double() - exact).abs() / exact).max() > 10
    assert ((two_pass.double() - exact).abs() / exact).max() < 1e-2


def test_update_running_stats_momentum_convention():
    rm, rv = torch.full((2,), 4.0, dtype=F64), torch.full((2,), 4.0, dtype=F64)
    mean, var = torch.tensor([0.0, 8.0], dtype=F64), torch.tensor([3.0, 6.0], dtype=F64)
    functional.update_running_stats(rm, rv, mean, var, count=4, momentum=0.25)
    # momentum weights the new batch; the stored variance is unbiased (4/3 * var)
    torch.testing.assert_close(rm, torch.tensor([3.0, 5.0], dtype=F64))
    torch.testing.assert_close(
        rv, torch.tensor([0.75 * 4 + 0.25 * 4.0, 0.75 * 4 + 0.25 * 8.0], dtype=F64)
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"input": torch.ones(4, 3, dtype=torch.long)},
            ValueError,
            "expected a floating-point input, got dtype torch.int64",
        ),
        ({"input": torch.ones(3)}, ValueError, r"expected at least 2D input .*got 1D input"),
        (
            {"input": torch.ones(1, 3)},
            ValueError,
            r"Expected more than 1 value per channel when training, "
            r"got input size torch.Size\(\[1, 3\]\)",
        ),
        ({"weight": torch.ones(4)}, ValueError, r"weight must have shape \(3,\).*got shape \(4,\)"),
        ({"running_mean": torch.zeros(2)}, ValueError, r"running_mean must have shape \(3,\)"),
        ({"eps": 0.0}, ValueError, "batch_norm eps must be positive during training, but got 0.0"),
        (
            {"training": False, "eps": -1.0},
            ValueError,
            "batch_norm eps must be non-negative, but got -1.0",
        ),
        (
            {"training": False, "running_var": None},
            ValueError,
            "evaluation mode .* at least one is None",
        ),
        ({"momentum": None}, ValueError, "momentum must be a number"),
        ({"input": [[1.0, 2.0]]}, ValueError, "expected input to be a torch.Tensor, got list"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    args = {
        "input": torch.randn(4, 3),
        "running_mean": torch.zeros(3),
        "running_var": torch.ones(3),
        "training": True,
    }
    args.update(kwargs)
    with pytest.raises(error, match=message):
        batch_norm(**args)


def test_torch_gives_the_same_errors_where_it_checks():
    # the messages we copy are torch's own
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        torch.nn.functional.batch_norm(torch.ones(1, 3), None, None, training=True)
    with pytest.raises(ValueError, match="eps must be positive during training"):
        torch.nn.functional.batch_norm(torch.ones(4, 3), None, None, training=True, eps=0.0)
