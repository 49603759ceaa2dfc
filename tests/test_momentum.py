"""Momentum conventions: conversions, and the update rules against bnguide.nn and torch.nn."""

import math

import numpy as np
import pytest
import torch

from bnguide import momentum
from bnguide.nn import BatchNorm1d


@pytest.mark.parametrize("source", list(momentum.CONVENTIONS))
@pytest.mark.parametrize("target", list(momentum.CONVENTIONS))
def test_convert_round_trips(source, target):
    for m in (0.0, 0.1, 0.5, 0.99):
        there = momentum.convert(m, source, target)
        assert momentum.convert(there, target, source) == pytest.approx(m)


def test_convert_keras_to_pytorch():
    assert momentum.convert(0.99, "keras", "pytorch") == pytest.approx(0.01)
    assert momentum.convert(0.1, "pytorch", "flax") == pytest.approx(0.9)
    assert momentum.convert(0.9, "cs231n", "keras") == pytest.approx(0.9)


@pytest.mark.parametrize("m", [0.1, 0.3])
def test_pytorch_rule_matches_torch_batchnorm_running_mean(m):
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(16, 3, generator=gen, dtype=torch.float64) + t for t in range(6)]
    ref = torch.nn.BatchNorm1d(3, momentum=m, dtype=torch.float64)
    trace = []
    for b in batches:
        ref(b)
        trace.append(ref.running_mean.clone())
    means = np.stack([b.mean(0).numpy() for b in batches])
    ours = momentum.running_average(means, m, "pytorch", initial=0.0)
    np.testing.assert_allclose(ours, torch.stack(trace).numpy(), rtol=1e-12, atol=1e-14)


def test_keras_rule_with_converted_momentum_matches_bnguide_module():
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randn(8, 2, generator=gen, dtype=torch.float64) * 2 for _ in range(10)]
    bn = BatchNorm1d(2, momentum=momentum.convert(0.9, "keras", "pytorch"), dtype=torch.float64)
    for b in batches:
        bn(b)
    means = np.stack([b.mean(0).numpy() for b in batches])
    keras = momentum.running_average(means, 0.9, "keras", initial=0.0)
    np.testing.assert_allclose(bn.running_mean.numpy(), keras[-1], rtol=1e-12)


def test_half_life_definition():
    for m in (0.1, 0.01, 0.5):
        h = momentum.half_life(m)
        assert (1 - m) ** h == pytest.approx(0.5)
    assert momentum.half_life(0.99, "keras") == pytest.approx(math.log(0.5) / math.log(0.99))


def test_defaults_and_variance_conventions_are_stated():
    assert momentum.CONVENTIONS["pytorch"].default == 0.1
    assert momentum.CONVENTIONS["pytorch"].variance == "unbiased"
    assert all(c.variance == "biased" for k, c in momentum.CONVENTIONS.items() if k != "pytorch")
    # torch's own default agrees with the table
    assert torch.nn.BatchNorm1d(1).momentum == momentum.CONVENTIONS["pytorch"].default


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown convention 'mxnet'"):
        momentum.convert(0.9, "mxnet", "pytorch")
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\]"):
        momentum.convert(1.5, "keras", "pytorch")
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        momentum.half_life(1.0, "pytorch")
