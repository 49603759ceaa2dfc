"""bnguide.norms against torch (float64 values and gradients), finite differences, invariants."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnguide import norms


@pytest.fixture(autouse=True)
def _float64_by_default():
    # float64 comparisons without leaking the default dtype into other test modules
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def float32():
    """For tests that train on the (float32) datasets: undone by the autouse fixture."""
    torch.set_default_dtype(torch.float32)


def _randomize(*modules, seed=0):
    """Give every module the same random (non-initial) parameters."""
    g = torch.Generator().manual_seed(seed)
    for name, p in modules[0].named_parameters():
        values = torch.randn(p.shape, generator=g)
        for m in modules:
            m.get_parameter(name).data.copy_(values)


def _forward_backward(module, x, upstream):
    x = x.clone().requires_grad_(True)
    y = module(x)
    y.backward(upstream)
    grads = {name: p.grad.clone() for name, p in module.named_parameters()}
    return y.detach(), x.grad, grads


def _assert_same(ours, theirs, x, atol=1e-10):
    _randomize(ours, theirs)
    upstream = torch.randn_like(x)  # every normalizer keeps the input's shape
    y1, gx1, gp1 = _forward_backward(ours, x, upstream)
    y2, gx2, gp2 = _forward_backward(theirs, x, upstream)
    torch.testing.assert_close(y1, y2, atol=atol, rtol=0)
    torch.testing.assert_close(gx1, gx2, atol=atol, rtol=0)
    assert gp1.keys() == gp2.keys()
    for name in gp1:
        torch.testing.assert_close(gp1[name], gp2[name], atol=atol, rtol=0)


# -- agreement with torch ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "normalized_shape", "kwargs"),
    [
        ((4, 10), 10, {}),
        ((3, 5, 8), (8,), {}),
        ((2, 3, 4, 5), (4, 5), {}),
        ((6, 7), 7, {"bias": False}),
        ((6, 7), 7, {"elementwise_affine": False}),
    ],
)
def test_layer_norm_matches_torch(shape, normalized_shape, kwargs):
    x = torch.randn(shape) * 3 + 2
    ours, theirs = (
        norms.LayerNorm(normalized_shape, **kwargs),
        torch.nn.LayerNorm(normalized_shape, **kwargs),
    )
    _assert_same(ours, theirs, x)


@pytest.mark.parametrize(
    ("shape", "eps"), [((4, 10), None), ((3, 5, 8), 1e-6), ((2, 3, 4, 5), 0.1)]
)
def test_rms_norm_matches_torch(shape, eps):
    x = torch.randn(shape) * 3 + 2
    ours, theirs = norms.RMSNorm(shape[-1], eps=eps), torch.nn.RMSNorm(shape[-1], eps=eps)
    _assert_same(ours, theirs, x)


def test_rms_norm_default_eps_is_machine_epsilon():
    x = torch.full((2, 4), 1e-9, dtype=torch.float32)  # tiny values: eps dominates the denominator
    ours = norms.rms_norm(x, 4)
    torch.testing.assert_close(ours, F.rms_norm(x, (4,)))
    torch.testing.assert_close(ours, x / torch.sqrt(x.square() + torch.finfo(torch.float32).eps))


@pytest.mark.parametrize(
    ("shape", "groups", "kwargs"),
    [((4, 6, 5), 3, {}), ((2, 8, 3, 3), 4, {}), ((2, 8, 3, 3), 1, {}), ((3, 4, 2, 2, 2), 4, {}),
     ((2, 6, 7), 2, {"affine": False}), ((2, 6, 7), 2, {"bias": False})],
)  # fmt: skip
def test_group_norm_matches_torch(shape, groups, kwargs):
    x = torch.randn(shape) * 3 + 2
    ours = norms.GroupNorm(groups, shape[1], **kwargs)
    theirs = torch.nn.GroupNorm(groups, shape[1], **kwargs)
    _assert_same(ours, theirs, x)


@pytest.mark.parametrize(
    ("cls", "shape"),
    [("InstanceNorm1d", (4, 3, 7)), ("InstanceNorm1d", (3, 7)), ("InstanceNorm2d", (2, 3, 4, 5)),
     ("InstanceNorm2d", (3, 4, 5)), ("InstanceNorm3d", (2, 3, 2, 3, 4))],
)  # fmt: skip
@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm_matches_torch(cls, shape, affine):
    x = torch.randn(shape) * 3 + 2
    c = (
        shape[-3]
        if cls == "InstanceNorm2d"
        else shape[-2]
        if cls == "InstanceNorm1d"
        else shape[-4]
    )
    ours = getattr(norms, cls)(c, affine=affine)
    theirs = getattr(torch.nn, cls)(c, affine=affine)
    _assert_same(ours, theirs, x)


@pytest.mark.parametrize("momentum", [0.1, 0.5])
def test_instance_norm_running_stats_match_torch(momentum):
    ours = norms.InstanceNorm2d(3, momentum=momentum, affine=True, track_running_stats=True)
    theirs = torch.nn.InstanceNorm2d(3, momentum=momentum, affine=True, track_running_stats=True)
    _randomize(ours, theirs)
    for step in range(3):
        x = torch.randn(4, 3, 5, 6) * (step + 1) + step
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-10, rtol=0)
    torch.testing.assert_close(ours.running_mean, theirs.running_mean, atol=1e-12, rtol=0)
    torch.testing.assert_close(ours.running_var, theirs.running_var, atol=1e-12, rtol=0)
    ours.eval()
    theirs.eval()
    x = torch.randn(2, 3, 5, 6)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-10, rtol=0)


# -- finite differences (independent of torch's kernels) -------------------------------------


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, w, b: norms.layer_norm(x, (3, 4), w.view(3, 4), b.view(3, 4)),
        lambda x, w, b: norms.rms_norm(x, (3, 4), w.view(3, 4), eps=1e-3),
        lambda x, w, b: norms.group_norm(x, 2, w[:4], b[:4]),
        lambda x, w, b: norms.instance_norm(x, weight=w[:4], bias=b[:4]),
    ],
    ids=["layer_norm", "rms_norm", "group_norm", "instance_norm"],
)
def test_gradients_match_finite_differences(fn):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 3, 4, generator=g).requires_grad_(True)
    w = torch.randn(12, generator=g).requires_grad_(True)
    b = torch.randn(12, generator=g).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x, w, b))  # full Jacobian: every upstream direction


# -- invariants ------------------------------------------------------------------------------


def test_group_norm_extremes_are_layer_and_instance_norm():
    x = torch.randn(3, 6, 4, 5) * 2 + 1
    torch.testing.assert_close(norms.group_norm(x, 1), norms.layer_norm(x, (6, 4, 5)))
    torch.testing.assert_close(norms.group_norm(x, 6), norms.instance_norm(x))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(2, 5),
    which=st.sampled_from(["layer", "group", "instance", "rms"]),
    seed=st.integers(0, 2**16),
)
def test_per_example_normalizers_ignore_the_rest_of_the_batch(n, which, seed):
    g = torch.Generator().manual_seed(seed)
    layer = {
        "layer": norms.LayerNorm((4, 3, 3)),
        "group": norms.GroupNorm(2, 4),
        "instance": norms.InstanceNorm2d(4),
        "rms": norms.RMSNorm(3),
    }[which]
    x = torch.randn(n, 4, 3, 3, generator=g)
    other = x.clone()
    other[1:] = torch.randn(n - 1, 4, 3, 3, generator=g) * 10 + 5  # change every other example
    torch.testing.assert_close(layer(x)[0], layer(other)[0], atol=1e-12, rtol=0)


def test_layer_norm_output_has_zero_mean_unit_variance():
    y = norms.layer_norm(torch.randn(5, 16) * 7 + 3, 16, eps=0.0)
    torch.testing.assert_close(y.mean(-1), torch.zeros(5), atol=1e-12, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(5), atol=1e-12, rtol=0)


# -- interface: state_dicts and reprs are torch's --------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: norms.LayerNorm((4, 5)), lambda: torch.nn.LayerNorm((4, 5))),
        (lambda: norms.LayerNorm(5, bias=False), lambda: torch.nn.LayerNorm(5, bias=False)),
        (lambda: norms.RMSNorm(5), lambda: torch.nn.RMSNorm(5)),
        (lambda: norms.GroupNorm(2, 6), lambda: torch.nn.GroupNorm(2, 6)),
        (
            lambda: norms.InstanceNorm2d(3, affine=True, track_running_stats=True),
            lambda: torch.nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
        ),
        (lambda: norms.InstanceNorm1d(3), lambda: torch.nn.InstanceNorm1d(3)),
    ],
)
def test_state_dict_and_repr_are_torchs(ours, theirs):
    a, b = ours(), theirs()
    assert repr(a) == repr(b)
    _randomize(b, seed=3)
    a.load_state_dict(b.state_dict())
    for key, value in b.state_dict().items():
        torch.testing.assert_close(a.state_dict()[key], value)
    b.load_state_dict(a.state_dict())


# -- batch renormalization -------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_renorm_without_room_to_correct_is_batch_norm(momentum):
    ours = norms.BatchRenorm2d(3, momentum=momentum, r_max=1.0, d_max=0.0)
    theirs = torch.nn.BatchNorm2d(3, momentum=momentum)
    for step in range(3):
        x = torch.randn(4, 3, 2, 5) * (step + 2) + step
        _assert_same(ours, theirs, x)
    torch.testing.assert_close(ours.running_mean, theirs.running_mean, atol=1e-12, rtol=0)
    torch.testing.assert_close(ours.running_var, theirs.running_var, atol=1e-12, rtol=0)
    assert ours.num_batches_tracked == theirs.num_batches_tracked


def _renorm_with_stats(mean_shift, var_scale):
    """A BatchRenorm1d whose running statistics sit at a chosen distance from a batch's."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 3, generator=g) * torch.tensor([1.0, 2.0, 0.5]) + torch.tensor(
        [0.0, 1.0, -1.0]
    )
    layer = norms.BatchRenorm1d(3, r_max=3.0, d_max=5.0)
    _randomize(layer, seed=4)
    layer.running_mean.copy_(x.mean(0) + mean_shift)
    layer.running_var.copy_(x.var(0, unbiased=False) * var_scale)
    return layer, x


