"""Tests for bnguide.precise_bn: exact population statistics and batch statistics at evaluation."""

import pytest
import torch
from torch import nn

from bnguide.precise_bn import batch_statistics, bn_layers, recompute_bn_stats

D = torch.float64


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 5),
        nn.BatchNorm1d(5),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(5, 4),
        nn.BatchNorm1d(4),
    ).double()


def _cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2)
    ).double()


def _batches(shape, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=torch.float64) * 3 + 1 for _ in range(n)]


def _torch_cumulative(model, batches):
    """Reference: torch's own cumulative average (momentum=None) after a reset."""
    for layer in bn_layers(model):
        layer.reset_running_stats()
        layer.momentum = None
    model.train()
    with torch.no_grad():
        for b in batches:
            model(b)
    return [(m.running_mean.clone(), m.running_var.clone()) for m in bn_layers(model)]


@pytest.mark.parametrize("make, shape", [(_mlp, (8, 6)), (_cnn, (5, 2, 7, 7))])
def test_matches_torch_cumulative_average(make, shape):
    batches = _batches(shape, 6)
    ours, reference = make(), make()
    # Start from stale running statistics so the test sees them replaced.
    for layer in bn_layers(ours):
        layer.running_mean.fill_(7.0)
        layer.running_var.fill_(0.1)
    ours.eval()
    torch.manual_seed(3)  # same dropout masks in both runs: the network runs in training mode
    assert recompute_bn_stats(ours, batches) == 6
    torch.manual_seed(3)
    expected = _torch_cumulative(reference, batches)
    for layer, (mean, var) in zip(bn_layers(ours), expected, strict=True):
        torch.testing.assert_close(layer.running_mean, mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(layer.running_var, var, rtol=1e-12, atol=1e-12)
        assert int(layer.num_batches_tracked) == 6


def test_matches_algorithm_2_with_unequal_batches():
    # One BN layer: E[x] is the mean of batch means, Var[x] the mean of unbiased batch variances.
    layer = nn.BatchNorm1d(3).double()
    batches = [torch.randn(n, 3, dtype=D) * 2 - 1 for n in (4, 9, 2)]
    recompute_bn_stats(layer, batches)
    means = torch.stack([b.mean(0) for b in batches])
    variances = torch.stack([b.var(0, unbiased=True) for b in batches])
    torch.testing.assert_close(layer.running_mean, means.mean(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.running_var, variances.mean(0), rtol=1e-12, atol=1e-12)


def test_restores_modes_and_keeps_parameters():
    model = _mlp()
    model.eval()
    model[4].train()  # a mixed state must come back exactly
    params = [p.clone() for p in model.parameters()]
    recompute_bn_stats(model, _batches((8, 6), 3))
    assert [m.training for m in model] == [False, False, False, False, True, False]
    for p, q in zip(model.parameters(), params, strict=True):
        assert torch.equal(p, q)


def test_eval_output_uses_the_new_statistics():
    layer = nn.BatchNorm1d(3).double()
    x = torch.randn(50, 3, dtype=D) * 4 + 2
    recompute_bn_stats(layer, [x])
    layer.eval()
    expected = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=True) + layer.eps)
    torch.testing.assert_close(layer(x), expected * layer.weight + layer.bias)


def test_batch_statistics_normalizes_with_the_batch_and_restores_buffers():
    model = _mlp()
    recompute_bn_stats(model, _batches((8, 6), 2))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = _batches((10, 6), 1, seed=5)[0]
    with torch.no_grad(), batch_statistics(model) as same:
        assert same is model
        assert model[1].training and model[5].training
        assert not model[3].training  # dropout stays off
        out = model(x)
    # Reference: functional BN with batch statistics, dropout off.
    h = nn.functional.batch_norm(
        model[0](x), None, None, model[1].weight, model[1].bias, training=True
    )
    h = model[4](torch.relu(h))
    expected = nn.functional.batch_norm(h, None, None, model[5].weight, model[5].bias, True)
    torch.testing.assert_close(out, expected)
    assert not any(m.training for m in model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_batch_statistics_restores_on_error():
    model = _mlp().eval()
    before = model[1].running_mean.clone()
    with pytest.raises(RuntimeError, match="boom"), batch_statistics(model):
        model(torch.randn(4, 6, dtype=D))
        raise RuntimeError("boom")
    assert torch.equal(model[1].running_mean, before)
    assert not model[1].training


def test_errors():
    no_bn = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    with pytest.raises(ValueError, match="recompute_bn_stats: the model has no batch-norm layer"):
        recompute_bn_stats(no_bn, [torch.randn(4, 3)])
    with pytest.raises(ValueError, match="batch_statistics: the model has no batch-norm layer"):
        with batch_statistics(no_bn):
            pass
    untracked = nn.BatchNorm1d(3, track_running_stats=False)
    with pytest.raises(ValueError, match="Pass a network that contains BatchNorm layers"):
        recompute_bn_stats(untracked, [torch.randn(4, 3)])
    with pytest.raises(ValueError, match="got no batches: pass at least one batch"):
        recompute_bn_stats(_mlp(), [])
    layer = nn.BatchNorm2d(3).double()
    with pytest.raises(ValueError, match=r"at least 2 values per channel .* shape \(1, 3, 1, 1\)"):
        recompute_bn_stats(layer, [torch.randn(1, 3, 1, 1, dtype=D)])
