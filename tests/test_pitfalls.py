"""Tests for bnguide.pitfalls: each wrong layer fails as the chapter says, and the fixes work."""

import io

import pytest
import torch
from torch import nn

from bnguide.pitfalls import (
    WrongAttributeBatchNorm1d,
    WrongGradModeBatchNorm1d,
    WrongGraphBatchNorm1d,
    autograd_graph_size,
    train_with_frozen_bn,
)

D = torch.float64


def _x(n=16, c=4, seed=0):
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed), dtype=D) * 2 + 3


def test_grad_mode_layer_uses_batch_statistics_in_eval_mode_when_grad_is_on():
    wrong, right = WrongGradModeBatchNorm1d(4).double(), nn.BatchNorm1d(4).double()
    wrong.eval()
    right.eval()
    x = _x()
    out = wrong(x)  # eval mode, gradients enabled
    expected_batch = nn.functional.batch_norm(x, None, None, training=True)
    torch.testing.assert_close(out, expected_batch)
    assert not torch.allclose(out, right(x))
    assert wrong.running_mean.abs().sum() > 0  # ...and it moved its running statistics
    wrong.train()
    with torch.no_grad():  # training mode under no_grad: the running statistics are used
        out = wrong(x)
        expected = (x - wrong.running_mean) / torch.sqrt(wrong.running_var + wrong.eps)
    torch.testing.assert_close(out, expected * wrong.weight + wrong.bias)


def test_attribute_layer_computes_right_but_loses_its_statistics():
    wrong, right = WrongAttributeBatchNorm1d(4).double(), nn.BatchNorm1d(4).double()
    wrong.running_mean, wrong.running_var = wrong.running_mean.double(), wrong.running_var.double()
    for seed in range(3):
        x = _x(seed=seed)
        torch.testing.assert_close(wrong(x), right(x))
    torch.testing.assert_close(wrong.running_mean, right.running_mean)
    torch.testing.assert_close(wrong.running_var, right.running_var)
    assert "running_mean" not in wrong.state_dict()
    assert "running_mean" in right.state_dict()
    # Save and reload: the copy evaluates with the initial statistics.
    buffer = io.BytesIO()
    torch.save(wrong.state_dict(), buffer)
    buffer.seek(0)
    reloaded = WrongAttributeBatchNorm1d(4).double()
    reloaded.load_state_dict(torch.load(buffer))
    x = _x(seed=9)
    reloaded.running_mean, reloaded.running_var = (
        reloaded.running_mean.double(),
        reloaded.running_var.double(),
    )
    assert not torch.allclose(reloaded.eval()(x), wrong.eval()(x))
    # .to() converts parameters and buffers, not plain attributes.
    moved = WrongAttributeBatchNorm1d(4).to(D)
    assert moved.weight.dtype == D and moved.running_mean.dtype == torch.float32


def test_graph_layer_drags_every_past_step_along():
    wrong = WrongGraphBatchNorm1d(4).double()
    lin = nn.Linear(4, 4).double()
    sizes = []
    for step in range(4):
        loss = wrong(lin(_x(seed=step))).square().mean()
        loss.backward()
        sizes.append(autograd_graph_size(wrong.running_mean))
    assert wrong.running_mean.requires_grad
    assert all(b > a for a, b in zip(sizes, sizes[1:], strict=False))  # grows every step
    wrong.eval()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        wrong(lin(_x(seed=9))).sum().backward()
    # The correct layer keeps plain tensors.
    right = nn.BatchNorm1d(4).double()
    right(lin(_x())).sum().backward()
    assert autograd_graph_size(right.running_mean) == 0
    assert not right.running_mean.requires_grad


def test_graph_layer_outputs_are_still_correct():
    wrong, right = WrongGraphBatchNorm1d(4).double(), nn.BatchNorm1d(4).double()
    x = _x()
    torch.testing.assert_close(wrong(x), right(x))
    torch.testing.assert_close(wrong.running_var.detach(), right.running_var)
    torch.testing.assert_close(wrong.eval()(x).detach(), right.eval()(x))


def test_autograd_graph_size_counts_nodes():
    a, b, c = (torch.randn(3, requires_grad=True) for _ in range(3))
    # SumBackward, AddBackward, MulBackward and one AccumulateGrad per leaf.
    assert autograd_graph_size((a * b + c).sum()) == 6
    assert autograd_graph_size(a) == 0
    assert autograd_graph_size(torch.randn(3)) == 0


def test_train_with_frozen_bn_keeps_statistics_and_trains_the_rest():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout(0.5)).double()
    model(_x())  # training step: statistics move
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_with_frozen_bn(model)
    assert model.training and model[3].training and not model[1].training
    model(_x(seed=5))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model[1].weight.requires_grad
    train_with_frozen_bn(model, freeze_affine=True)
    assert not model[1].weight.requires_grad and model[0].weight.requires_grad


def test_requires_grad_false_alone_does_not_freeze_statistics():
    bn = nn.BatchNorm1d(4).double()
    for p in bn.parameters():
        p.requires_grad_(False)
    bn(_x())
    assert bn.running_mean.abs().sum() > 0


def test_train_with_frozen_bn_needs_bn():
    with pytest.raises(ValueError, match="no batch-norm layer with running statistics"):
        train_with_frozen_bn(nn.Linear(3, 3))
