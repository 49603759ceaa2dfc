"""bnguide.nn.BatchNorm1d/2d/3d behave exactly like torch.nn.BatchNorm1d/2d/3d."""

import copy
import inspect

import pytest
import torch

import bnguide.nn as bnn
from bnguide.norms import BatchRenorm1d
from bnguide.norms.ghost import GhostBatchNorm
from bnguide.norms.lp import LpNorm1d

F64 = torch.float64
PAIRS = {
    "1d-2D": (bnn.BatchNorm1d, torch.nn.BatchNorm1d, (12, 4)),
    "1d-3D": (bnn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 4, 5)),
    "2d": (bnn.BatchNorm2d, torch.nn.BatchNorm2d, (5, 4, 3, 6)),
    "3d": (bnn.BatchNorm3d, torch.nn.BatchNorm3d, (3, 4, 2, 3, 4)),
}
TORCH_HAS_BIAS_FLAG = "bias" in inspect.signature(torch.nn.BatchNorm1d.__init__).parameters


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)  # the tests that draw from the global generator are reproducible


def _batch(shape, step, gen):
    # input statistics change from step to step, and differ between channels
    per_channel = (1, shape[1]) + (1,) * (len(shape) - 2)
    loc = step * 2.0 + torch.randn(per_channel, generator=gen, dtype=F64)
    scale = 0.5 + step + torch.rand(per_channel, generator=gen, dtype=F64)
    return loc + scale * torch.randn(shape, generator=gen, dtype=F64)


def _assert_same_state(ours, ref):
    for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        a, b = getattr(ours, name), getattr(ref, name)
        assert (a is None) == (b is None), name
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13, msg=name)


@pytest.mark.parametrize("track_running_stats", [True, False])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("momentum", [0.1, 0.7, None])
@pytest.mark.parametrize("kind", list(PAIRS))
def test_training_and_eval_match_torch(kind, momentum, affine, track_running_stats):
    ours_cls, torch_cls, shape = PAIRS[kind]
    kwargs = dict(momentum=momentum, affine=affine, track_running_stats=track_running_stats)
    ours = ours_cls(shape[1], eps=1e-4, dtype=F64, **kwargs)
    ref = torch_cls(shape[1], eps=1e-4, dtype=F64, **kwargs)
    gen = torch.Generator().manual_seed(0)
    if affine:  # non-trivial parameters, identical in both
        with torch.no_grad():
            for module in (ours, ref):
                module.weight.copy_(torch.linspace(0.5, 2.0, shape[1]))
                module.bias.copy_(torch.linspace(-1.0, 1.0, shape[1]))
    for step in range(4):
        x = _batch(shape, step, gen)
        grad = torch.randn(shape, generator=gen, dtype=F64)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, out_ref = ours(xa), ref(xb)
        torch.testing.assert_close(out, out_ref, rtol=1e-12, atol=1e-12)
        out.backward(grad)
        out_ref.backward(grad)
        torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-11)
        if affine:
            torch.testing.assert_close(ours.weight.grad, ref.weight.grad, rtol=1e-10, atol=1e-11)
            torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=1e-10, atol=1e-11)
        _assert_same_state(ours, ref)
    ours.eval()
    ref.eval()
    x = _batch(shape, 5, gen)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    grad = torch.randn(shape, generator=gen, dtype=F64)
    out, out_ref = ours(xa), ref(xb)
    torch.testing.assert_close(out, out_ref, rtol=1e-12, atol=1e-12)
    out.backward(grad)
    out_ref.backward(grad)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-10, atol=1e-11)
    _assert_same_state(ours, ref)  # evaluation leaves every buffer alone


