"""PyTorch's own normalization tests from ``test/test_nn.py``, ported to run on bnguide's layers.

Every CPU test of ``TestNN``, ``TestNNDeviceType`` and ``TestFusionUtils`` whose name mentions
batch, group, layer, instance or RMS normalization is ported here; each test's docstring names the
original. The ``impl`` fixture swaps the implementation: ``bnguide`` runs the port on bnguide's
classes and functions, ``torch`` runs the very same code on torch's, which shows that the port
asserts what the original asserts (a test that torch fails would be a bad port). Where bnguide
deliberately differs, the bnguide case is a strict xfail whose reason is one of the documented
differences in :data:`bnguide.parity.DELIBERATE_DIFFERENCES`.

Two kinds of change from the originals: tensors the originals size for a GPU (80 million
float16 values, a 256 x 256 x 144 layer norm) are scaled down to shapes that keep the property
being tested (the float16 sum that overflows, the vectorized inner loop) and run in milliseconds;
``self.assertEqual`` becomes ``torch.testing.assert_close`` with the same tolerances.

Not ported, with why: the CUDA/cuDNN-only tests (``test_batchnorm_cudnn_*``, ``..._cuda_half``,
``test_batchnorm_large_batch``, ``test_layernorm_half_precision``, ``test_layernorm_weight_bias``,
the ``test_batchnorm`` NCHW-vs-native matrix) and ``test_batch_norm_update_stats``, which tests
``torch.batch_norm_update_stats``, a torch operator bnguide does not provide.
"""

from __future__ import annotations

import itertools
import random
import re
import types
import warnings
from collections import OrderedDict
from copy import deepcopy
from functools import partial

import pytest
import torch
import torch.autograd.forward_ad as fwad
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

import bnguide.functional as bf
import bnguide.nn as bnn
import bnguide.norms as bnorms
from bnguide.norms.sync import SyncBatchNorm
from bnguide.parity import DELIBERATE_DIFFERENCES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TORCH = types.SimpleNamespace(
    name="torch",
    BatchNorm1d=nn.BatchNorm1d,
    BatchNorm2d=nn.BatchNorm2d,
    BatchNorm3d=nn.BatchNorm3d,
    SyncBatchNorm=nn.SyncBatchNorm,
    GroupNorm=nn.GroupNorm,
    LayerNorm=nn.LayerNorm,
    InstanceNorm1d=nn.InstanceNorm1d,
    InstanceNorm2d=nn.InstanceNorm2d,
    InstanceNorm3d=nn.InstanceNorm3d,
    batch_norm=F.batch_norm,
    rms_norm=F.rms_norm,
)
BNGUIDE = types.SimpleNamespace(
    name="bnguide",
    BatchNorm1d=bnn.BatchNorm1d,
    BatchNorm2d=bnn.BatchNorm2d,
    BatchNorm3d=bnn.BatchNorm3d,
    SyncBatchNorm=SyncBatchNorm,
    GroupNorm=bnorms.GroupNorm,
    LayerNorm=bnorms.LayerNorm,
    InstanceNorm1d=bnorms.InstanceNorm1d,
    InstanceNorm2d=bnorms.InstanceNorm2d,
    InstanceNorm3d=bnorms.InstanceNorm3d,
    batch_norm=bf.batch_norm,
    rms_norm=bnorms.rms_norm,
)


@pytest.fixture(params=[TORCH, BNGUIDE], ids=lambda ns: ns.name)
def impl(request):
    """The implementation under test: torch's (checks the port) or bnguide's."""
    torch.manual_seed(0)
    random.seed(0)
    return request.param


def deliberate(request, impl, key: str) -> None:
    """Mark the bnguide case a strict xfail with the documented reason ``key``."""
    if impl.name == "bnguide":
        request.applymarker(pytest.mark.xfail(reason=DELIBERATE_DIFFERENCES[key], strict=True))


# (rtol, atol) that torch.testing.assert_close (and so self.assertEqual) uses by default
DEFAULT_TOLERANCE = {
    torch.float64: (1e-7, 1e-7),
    torch.float32: (1.3e-6, 1e-5),
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
}


def assert_equal(actual, expected, **kw):
    # self.assertEqual of torch's TestCase: dtype-dependent default tolerances
    torch.testing.assert_close(actual, expected, **kw)


def _module_empty_input(module, inp):
    # torch.testing._internal.common_nn._test_module_empty_input
    inp.requires_grad_(True)
    out = module(inp)
    out.backward(torch.rand_like(out))
    assert out.shape == inp.shape
    for p in module.parameters():
        if p.requires_grad:
            assert_equal(p.grad, torch.zeros_like(p.grad))
    assert_equal(inp.grad, torch.zeros_like(inp))


def _forward_backward(module, data, grad):
    """``module(data)`` after a backward pass with ``grad``, and the input's gradient."""
    data.grad = None
    out = module(data)
    out.backward(grad)
    return out, data.grad.clone()