def test_batch_renorm_unclipped_training_output_is_the_inference_output():
    layer, x = _renorm_with_stats(mean_shift=torch.tensor([0.3, -0.2, 0.1]), var_scale=1.5)
    expected = F.batch_norm(x, layer.running_mean.clone(), layer.running_var.clone(),
                            layer.weight, layer.bias, training=False, eps=layer.eps)  # fmt: skip
    torch.testing.assert_close(layer(x), expected, atol=1e-12, rtol=0)


def test_batch_renorm_backprop_treats_r_and_d_as_constants():
    layer, x = _renorm_with_stats(mean_shift=torch.tensor([0.3, -0.2, 0.1]), var_scale=1.5)
    sigma = torch.sqrt(layer.running_var + layer.eps)
    mean_b, var_b = x.mean(0), x.var(0, unbiased=False)
    r = torch.sqrt(var_b + layer.eps) / sigma  # unclipped here
    d = (mean_b - layer.running_mean) / sigma
    upstream = torch.randn(16, 3)
    y1, gx1, gp1 = _forward_backward(layer, x, upstream)

    xr = x.clone().requires_grad_(True)
    w, b = (
        layer.weight.detach().clone().requires_grad_(True),
        layer.bias.detach().clone().requires_grad_(True),
    )
    bn = F.batch_norm(xr, None, None, training=True, eps=layer.eps)  # (x - mu_B) / sigma_B
    y2 = (bn * r + d) * w + b
    y2.backward(upstream)
    torch.testing.assert_close(y1, y2.detach(), atol=1e-12, rtol=0)
    torch.testing.assert_close(gx1, xr.grad, atol=1e-12, rtol=0)
    torch.testing.assert_close(gp1["weight"], w.grad, atol=1e-12, rtol=0)
    torch.testing.assert_close(gp1["bias"], b.grad, atol=1e-12, rtol=0)