def test_cumulative_average_is_the_mean_of_batch_statistics():
    bn = bnn.BatchNorm1d(3, momentum=None, dtype=F64)
    gen = torch.Generator().manual_seed(1)
    batches = [_batch((10, 3), step, gen) for step in range(5)]
    for x in batches:
        bn(x)
    torch.testing.assert_close(bn.running_mean, torch.stack([x.mean(0) for x in batches]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([x.var(0) for x in batches]).mean(0))
    assert bn.num_batches_tracked.item() == 5


def test_running_var_is_unbiased_and_momentum_weights_the_new_batch():
    bn = bnn.BatchNorm2d(2, momentum=0.25, dtype=F64)
    x = _batch((4, 2, 3, 3), 1, torch.Generator().manual_seed(2))
    bn(x)
    n = 4 * 3 * 3
    batch_var = x.var(dim=(0, 2, 3), correction=0)
    torch.testing.assert_close(bn.running_mean, 0.25 * x.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(bn.running_var, 0.75 * 1.0 + 0.25 * batch_var * n / (n - 1))


@pytest.mark.parametrize("kind", list(PAIRS))
@pytest.mark.parametrize("track_running_stats", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_state_dict_round_trip_with_torch(kind, affine, track_running_stats):
    ours_cls, torch_cls, shape = PAIRS[kind]
    ours = ours_cls(shape[1], affine=affine, track_running_stats=track_running_stats)
    for _ in range(3):
        ours(torch.randn(shape) * 3 + 1)
    ref = torch_cls(shape[1], affine=affine, track_running_stats=track_running_stats)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(ours.state_dict(), strict=True)
    _assert_same_state(ours, ref)
    back = ours_cls(shape[1], affine=affine, track_running_stats=track_running_stats)
    back.load_state_dict(ref.state_dict(), strict=True)
    _assert_same_state(back, ref)


def test_inside_a_torch_model_state_dict_is_interchangeable():
    ours = torch.nn.Sequential(torch.nn.Linear(5, 4, bias=False), bnn.BatchNorm1d(4))
    ref = torch.nn.Sequential(torch.nn.Linear(5, 4, bias=False), torch.nn.BatchNorm1d(4))
    ours(torch.randn(8, 5))
    ref.load_state_dict(ours.state_dict(), strict=True)
    ours.eval()
    ref.eval()
    x = torch.randn(3, 5)
    torch.testing.assert_close(ours(x), ref(x))


@pytest.mark.parametrize("kwargs", [{}, {"affine": False}, {"momentum": None, "eps": 1e-3}])
@pytest.mark.parametrize("kind", ["1d-2D", "2d", "3d"])
def test_repr_matches_torch(kind, kwargs):
    ours_cls, torch_cls, _ = PAIRS[kind]
    assert repr(ours_cls(7, **kwargs)) == repr(torch_cls(7, **kwargs))


@pytest.mark.skipif(not TORCH_HAS_BIAS_FLAG, reason="this torch has no bias= switch")
def test_bias_switch_matches_torch():
    ours, ref = bnn.BatchNorm1d(3, bias=False), torch.nn.BatchNorm1d(3, bias=False)
    assert ours.bias is None and repr(ours) == repr(ref)
    assert list(ours.state_dict()) == list(ref.state_dict())


def test_parameters_and_buffers_are_registered_like_torch():
    ours, ref = bnn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in ref.named_buffers()]
    assert ours.num_batches_tracked.dtype == torch.long
    none = bnn.BatchNorm2d(3, affine=False, track_running_stats=False)
    assert none.weight is None and none.bias is None
    assert none.running_mean is None and none.running_var is None
    assert none.num_batches_tracked is None
    assert list(none.state_dict()) == []


def test_dtype_and_device_arguments():
    bn = bnn.BatchNorm1d(3, dtype=torch.float64, device="cpu")
    assert bn.weight.dtype == bn.running_mean.dtype == bn.running_var.dtype == torch.float64
    assert bn.num_batches_tracked.dtype == torch.long
    assert bn.weight.device.type == "cpu"
    half = bn.to(torch.float32)
    assert half.running_var.dtype == torch.float32


def test_reset_running_stats_and_reset_parameters():
    bn = bnn.BatchNorm1d(3)
    bn(torch.randn(8, 3) * 5 + 2)
    with torch.no_grad():
        bn.weight.fill_(3.0)
        bn.bias.fill_(-1.0)
    bn.reset_running_stats()
    torch.testing.assert_close(bn.running_mean, torch.zeros(3))
    torch.testing.assert_close(bn.running_var, torch.ones(3))  # ones, not zeros
    assert bn.num_batches_tracked.item() == 0
    assert bn.weight[0].item() == 3.0  # parameters untouched
    bn(torch.randn(8, 3) * 5 + 2)
    bn.reset_parameters()
    torch.testing.assert_close(bn.weight, torch.ones(3))
    torch.testing.assert_close(bn.bias, torch.zeros(3))
    torch.testing.assert_close(bn.running_var, torch.ones(3))


def test_mode_comes_from_self_training_not_grad_mode():
    ref = torch.nn.BatchNorm1d(3, dtype=F64)
    ours = bnn.BatchNorm1d(3, dtype=F64)
    x = torch.randn(6, 3, dtype=F64) * 2 + 1
    with torch.no_grad():  # training mode under no_grad: still batch statistics, still tracked
        torch.testing.assert_close(ours(x), ref(x))
    _assert_same_state(ours, ref)
    ours.eval()
    ref.eval()
    xg = x.clone().requires_grad_()  # eval mode with gradients on: still running statistics
    torch.testing.assert_close(ours(xg), ref(xg))
    _assert_same_state(ours, ref)


def test_running_stats_carry_no_autograd_history():
    bn = bnn.BatchNorm1d(3)
    pointers = bn.running_mean.data_ptr(), bn.running_var.data_ptr()
    for _ in range(3):
        x = torch.randn(8, 3, requires_grad=True)
        bn(x * 2).sum().backward()
    assert (bn.running_mean.data_ptr(), bn.running_var.data_ptr()) == pointers
    for buffer in (bn.running_mean, bn.running_var, bn.num_batches_tracked):
        assert buffer.grad_fn is None and not buffer.requires_grad


def test_eval_without_tracking_uses_batch_statistics():
    bn = bnn.BatchNorm1d(2, track_running_stats=False, affine=False).eval()
    x = torch.randn(50, 2, dtype=F64) * 4 + 3
    out = bn(x)
    torch.testing.assert_close(out.mean(0), torch.zeros(2, dtype=F64), atol=1e-12, rtol=0)


def test_channels_last_input_matches_torch():
    x = torch.randn(4, 3, 5, 6).contiguous(memory_format=torch.channels_last)
    ours, ref = bnn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, out_ref = ours(xa), ref(xb)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(out)
    out.backward(grad)
    out_ref.backward(grad)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-5)
    _assert_same_state_float32(ours, ref)


def _assert_same_state_float32(ours, ref):
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(ours, name), getattr(ref, name), rtol=1e-5, atol=1e-6)


