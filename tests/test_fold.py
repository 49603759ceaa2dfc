"""fold / fold_bn: the folded network computes the unfolded one's function (float64, 1e-10)."""

import pytest
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

import bnguide.nn as bnn
from bnguide.fold import fold, fold_bn, is_batch_norm
from bnguide.norms import BatchRenorm2d
from bnguide.norms.ghost import GhostBatchNorm


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


def _trained_stats(bn, seed=0):
    """Give a BN non-trivial parameters and running statistics, then switch it to eval."""
    g = torch.Generator().manual_seed(seed)
    c = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=g) * 2)
        bn.running_var.copy_(torch.rand(c, generator=g) * 3 + 0.1)
        if bn.weight is not None:
            bn.weight.copy_(torch.randn(c, generator=g))
            bn.bias.copy_(torch.randn(c, generator=g))
    return bn.eval()


PAIRS = [
    (lambda: nn.Linear(6, 5), lambda: nn.BatchNorm1d(5), (7, 6)),
    (lambda: nn.Linear(6, 5, bias=False), lambda: nn.BatchNorm1d(5, affine=False), (7, 6)),
    (lambda: nn.Conv1d(3, 4, 3), lambda: nn.BatchNorm1d(4), (2, 3, 9)),
    (lambda: nn.Conv2d(3, 4, 3, padding=1), lambda: nn.BatchNorm2d(4), (2, 3, 6, 6)),
    (lambda: nn.Conv2d(4, 6, 3, groups=2, bias=False), lambda: nn.BatchNorm2d(6), (2, 4, 5, 5)),
    (lambda: nn.Conv2d(3, 3, 3, groups=3), lambda: nn.BatchNorm2d(3), (2, 3, 5, 5)),  # depthwise
    (lambda: nn.Conv3d(2, 3, 2), lambda: nn.BatchNorm3d(3), (2, 2, 4, 4, 4)),
    (lambda: nn.Conv2d(3, 4, 3), lambda: bnn.BatchNorm2d(4), (2, 3, 6, 6)),
    (lambda: nn.Conv2d(3, 4, 3), lambda: GhostBatchNorm(4, 2), (2, 3, 6, 6)),
    (lambda: nn.Conv2d(3, 4, 3), lambda: BatchRenorm2d(4), (2, 3, 6, 6)),
]


@pytest.mark.parametrize(("make_layer", "make_bn", "shape"), PAIRS)
def test_folded_layer_computes_layer_then_bn(make_layer, make_bn, shape):
    torch.manual_seed(0)
    layer, bn = make_layer(), _trained_stats(make_bn())
    x = torch.randn(shape)
    folded = fold_bn(layer, bn)
    assert type(folded) is type(layer) and folded.bias is not None
    torch.testing.assert_close(folded(x), bn(layer(x)), atol=1e-10, rtol=0)


# torch's utility needs affine BN (PAIRS[1] has none) and torch's own BN classes (PAIRS[7:])
@pytest.mark.parametrize(("make_layer", "make_bn", "shape"), [PAIRS[0], *PAIRS[2:7]])
def test_fold_bn_matches_torchs_fusion_utility(make_layer, make_bn, shape):
    torch.manual_seed(1)
    layer, bn = make_layer().eval(), _trained_stats(make_bn())
    fuse = fuse_linear_bn_eval if isinstance(layer, nn.Linear) else fuse_conv_bn_eval
    theirs, ours = fuse(layer, bn), fold_bn(layer, bn)
    torch.testing.assert_close(ours.weight, theirs.weight, atol=1e-12, rtol=0)
    torch.testing.assert_close(ours.bias, theirs.bias, atol=1e-12, rtol=0)


def _cnn():
    block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), block, nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 7 * 7, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10),
    )  # fmt: skip


def test_fold_whole_model_same_outputs_and_no_batch_norm_left():
    torch.manual_seed(2)
    model = _cnn()
    model.train()
    for _ in range(5):  # real running statistics
        model(torch.randn(16, 1, 14, 14) * 2 + 1)
    model.eval()
    folded = fold(model)
    x = torch.randn(9, 1, 14, 14)
    torch.testing.assert_close(folded(x), model(x), atol=1e-10, rtol=0)
    assert not any(is_batch_norm(m) for m in folded.modules())
    assert sum(is_batch_norm(m) for m in model.modules()) == 3  # the original is untouched
    assert isinstance(folded[1], nn.Identity) and isinstance(folded[3][1], nn.Identity)


def test_fold_leaves_unpaired_batch_norm_alone():
    model = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 3), nn.ReLU(), nn.BatchNorm1d(3)).eval()
    folded = fold(model)
    assert [type(m).__name__ for m in folded] == ["BatchNorm1d", "Linear", "ReLU", "BatchNorm1d"]


def test_refuses_training_mode():
    model = _cnn()  # modules start in training mode
    with pytest.raises(
        RuntimeError, match=r"fold needs the model in eval mode: call model.eval\(\)"
    ):
        fold(model)
    with pytest.raises(RuntimeError, match=r"Cannot fold BatchNorm2d in training mode.*model.eval"):
        fold_bn(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8))


def test_refuses_batch_norm_without_running_statistics():
    bn = nn.BatchNorm2d(8, track_running_stats=False).eval()
    with pytest.raises(
        ValueError, match=r"without running statistics \(track_running_stats=False\)"
    ):
        fold_bn(nn.Conv2d(1, 8, 3), bn)
    with pytest.raises(ValueError, match="without running statistics"):
        fold(nn.Sequential(nn.Conv2d(1, 8, 3), bn).eval())


@pytest.mark.parametrize(
    ("layer", "bn", "error", "match"),
    [
        (nn.Conv2d(1, 8, 3), nn.BatchNorm2d(4), ValueError,
         "with 8 output channels: they must match"),
        (nn.ConvTranspose2d(1, 8, 3), nn.BatchNorm2d(8), TypeError, "got ConvTranspose2d"),
        (nn.Conv2d(1, 8, 3), nn.GroupNorm(2, 8), TypeError, "expects a batch norm layer"),
    ],
)  # fmt: skip
def test_bad_pairs_give_clear_errors(layer, bn, error, match):
    with pytest.raises(error, match=match):
        fold_bn(layer, bn.eval())


def test_speed_benchmark_folds_without_changing_outputs(float32):
    from bnguide.benchmarks import fold_speed

    result = fold_speed.run(fold_speed.Config(batch_sizes=(2,), repeats=1, inner=1))
    assert result.speedup.shape == (2, 1) and (result.speedup > 0).all()
    assert (result.max_abs_diff < 1e-4).all()
    assert result.bn_layers.tolist() == [2, 4]
    with pytest.raises(ValueError, match="Unknown benchmark model 'resnet'"):
        fold_speed.build("resnet")