def test_batch_renorm_fully_clipped_gradient_matches_finite_differences():
    # Running variance 1000x too small and running mean far off: r = r_max and d = +-d_max
    # in a whole neighbourhood of x, so the stop-gradient is the true gradient there.
    layer, x = _renorm_with_stats(mean_shift=torch.tensor([50.0, -50.0, 50.0]), var_scale=1e-3)
    rm, rv = layer.running_mean.clone(), layer.running_var.clone()

    def fn(inp, w, b):
        return norms.batch_renorm(inp, rm.clone(), rv.clone(), w, b, training=True)

    w, b = layer.weight.detach().clone(), layer.bias.detach().clone()
    assert torch.autograd.gradcheck(
        fn, (x.requires_grad_(True), w.requires_grad_(True), b.requires_grad_(True))
    )


def test_batch_renorm_eval_is_batch_norm_and_state_dict_loads_into_it():
    ours = norms.BatchRenorm2d(3)
    for _ in range(3):
        ours(torch.randn(4, 3, 2, 2) * 2 + 1)
    bn = torch.nn.BatchNorm2d(3)
    bn.load_state_dict(ours.state_dict())
    ours.eval()
    bn.eval()
    x = torch.randn(2, 3, 2, 2)
    torch.testing.assert_close(ours(x), bn(x), atol=1e-12, rtol=0)