def test_deepcopy_and_to_keep_buffers():
    bn = bnn.BatchNorm1d(3)
    bn(torch.randn(5, 3))
    clone = copy.deepcopy(bn).to(torch.float64)
    torch.testing.assert_close(clone.running_mean, bn.running_mean.double())


@pytest.mark.parametrize(
    ("module", "x", "message"),
    [
        (bnn.BatchNorm1d(3), torch.randn(2, 3, 4, 5), r"expected 2D or 3D input \(got 4D input\)"),
        (
            bnn.BatchNorm1d(3),
            torch.randn(3),
            r"expected 2D or 3D input \(got 1D input\).*unsqueeze",
        ),
        (
            bnn.BatchNorm2d(3),
            torch.randn(3, 4, 4),
            r"expected 4D input \(got 3D input\).*\(N, C, H, W\)",
        ),
        (bnn.BatchNorm3d(3), torch.randn(2, 3, 4, 4), r"expected 5D input \(got 4D input\)"),
        (
            bnn.BatchNorm2d(3),
            torch.randn(2, 4, 5, 5),
            r"expected 3 channels in dimension 1 .*got 4",
        ),
        (bnn.BatchNorm1d(8), torch.randn(16, 4), r"num_features=8.*num_features=4"),
        (
            bnn.BatchNorm1d(3),
            torch.randn(1, 3),
            r"Expected more than 1 value per channel when training, "
            r"got input size torch.Size\(\[1, 3\]\)",
        ),
        (
            bnn.BatchNorm2d(3),
            torch.randn(1, 3, 1, 1),
            "Expected more than 1 value per channel when training",
        ),
        (
            bnn.BatchNorm1d(3),
            torch.ones(4, 3, dtype=torch.int64),
            "expected a floating-point input, got dtype torch.int64",
        ),
    ],
)
def test_bad_input_raises_a_clear_error(module, x, message):
    with pytest.raises(ValueError, match=message):
        module(x)