def _with_contiguous_twin(make, shape, dtype, fmt, param_dtype):
    """A layer with random affine parameters, a random input and gradient in memory format
    ``fmt``, and the layer's twin (same state) with contiguous copies of both."""
    input = torch.randn(shape, dtype=dtype, requires_grad=True)
    input = input.contiguous(memory_format=fmt)
    input.retain_grad()
    grad = torch.randn(shape, dtype=dtype).contiguous(memory_format=fmt)
    layer = make().to(param_dtype)
    layer.weight.data.uniform_()
    layer.bias.data.uniform_()
    twin = make().to(param_dtype)
    twin.load_state_dict(layer.state_dict())
    ref_input = input.detach().clone().contiguous().requires_grad_(True)
    return (layer, input, grad), (twin, ref_input, grad.detach().clone().contiguous())


# ---------------------------------------------------------------- TestNN


@pytest.mark.parametrize(
    ("dim", "shape"),
    [(2, (4, 8, 10, 10)), (2, (4, 1, 9, 9)), (2, (4, 9, 1, 1))]
    + [(3, (4, 8, 2, 10, 10)), (3, (4, 1, 2, 9, 9)), (3, (4, 9, 1, 1, 1))],
)
@pytest.mark.parametrize("dtype", [torch.float, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("mixed_dtype", [False, True])
def test_batchnorm_nhwc_cpu(impl, dim, shape, dtype, mixed_dtype):
    """TestNN.test_batchnorm_nhwc_cpu: channels_last in, channels_last out, equal to NCHW."""
    if dtype == torch.float and mixed_dtype:
        pytest.skip("the original runs float32 unmixed only")
    mod = impl.BatchNorm2d if dim == 2 else impl.BatchNorm3d
    fmt = torch.channels_last if dim == 2 else torch.channels_last_3d
    precision = {torch.float: 1e-4, torch.bfloat16: 1e-4, torch.float16: None}[dtype]
    if dim == 2:
        precision = None
    channels = shape[1]
    (bn, input, grad), (ref_bn, ref_input, ref_grad) = _with_contiguous_twin(
        lambda: mod(channels), shape, dtype, fmt, dtype
    )
    if mixed_dtype:
        bn.float()
        ref_bn.float()
    out = bn(input)
    out.backward(grad)
    ref_out = ref_bn(ref_input)
    ref_out.backward(ref_grad)
    assert out.is_contiguous(memory_format=fmt)
    assert ref_out.is_contiguous()
    assert_equal(out, ref_out)
    # weight and bias gradients are sums of m float32 products, added in another order for the
    # two layouts and by other CPU kernels: allow the worst-case rounding of such a sum,
    # m * eps * max |term| (|x_hat| < 4 here), where the original's tolerance is one kernel's luck
    m = grad.numel() // channels
    sum_tol = m * torch.finfo(torch.float32).eps * 4 * grad.float().abs().max().item()
    rtol, atol = DEFAULT_TOLERANCE[bn.weight.grad.dtype]  # self.assertEqual's defaults
    w_rtol, w_atol = (precision, precision) if precision else (rtol, atol)
    assert_equal(bn.weight.grad, ref_bn.weight.grad, atol=max(w_atol, sum_tol), rtol=w_rtol)
    assert_equal(bn.bias.grad, ref_bn.bias.grad, atol=max(atol, sum_tol), rtol=rtol)
    assert_equal(input.grad, ref_input.grad)


@pytest.mark.parametrize(
    ("dim", "size", "param_dtype", "fwd_format"),
    [
        (2, (4, 2, 256, 256), torch.half, torch.contiguous_format),
        (2, (4, 2, 256, 256), torch.half, torch.channels_last),
        (3, (4, 2, 16, 64, 64), torch.half, torch.contiguous_format),
        (3, (4, 2, 16, 64, 64), torch.half, torch.channels_last_3d),
        (2, (16, 3, 64, 64), torch.float, torch.contiguous_format),
        (2, (16, 3, 64, 64), torch.float, torch.channels_last),
    ],
)
def test_batchnorm_half_overflow(impl, dim, size, param_dtype, fwd_format):
    """TestNN.test_batchnorm_half_overflow: float16 input whose per-channel sums of squares
    overflow float16 (262,144 values of |x| ~ 1 per channel here; the original uses 1,000,000)
    gives finite output and gradients equal to float32's."""
    mod = impl.BatchNorm2d if dim == 2 else impl.BatchNorm3d
    channels = size[1]
    input = torch.randn(size, dtype=torch.half).contiguous(memory_format=fwd_format)
    input.requires_grad_(True)
    bn = mod(channels).to(param_dtype)
    out = bn(input)
    ref_input = input.detach().clone().requires_grad_(True)
    ref_bn = mod(channels).to(torch.float)
    ref_bn.load_state_dict(bn.to(torch.float).state_dict())
    ref_out = ref_bn(ref_input)
    assert not out.isinf().any() and not out.isnan().any()
    assert_equal(out, ref_out)
    if param_dtype != torch.half:
        grad_input = torch.empty(size=ref_out.shape).uniform_(0, 1).to(dtype=torch.half)
        grad_input = grad_input.contiguous(memory_format=fwd_format)
        out.backward(grad_input)
        ref_out.backward(grad_input.clone())
        assert not input.grad.isinf().any() and not input.grad.isnan().any()
        assert_equal(input.grad, ref_input.grad)


@pytest.mark.parametrize("which", ["BatchNorm2d", "SyncBatchNorm"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_batchnorm_non_contig_cpu(impl, which, dtype):
    """TestNN.test_batchnorm_non_contig_cpu (BatchNorm2d and SyncBatchNorm, in eval mode)."""
    bn_module = getattr(impl, which)
    input = torch.arange(6, dtype=torch.float).reshape(1, 3, 2, 1).permute(0, 2, 1, 3)
    bn = bn_module(2).float().eval()
    bn.weight.data.uniform_()
    bn.bias.data.uniform_()
    ref_input = input.detach().clone().contiguous()
    ref_bn = nn.BatchNorm2d(2).float().eval()
    ref_bn.load_state_dict(bn.state_dict())
    out = bn(input)
    ref_out = ref_bn(ref_input)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert ref_out.is_contiguous()
    assert_equal(out, ref_out)
    input_bf = torch.arange(24, dtype=dtype).reshape(1, 3, 2, 4).permute(0, 2, 1, 3)
    bn_mix = bn_module(2).float().eval()
    ref_bn_f = deepcopy(bn_mix)
    out_bf = bn_mix(input_bf)
    ref_out_bf = ref_bn_f(input_bf.float())
    assert_equal(ref_out_bf, out_bf.float(), atol=0.05, rtol=0.05)


def test_batchnorm_raises_error_if_less_than_one_value_per_channel(impl):
    """TestNN.test_batchnorm_raises_error_if_less_than_one_value_per_channel."""
    x = torch.rand(10)[None, :, None]
    with pytest.raises(ValueError):
        impl.BatchNorm1d(10)(x)


@pytest.mark.parametrize("which", ["running_mean", "running_var", "weight", "bias"])
@pytest.mark.parametrize("size", [9, 11])
def test_batchnorm_raises_error_if_argument_is_not_same_size_as_input(impl, which, size):
    """TestNN.test_batchnorm_raises_error_if_{running_mean,running_var,weight,bias}_is_not_same_
    size_as_input: a RuntimeError, as torch raises."""
    input = torch.rand(2, 10)
    args = {"running_mean": torch.rand(10), "running_var": torch.rand(10)}
    wrong = torch.rand(size)
    args[which] = nn.Parameter(wrong) if which in ("weight", "bias") else wrong
    with pytest.raises(RuntimeError):
        impl.batch_norm(input, args.pop("running_mean"), args.pop("running_var"), **args)


@pytest.mark.parametrize("dual_indices", [(0,), (1,), (1, 2), (0, 1), (0, 1, 2)])
def test_batchnorm_raises_error_if_running_var_or_running_mean_have_forward_grad(
    impl, dual_indices
):
    """TestNN.test_batchnorm_raises_error_if_running_var_or_running_mean_have_forward_grad."""
    args = (torch.randn(3, 2, 5), torch.randn(2), torch.randn(2))
    fn = partial(impl.batch_norm, training=False, momentum=-1.2)
    tangents = tuple(torch.rand_like(x) for x in args)
    with fwad.dual_level():
        duals = [
            fwad.make_dual(p, t) if i in dual_indices else p
            for i, (p, t) in enumerate(zip(args, tangents, strict=True))
        ]
        msg = "batch_norm is not differentiable wrt running_mean and running_var"
        if (1 in dual_indices or 2 in dual_indices) and 0 in dual_indices:
            with pytest.raises(RuntimeError, match=msg):
                fn(*duals)
        else:
            fn(*duals)


def test_batchnorm_buffer_update_when_stats_are_not_tracked(impl):
    """TestNN.test_batchnorm_buffer_update_when_stats_are_not_tracked."""
    bn = impl.BatchNorm1d(4, track_running_stats=True)
    bn.track_running_stats = False  # buffers exist and are used, but not updated
    num_batches = bn.num_batches_tracked.clone()
    running_mean, running_var = bn.running_mean.clone(), bn.running_var.clone()
    bn(torch.rand(32, 4))
    assert torch.equal(num_batches, bn.num_batches_tracked)
    assert torch.equal(running_mean, bn.running_mean)
    assert torch.equal(running_var, bn.running_var)


def test_batchnorm_load_state_dict(impl):
    """TestNN.test_batchnorm_load_state_dict (incl. assign=True onto a meta-device module)."""
    bn = impl.BatchNorm2d(3)
    assert_equal(bn.state_dict()["num_batches_tracked"], torch.tensor(0))
    bn.num_batches_tracked = torch.tensor(10)
    assert_equal(bn.state_dict()["num_batches_tracked"], torch.tensor(10))
    empty_dict = OrderedDict()
    bn.load_state_dict(empty_dict, strict=False)
    assert_equal(bn.state_dict()["num_batches_tracked"], torch.tensor(10))
    with torch.device("meta"):
        meta_bn = impl.BatchNorm2d(3)
    assert meta_bn.num_batches_tracked.device == torch.device("meta")
    meta_bn.load_state_dict(empty_dict, assign=True, strict=False)
    assert_equal(meta_bn.state_dict()["num_batches_tracked"], torch.tensor(0))


# ---------------------------------------------------------------- TestNNDeviceType: BatchNorm


def test_BatchNorm_empty(impl):  # noqa: N802 (torch's test name)
    """TestNNDeviceType.test_BatchNorm_empty: a (0, 3, 2, 2) batch in training."""
    mod = impl.BatchNorm2d(3)
    inp = torch.randn(0, 3, 2, 2, dtype=torch.double)
    mod.double()
    _module_empty_input(mod, inp)
    assert_equal(mod.running_mean, torch.zeros(3, dtype=torch.double))
    assert_equal(mod.running_var, torch.ones(3, dtype=torch.double))
    assert_equal(mod.weight.grad, torch.zeros(3, dtype=torch.double))
    assert_equal(mod.bias.grad, torch.zeros(3, dtype=torch.double))


@pytest.mark.parametrize("training", [False, True])
def test_batchnorm_grad(impl, training):
    """TestNNDeviceType.test_batchnorm_grad: gradcheck and gradgradcheck of the function (in
    fast mode)."""
    bs, n_feat, size_feat = 4, 5, 6
    dt = torch.double
    input = torch.arange(bs * n_feat * size_feat, dtype=dt).view(bs, n_feat, size_feat)
    input.requires_grad_(True)
    weight = torch.arange(1, n_feat + 1, requires_grad=True, dtype=dt)
    bias = torch.arange(n_feat, requires_grad=True, dtype=dt)
    running_mean = 1 - torch.arange(n_feat, dtype=dt)
    running_var = 2 * torch.arange(n_feat, dtype=dt)

    def fn(x, w, b):
        return impl.batch_norm(
            x, running_mean.clone(), running_var.clone(), w, b, training, 0.1, 0.0001
        )

    # fast mode (a random projection of the Jacobian, as test_ops.py's OpInfo checks use):
    # the full Jacobians of 130 inputs take 20 s for torch's own kernel on 2 shared cores
    assert torch.autograd.gradcheck(fn, (input, weight, bias), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (input, weight, bias), fast_mode=True)


def _batchnorm_eval(impl, ndim, dtype):
    module = impl.BatchNorm1d(3).to(dtype)
    module.eval()
    data = torch.rand([3] * ndim, dtype=dtype, requires_grad=True)
    grad = torch.rand([3] * ndim, dtype=dtype)
    res1, grad1 = _forward_backward(module, data, grad)
    res2, grad2 = _forward_backward(module, data, grad)
    assert_equal(res1, res2)
    assert_equal(grad1, grad2)
    module = impl.BatchNorm1d(3, track_running_stats=False).to(dtype)
    data = torch.rand(4, 3, dtype=dtype, requires_grad=True)
    grad = torch.rand(4, 3, dtype=dtype)
    res1, grad1 = _forward_backward(module, data, grad)
    module.eval()
    res2, grad2 = _forward_backward(module, data, grad)
    assert_equal(res1, res2)
    assert_equal(grad1, grad2)


@pytest.mark.parametrize("ndim", [2, 3])
def test_batchnorm_eval(impl, ndim):
    """TestNNDeviceType.test_batchnorm_eval: eval is deterministic; without running stats,
    eval equals training."""
    _batchnorm_eval(impl, ndim, torch.float)


@pytest.mark.parametrize("ndim", [2, 3])
def test_batchnorm_affine(impl, ndim):
    """TestNNDeviceType.test_batchnorm_affine: weight 1 and bias 0 equal no affine."""
    module = impl.BatchNorm1d(3, affine=False)
    module_affine = impl.BatchNorm1d(3, affine=True)
    with torch.no_grad():
        module_affine.weight.fill_(1.0)
        module_affine.bias.zero_()
    data = torch.rand([3] * ndim, requires_grad=True)
    grad = torch.ones_like(data)
    res1, grad1 = _forward_backward(module_affine, data, grad)
    res2, grad2 = _forward_backward(module, data, grad)
    assert_equal(res1, res2)
    assert_equal(grad1, grad2)


def test_batchnorm_simple_average(impl):
    """TestNNDeviceType.test_batchnorm_simple_average: momentum=None is a cumulative average."""
    module = impl.BatchNorm1d(3, momentum=None)
    zeros, ones = torch.zeros(3), torch.ones(3)
    assert_equal(module.running_mean, zeros)
    assert_equal(module.running_var, ones)
    data1, data2 = torch.rand(4, 3), torch.rand(4, 3)
    res1 = module(data1)
    running_mean1, running_var1 = module.running_mean.clone(), module.running_var.clone()
    assert not torch.equal(running_mean1, zeros) and not torch.equal(running_var1, ones)
    module.reset_running_stats()
    assert_equal(module.running_mean, zeros)
    assert_equal(module.running_var, ones)
    res2 = module(data2)
    running_mean2, running_var2 = module.running_mean.clone(), module.running_var.clone()
    module.reset_running_stats()
    res3 = module(data1)
    res4 = module(data2)
    assert_equal(res3, res1)
    assert_equal(res4, res2)
    assert_equal(module.running_mean, (running_mean1 + running_mean2) / 2)
    assert_equal(module.running_var, (running_var1 + running_var2) / 2)


def test_batchnorm_update_stats(impl):
    """TestNNDeviceType.test_batchnorm_update_stats: training moves the buffers, eval does not."""
    module = impl.BatchNorm1d(3)
    data = torch.rand(4, 3)
    old = [t.clone() for t in (module.running_mean, module.running_var)]
    old_n = module.num_batches_tracked.clone()
    module(data)
    assert not torch.equal(old[0], module.running_mean)
    assert not torch.equal(old[1], module.running_var)
    assert_equal(old_n + 1, module.num_batches_tracked)
    module.eval()
    old = [t.clone() for t in (module.running_mean, module.running_var)]
    old_n = module.num_batches_tracked.clone()
    module(data)
    assert_equal(old[0], module.running_mean)
    assert_equal(old[1], module.running_var)
    assert_equal(old_n, module.num_batches_tracked)


# ---------------------------------------------------------------- TestNNDeviceType: InstanceNorm


@pytest.mark.parametrize(
    ("which", "shape"),
    [
        ("InstanceNorm1d", (4, 4, 9)),
        ("InstanceNorm2d", (4, 4, 7, 5)),
        ("InstanceNorm3d", (4, 4, 3, 4, 2)),
    ],
)
def test_InstanceNorm_general(impl, which, shape):  # noqa: N802 (torch's test name)
    """TestNNDeviceType.test_InstanceNorm{1,2,3}d_general (_test_InstanceNorm_general)."""
    cls = getattr(impl, which)
    input = torch.rand(shape)
    b, c = input.size(0), input.size(1)
    input_var = input.requires_grad_()
    IN = cls(c, eps=0)  # noqa: N806
    output = IN(input_var)
    out_reshaped = output.view(b * c, -1)
    assert_equal(out_reshaped.mean(1).abs().mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    var = out_reshaped.var(1, unbiased=False)
    assert_equal(var.abs().mean(), torch.tensor(1.0), atol=1e-5, rtol=0)
    grad_out = torch.randn_like(output)
    res1 = output.data.clone()
    output.backward(grad_out)
    grad1 = input_var.grad.data.clone()
    IN.eval()  # no running stats: eval behaves as training
    output = IN(input_var)
    input_var.grad = None
    output.backward(grad_out)
    assert_equal(res1, output.data)
    assert_equal(grad1, input_var.grad.data)
    # momentum=1: running stats are the batch mean and the mean of unbiased instance variances
    IN = cls(c, momentum=1, eps=0, track_running_stats=True)  # noqa: N806
    IN(input_var)
    mean = input_var.transpose(1, 0).reshape(c, -1).mean(1)
    var = input_var.transpose(1, 0).reshape(c, b, -1).var(2, unbiased=True)
    assert_equal((mean.data - IN.running_mean).abs().mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    assert_equal(
        (var.data.mean(1) - IN.running_var).abs().mean(), torch.tensor(0.0), atol=1e-5, rtol=0
    )
    # eval: adding X * std to a channel makes that output channel's mean X
    IN.eval()
    delta = IN.running_var.sqrt() * torch.arange(c, dtype=input.dtype)
    delta = delta.view(-1, *[1 for _ in range(2, input.dim())])
    output = IN(input_var + delta)
    assert_equal(output.transpose(0, 1).reshape(c, -1).mean(1), torch.arange(c, dtype=input.dtype))


@pytest.mark.parametrize("which", ["InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d"])
@pytest.mark.parametrize("no_batch_dim", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_instancenorm_raises_error_if_input_channels_is_not_num_features(
    impl, which, no_batch_dim, affine
):
    """TestNNDeviceType.test_instancenorm_raises_error_if_input_channels_is_not_num_features:
    an error with affine, a warning without."""
    inst_norm = getattr(impl, which)(4, affine=affine)
    size = [2] * inst_norm._get_no_batch_dim()
    if not no_batch_dim:
        size = [3] + size
    t = torch.randn(size)
    if affine:
        with pytest.raises(ValueError, match="expected input's size at dim="):
            inst_norm(t)
    else:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            inst_norm(t)
        assert "which is not used because affine=False" in str(w[0].message)


def test_instancenorm_raises_error_if_less_than_one_value_per_channel(impl):
    """TestNNDeviceType.test_instancenorm_raises_error_if_less_than_one_value_per_channel."""
    x = torch.rand(10)[None, :, None]
    with pytest.raises(ValueError):
        impl.InstanceNorm1d(10)(x)


@pytest.mark.parametrize("i", [0, 1, 2])
def test_instancenorm_raises_error_for_single_spatial_element_during_training(impl, i):
    """TestNNDeviceType.test_instancenorm_raises_error_for_single_spatial_element_during_training:
    an error in training, fine in eval."""
    norm = [impl.InstanceNorm1d, impl.InstanceNorm2d, impl.InstanceNorm3d][i]
    m = norm(3, track_running_stats=True)
    input = torch.randn(10, 3, *[1 for _ in range(i + 1)])
    with pytest.raises(ValueError):
        m(input)
    m.eval()
    m(input)


# ---------------------------------------------------------------- TestNNDeviceType: LayerNorm


@pytest.mark.parametrize("dtype", [torch.float, torch.half, torch.bfloat16], ids=str)
def test_LayerNorm_general(impl, dtype):  # noqa: N802 (torch's test name)
    """TestNNDeviceType.test_LayerNorm_general (_test_LayerNorm_general, CPU dtypes)."""
    for i in range(2, 6):
        shape = torch.randint(3, 6, (i,), dtype=torch.long).tolist()
        x = torch.empty(*shape, dtype=dtype).uniform_(0, 10)
        normalized_ndim = random.randint(1, i - 1)
        normalized_shape = shape[-normalized_ndim:]
        unnormalized_shape = shape[:-normalized_ndim]
        ln = impl.LayerNorm(normalized_shape, eps=0).to(dtype)
        ln.weight.data.fill_(1)
        ln.bias.data.fill_(0)
        out = ln(x).view(*(unnormalized_shape + [-1]))
        delta = 1e-1 if dtype in (torch.bfloat16, torch.half) else 1e-5
        mean, var = out.mean(-1), out.var(-1, unbiased=False)
        assert abs(mean.abs().mean().item()) <= delta
        assert abs(var.abs().mean().item() - 1) <= delta
        scale, bias = torch.empty(2).uniform_(0.2, 2).tolist()
        ln.weight.data.fill_(scale)
        ln.bias.data.fill_(bias)
        out = ln(x).view(*(unnormalized_shape + [-1]))
        mean, var = out.mean(-1), out.var(-1, unbiased=False)
        assert abs(mean.abs().mean().item() - bias) <= delta
        assert abs(var.abs().mean().item() - scale**2) <= delta * max(1, scale**2)
    bad_norm_shape_input_shape = {(): (), (2, 3): (3,), (2,): (1, 2, 3), (10,): (2, 3), 10: (2, 3)}
    for norm_shape, input_shape in bad_norm_shape_input_shape.items():
        ln = impl.LayerNorm(norm_shape)
        input = torch.empty(input_shape, dtype=dtype).uniform_(0, 10)
        with pytest.raises(RuntimeError):
            ln(input)


@pytest.mark.parametrize("dtype", [torch.half, torch.bfloat16], ids=str)
@pytest.mark.parametrize("elementwise_affine", [True, False])
def test_LayerNorm_cpu_mixed_dtype(impl, dtype, elementwise_affine):  # noqa: N802
    """TestNNDeviceType.test_LayerNorm_general (_test_LayerNorm_cpu_mixed_dtype): reduced
    input with reduced or float32 parameters equals float32 rounded once."""
    input = torch.empty(2, 3, 11, 3, dtype=dtype).random_(1, 10)
    m = impl.LayerNorm([11, 3], elementwise_affine=elementwise_affine).to(dtype)
    m_fp32 = deepcopy(m).float()
    x_fp32 = input.detach().clone().float().requires_grad_()
    out_fp32 = m_fp32(x_fp32)
    out_fp32.sum().backward()
    m_bf16 = deepcopy(m)
    x_bf16 = input.detach().clone().requires_grad_()
    out_bf16 = m_bf16(x_bf16)
    out_bf16.sum().backward()
    m_mix = deepcopy(m).float()
    x_mix = input.detach().clone().requires_grad_()
    out_mix = m_mix(x_mix)
    out_mix.sum().backward()
    assert_equal(out_fp32.to(dtype=dtype), out_bf16)
    assert_equal(out_fp32.to(dtype=dtype), out_mix)
    assert_equal(x_fp32.grad.to(dtype=dtype), x_bf16.grad, atol=1e-1, rtol=1e-1)
    assert_equal(x_fp32.grad.to(dtype=dtype), x_mix.grad, atol=1e-1, rtol=1e-1)


def test_LayerNorm_numeric(impl):  # noqa: N802 (torch's test name)
    """TestNNDeviceType.test_LayerNorm_numeric, on (2, 64, 64, 36) rather than (2, 256, 256,
    144): against the two-pass formula, atol 1e-5."""
    normalized_shape = [64, 64, 36]
    layer_norm = impl.LayerNorm(normalized_shape).float()
    X = torch.rand(2, *normalized_shape, dtype=torch.float32)  # noqa: N806
    Y = layer_norm(X)  # noqa: N806
    X_view = X.view(-1, 64 * 64 * 36)  # noqa: N806
    mean = X_view.mean(dim=-1, keepdim=True)
    var = X_view.var(dim=-1, unbiased=False, keepdim=True)
    Y_ref = ((X_view - mean) / torch.sqrt(var + layer_norm.eps)).view(*X.size())  # noqa: N806
    assert_equal(Y, Y_ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_rmsnorm_numeric(impl, dtype):
    """TestNNDeviceType.test_rmsnorm_numeric: computed in float32, rounded once."""
    shape = (1, 2, 3)
    X = torch.rand(*shape, dtype=dtype)  # noqa: N806
    w = torch.rand(*shape, dtype=dtype)
    Y = impl.rms_norm(X, shape, w, 0.5)  # noqa: N806
    up = X.float()
    ref = up * torch.rsqrt(up.pow(2).mean(dim=[2, 1, 0], keepdim=True) + 0.5)
    assert_equal((ref * w).type_as(X), Y)


# ---------------------------------------------------------------- TestNNDeviceType: GroupNorm


@pytest.mark.parametrize(
    ("shape", "g"),
    [
        ((1, 2, 3, 4), 2),
        ((2, 3, 10), 3),
        ((3, 1, 1, 1, 2), 1),
        ((2, 6, 4, 2, 2), 3),
        ((1, 256, 1, 1), 32),
    ],
)
@pytest.mark.parametrize("grad", [True, False])
def test_GroupNorm_general(impl, shape, g, grad):  # noqa: N802 (torch's test name)
    """TestNNDeviceType.test_GroupNorm_general (_test_GroupNorm_general)."""
    x = torch.empty(*shape).uniform_(0, 10)
    x.requires_grad_(grad)
    b, c = shape[0], shape[1]
    gn = impl.GroupNorm(g, c, eps=0)
    gn.weight.data.fill_(1)
    gn.bias.data.fill_(0)
    output = gn(x)
    out = output.view(b, g, -1)
    assert abs(out.mean(-1).abs().mean().item()) <= 1e-5
    assert abs(out.var(-1, unbiased=False).abs().mean().item() - 1) <= 1e-5
    if output.requires_grad:
        output.backward(torch.randn_like(output))
    scale = torch.empty(c).uniform_(0.2, 2)
    bias = torch.empty(c).uniform_(0.2, 2)
    gn.weight.data.copy_(scale)
    gn.bias.data.copy_(bias)
    out = gn(x).view(b, c, -1)
    normed = ((out - bias.view(c, 1)) / scale.view(c, 1)).view(b, g, -1)
    assert abs(normed.mean(-1).abs().mean().item()) <= 1e-5
    assert abs(normed.var(-1, unbiased=False).abs().mean().item() - 1) <= 1e-5


@pytest.mark.parametrize(
    ("shape", "g"),
    [((1, 2, 3, 4), 3), ((2, 3, 10), 2), ((3, 1, 1, 1, 2), 10), ((2, 6, 4, 2, 2), 4)],
)
def test_GroupNorm_general_bad_groups(impl, shape, g):  # noqa: N802 (torch's test name)
    """TestNNDeviceType.test_GroupNorm_general: a group count that does not divide C."""
    with pytest.raises(ValueError):
        impl.GroupNorm(g, shape[1])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.half], ids=str)
@pytest.mark.parametrize(
    ("shape", "g"),
    [((1, 8, 4, 3), 2), ((1, 8, 3, 4), 4), ((4, 8, 20, 20), 4), ((1, 40, 20, 20), 2)]
    + [((1, 9, 3, 4, 5), 3), ((1, 60, 4, 10, 10), 3), ((1, 3, 65, 55), 1)],
)
@pytest.mark.parametrize("is_cl", [False, True])
def test_GroupNorm_cpu_mixed_dtype(impl, dtype, shape, g, is_cl):  # noqa: N802
    """TestNNDeviceType.test_GroupNorm_general (_test_GroupNorm_cpu_mixed_dtype), on a subset of
    its shapes scaled down: reduced input with reduced or float32 parameters."""
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}[len(shape)]
    fmt = fmt if is_cl else torch.contiguous_format
    channels = shape[1]
    input = torch.randn(shape).to(dtype=dtype)
    input_bf1 = input.contiguous(memory_format=fmt).detach().requires_grad_(True)
    input_bf2 = input_bf1.detach().clone().requires_grad_(True)
    input_f = input_bf1.float().detach().requires_grad_(True)
    m_bf = impl.GroupNorm(g, channels).to(dtype=dtype)
    m_f = deepcopy(m_bf).float()
    m_f2 = deepcopy(m_f)
    out = m_bf(input_bf1)
    out2 = m_f(input_bf2)
    out3 = m_f2(input_f)
    assert_equal(out, out2, atol=5e-3, rtol=5e-3)
    assert_equal(out2.float(), out3, atol=5e-3, rtol=5e-3)
    grad_out = torch.randn(out2.shape).to(dtype=dtype)
    grad_out_bf1 = grad_out.contiguous(memory_format=fmt).detach()
    grad_out_bf2 = grad_out_bf1.detach().clone()
    grad_out_f = grad_out_bf2.clone().float()
    out2.backward(grad_out_bf2, retain_graph=True)
    out3.backward(grad_out_f, retain_graph=True)
    out.backward(grad_out_bf1, retain_graph=True)
    assert_equal(m_f.weight.grad, m_f2.weight.grad, atol=1e-4, rtol=1e-4)
    assert_equal(m_f.bias.grad, m_f2.bias.grad, atol=1e-5, rtol=1e-5)
    assert_equal(input_bf2.grad.float(), input_f.grad, atol=5e-5, rtol=5e-3)
    atol, rtol = (1e-2, 1.2e-1) if dtype == torch.bfloat16 else (5e-3, 1.5e-2)
    assert_equal(m_bf.weight.grad, m_f.weight.grad.to(dtype=dtype), atol=atol, rtol=rtol)
    assert_equal(m_bf.bias.grad, m_f.bias.grad.to(dtype=dtype), atol=atol, rtol=rtol)
    assert_equal(input_bf1.grad, input_bf2.grad, atol=atol, rtol=rtol)


def test_GroupNorm_raises_error_if_one_value_per_group(impl):  # noqa: N802
    """TestNNDeviceType.test_GroupNorm_raises_error_if_one_value_per_group."""
    x = torch.rand(10)[None, :, None]
    with pytest.raises(ValueError):
        impl.GroupNorm(10, 10)(x)


def test_GroupNorm_empty(impl):  # noqa: N802 (torch's test name)
    """TestNNDeviceType.test_GroupNorm_empty: a (0, 4, 2, 2) batch."""
    _module_empty_input(impl.GroupNorm(2, 4), torch.randn(0, 4, 2, 2))


@pytest.mark.parametrize("dtype", [torch.float, torch.double, torch.bfloat16, torch.half], ids=str)
@pytest.mark.parametrize(
    ("size", "groups"),
    [((4, 8, 10, 10), 4), ((2, 30, 9, 9), 3), ((2, 8, 20, 20), 4), ((2, 9, 7, 11, 15), 3)],
)
@pytest.mark.parametrize("is_mixed", [True, False])
def test_groupnorm_nhwc(impl, dtype, size, groups, is_mixed):
    """TestNNDeviceType.test_groupnorm_nhwc (a subset of its shapes): channels_last in and out,
    equal to the contiguous computation."""
    fmt = torch.channels_last if len(size) == 4 else torch.channels_last_3d
    channels = size[1]
    param_dtype = torch.float if (dtype == torch.bfloat16 and is_mixed) else dtype
    (gn, input, grad), (ref_gn, ref_input, ref_grad) = _with_contiguous_twin(
        lambda: impl.GroupNorm(groups, channels), size, dtype, fmt, param_dtype
    )
    out = gn(input)
    out.backward(grad)
    ref_out = ref_gn(ref_input)
    ref_out.backward(ref_grad)
    assert out.is_contiguous(memory_format=fmt)
    assert ref_out.is_contiguous()
    assert_equal(out, ref_out)
    atol, rtol = 5e-4, 8e-3
    assert_equal(gn.weight.grad, ref_gn.weight.grad, atol=atol, rtol=rtol)
    assert_equal(gn.bias.grad, ref_gn.bias.grad, atol=atol, rtol=rtol)
    assert_equal(input.grad, ref_input.grad, atol=atol, rtol=rtol)


@pytest.mark.parametrize("input_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("grad_format", [torch.contiguous_format, torch.channels_last])
def test_GroupNorm_memory_format(impl, input_format, grad_format):  # noqa: N802
    """TestNNDeviceType.test_GroupNorm_memory_format (regression pytorch#92166)."""
    net_orig = impl.GroupNorm(2, 4)
    net = deepcopy(net_orig)
    x_orig = torch.rand(2, 4, 4, 4, requires_grad=True)
    grad_orig = torch.rand(2, 4, 4, 4)
    x = x_orig.detach().clone().to(memory_format=input_format).requires_grad_(True)
    grad = grad_orig.detach().to(memory_format=grad_format)
    y = net(x)
    y.backward(grad)
    y_orig = net_orig(x_orig)
    y_orig.backward(grad_orig)
    assert_equal(y, y_orig)
    assert_equal(x.grad, x_orig.grad)


def test_GroupNorm_numeric(impl):  # noqa: N802 (torch's test name)
    """TestNNDeviceType.test_GroupNorm_numeric, on (1, 8, 64, 64, 18) rather than (1, 8, 256,
    256, 72): against the two-pass formula, atol 1e-5."""
    groups, channels = 2, 8
    group_norm = impl.GroupNorm(groups, channels).float()
    X = torch.rand(1, channels, 64, 64, 18, dtype=torch.float32)  # noqa: N806
    Y = group_norm(X)  # noqa: N806
    X_view = X.view(1, groups, -1)  # noqa: N806
    mean = X_view.mean(dim=-1, keepdim=True)
    var = X_view.var(dim=-1, unbiased=False, keepdim=True)
    Y_ref = ((X_view - mean) / torch.sqrt(var + group_norm.eps)).view(1, channels, -1)  # noqa: N806
    Y_ref = Y_ref * group_norm.weight.data.view(channels, 1) + group_norm.bias.data.view(  # noqa: N806
        channels, 1
    )
    assert_equal(Y, Y_ref.view(*X.size()), rtol=0, atol=1e-5)


# ---------------------------------------------------------------- TestFusionUtils


@pytest.mark.parametrize(("w_rg", "b_rg"), list(itertools.product([True, False], repeat=2)))
def test_fuse_conv_bn_requires_grad(impl, w_rg, b_rg):
    """TestFusionUtils.test_fuse_conv_bn_requires_grad, with the layer's BatchNorm2d."""
    conv = torch.nn.Conv2d(3, 3, 3)
    bn = impl.BatchNorm2d(3)
    conv.weight.requires_grad = w_rg
    conv.bias.requires_grad = b_rg
    weight, bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    assert weight.requires_grad == w_rg
    assert bias.requires_grad == b_rg


@pytest.mark.parametrize(("w_rg", "b_rg"), list(itertools.product([True, False], repeat=2)))
def test_fuse_linear_bn_requires_grad(impl, w_rg, b_rg):
    """TestFusionUtils.test_fuse_linear_bn_requires_grad, with the layer's BatchNorm1d."""
    linear = torch.nn.Linear(3, 3)
    bn = impl.BatchNorm1d(3)
    linear.weight.requires_grad = w_rg
    linear.bias.requires_grad = b_rg
    weight, bias = fuse_linear_bn_weights(
        linear.weight, linear.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    assert weight.requires_grad == w_rg
    assert bias.requires_grad == b_rg


def test_every_ported_test_names_its_original():
    # the docstring of every test above starts with the torch test it ports
    tests = [v for k, v in globals().items() if k.startswith("test_") and callable(v)]
    ported = [t for t in tests if t.__name__ != "test_every_ported_test_names_its_original"]
    for t in ported:
        assert re.match(r"(TestNN|TestNNDeviceType|TestFusionUtils)\.test_", t.__doc__ or ""), (
            t.__name__
        )