def test_renorm_limits_schedule():
    assert norms.renorm_limits(0, 5, 40, 25) == (1.0, 0.0)
    assert norms.renorm_limits(5, 5, 40, 25) == (1.0, 0.0)
    assert norms.renorm_limits(25, 5, 40, 25)[1] == 5.0
    assert norms.renorm_limits(40, 5, 40, 25) == (3.0, 5.0)
    assert norms.renorm_limits(10_000, 5, 40, 25) == (3.0, 5.0)
    r, d = norms.renorm_limits(15, 5, 25, 25)
    assert r == pytest.approx(2.0) and d == pytest.approx(2.5)


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "call", "error", "match"),
    [
        (lambda: norms.GroupNorm(4, 6), None, ValueError,
         r"num_channels \(6\) must be divisible by num_groups \(4\)"),
        (lambda: None, lambda _: norms.group_norm(torch.randn(2, 6, 3), 4), RuntimeError,
         r"divisible by num_groups, but got input of shape torch.Size\(\[2, 6, 3\]\) and "
         r"num_groups=4"),
        (lambda: norms.LayerNorm(5), lambda m: m(torch.randn(2, 4)), RuntimeError,
         r"normalized_shape=\[5\], expected input with shape \[\*, 5\], "
         r"but got input of size\[2, 4\]"),
        (lambda: norms.RMSNorm((2, 3)), lambda m: m(torch.randn(3)), RuntimeError,
         r"expected input with shape \[\*, 2, 3\]"),
        (lambda: norms.InstanceNorm2d(3), lambda m: m(torch.randn(2, 3, 1, 1)), ValueError,
         "Expected more than 1 spatial element when training"),
        (lambda: norms.InstanceNorm2d(3), lambda m: m(torch.randn(2, 3)), ValueError,
         r"expected 3D or 4D input \(got 2D input\)"),
        (lambda: norms.InstanceNorm1d(3, affine=True), lambda m: m(torch.randn(2, 4, 5)),
         ValueError,
         r"match num_features \(3\), but got: 4"),
        (lambda: None, lambda _: norms.instance_norm(torch.randn(2, 3, 4), use_input_stats=False),
         ValueError, "Expected running_mean and running_var to be defined"),
        (lambda: norms.BatchRenorm2d(3), lambda m: m(torch.randn(2, 3, 4)), ValueError,
         r"expected 4D input \(got 3D input\)"),
        (lambda: norms.GroupNorm(2, 6), lambda m: m(torch.randn(2, 4, 3)), ValueError,
         r"GroupNorm\(2, 6\) expects input of shape \(N, 6, \*\), got \[2, 4, 3\]"),
        (lambda: norms.BatchRenorm2d(3), lambda m: m(torch.randn(2, 4, 2, 2)), ValueError,
         r"BatchRenorm2d\(3\) expects 3 channels in dimension 1"),
        (lambda: norms.BatchRenorm1d(3), lambda m: m(torch.randn(1, 3)), ValueError,
         "Expected more than 1 value per channel when training"),
        (lambda: norms.BatchRenorm1d(3, r_max=0.5), None, ValueError, "r_max >= 1 and d_max >= 0"),
        (lambda: None, lambda _: norms.renorm_limits(0, 50, 40, 25), ValueError,
         "warmup < r_steps"),
    ],
)  # fmt: skip
def test_bad_input_gives_a_clear_error(make, call, error, match):
    with pytest.raises(error, match=match):
        m = make()
        if call is not None:
            call(m)


def test_batch_renorm_checks_limits_set_after_construction():
    layer = norms.BatchRenorm1d(3)
    layer.d_max = -1.0  # a schedule gone wrong
    with pytest.raises(ValueError, match="r_max >= 1 and d_max >= 0"):
        layer(torch.randn(4, 3))


# -- the chapter's benchmark -----------------------------------------------------------------


@pytest.mark.parametrize(
    "norm", ["none", "batch", "batch-renorm", "group", "layer", "instance", "rms"]
)
def test_small_cnn_takes_every_normalizer(norm, float32):
    from bnguide.models.small_cnn import small_cnn

    assert small_cnn(norm)(torch.randn(3, 1, 14, 14)).shape == (3, 10)


def test_benchmark_runs_at_a_tiny_scale(float32):
    from bnguide.experiments import normalizer_benchmark as bench

    config = bench.Config(
        norms=("batch", "batch-renorm"), batch_sizes=(2, 4), steps=10, train_size=64,
        test_size=32, seeds=(0,),
    )  # fmt: skip
    result = bench.run(config)
    for table in (result.accuracy, result.final_loss, result.step_ms):
        assert set(table) == {"batch", "batch-renorm"}
        assert all(v.shape == (1, 2) for v in table.values())
    assert all(((v >= 0) & (v <= 1)).all() for v in result.accuracy.values())


def test_benchmark_bad_settings_give_clear_errors():
    from bnguide.experiments import normalizer_benchmark as bench
    from bnguide.norms.registry import make_norm

    with pytest.raises(ValueError, match=r"Unknown norms \['batchnorm'\]"):
        bench.Config(norms=("batchnorm",))
    with pytest.raises(ValueError, match="steps must be at least 10"):
        bench.Config(steps=5)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
        bench.Config(batch_sizes=(1, 8))
    with pytest.raises(ValueError, match="Unknown normalizer 'weight'"):
        make_norm("weight", 8, shape=(8, 14, 14))