def test_one_example_is_fine_in_eval():
    bn = bnn.BatchNorm2d(3).eval()
    ref = torch.nn.BatchNorm2d(3).eval()
    x = torch.randn(1, 3, 1, 1)
    torch.testing.assert_close(bn(x), ref(x))


def test_torch_raises_the_same_dimension_messages():
    for cls, x in [
        (torch.nn.BatchNorm1d, torch.randn(3)),
        (torch.nn.BatchNorm2d, torch.randn(3, 4, 4)),
    ]:
        with pytest.raises(ValueError, match=r"expected .* input \(got \dD input\)"):
            cls(3)(x)


# ---------------------------------------------------------------- NormBase


def test_normbase_makes_a_new_normalizer_one_small_class():
    class MaxNorm1d(bnn.NormBase):
        _repr_positional = ("num_features",)
        _repr_keywords = ("affine", "bias")

        def __init__(self, num_features, affine=True, bias=True):
            self.num_features = num_features
            super().__init__(num_features, affine, bias)

        def forward(self, x):
            return x / x.abs().amax(0) * self.weight + self.bias

    m = MaxNorm1d(3)
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    assert torch.equal(m.weight, torch.ones(3)) and torch.equal(m.bias, torch.zeros(3))
    assert repr(m) == "MaxNorm1d(3, affine=True, bias=True)"
    assert MaxNorm1d(3, bias=False).bias is None
    assert MaxNorm1d(3, affine=False).weight is None
    assert list(m.state_dict()) == ["weight", "bias"]
    assert m.state_dict()._metadata[""]["version"] == 1  # no running statistics


@pytest.mark.parametrize(
    "make",
    [
        lambda: GhostBatchNorm(3, virtual_batch_size=4),
        lambda: BatchRenorm1d(3),
        lambda: LpNorm1d(3, p=1),
    ],
    ids=["ghost", "renorm", "lp"],
)
def test_normbase_running_stats_reset_and_old_checkpoints(make):
    m = make()
    initial = {k: v.clone() for k, v in m.state_dict().items()}
    m(torch.randn(8, 3) * 3 + 1)
    assert m.num_batches_tracked.item() >= 1
    assert m.state_dict()._metadata[""]["version"] == 2
    m.reset_running_stats()
    for key, value in initial.items():
        if key not in ("weight", "bias"):
            assert torch.equal(m.state_dict()[key], value), key
    # a version-1 checkpoint without num_batches_tracked loads strictly, the count set to 0
    m(torch.randn(8, 3))
    old = m.state_dict()
    del old["num_batches_tracked"]
    old._metadata[""]["version"] = 1
    fresh = make()
    fresh.num_batches_tracked.fill_(5)
    fresh.load_state_dict(old, strict=True)
    assert fresh.num_batches_tracked.item() == 0
    # the current version without the key is an error, as in torch
    old._metadata[""]["version"] = 2
    with pytest.raises(RuntimeError, match="num_batches_tracked"):
        make().load_state_dict(old, strict=True)
