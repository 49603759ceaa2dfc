"""Tests for bnguide.models.norm_mlp: the MLP with a normalizer chosen by name."""

import pytest
import torch
from torch import nn

from bnguide.models.norm_mlp import NORMS, NormMLP
from bnguide.norms import BatchRenorm1d
from bnguide.norms.registry import check_kind, make_norm


@pytest.mark.parametrize(
    "name, cls",
    [
        ("none", nn.Identity),
        ("batch", nn.BatchNorm1d),
        ("batch-renorm", BatchRenorm1d),
        ("layer", nn.LayerNorm),
        ("group", nn.GroupNorm),
    ],
)
def test_make_norm_returns_the_named_layer(name, cls):
    layer = make_norm(name, 8, groups=2, momentum=0.3)
    assert type(layer) is cls
    if name in ("batch", "batch-renorm"):
        assert layer.momentum == 0.3
    if name == "group":
        assert layer.num_groups == 2


def test_unknown_normalizer_is_rejected_with_the_known_names():
    with pytest.raises(ValueError, match="Unknown normalizer 'batchnorm'. Use one of: 'none', "):
        check_kind("batchnorm", NORMS)
    with pytest.raises(ValueError, match="Unknown normalizer 'LN'"):
        NormMLP(norm="LN")
    assert set(NORMS) == {"none", "batch", "batch-renorm", "layer", "group"}


def test_group_count_must_divide_the_width():
    with pytest.raises(ValueError, match="groups=3 for 100 features. Pick a divisor of 100"):
        make_norm("group", 100, groups=3)


def test_dropout_must_be_a_probability():
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\), got 1.0"):
        NormMLP(dropout=1.0)


@pytest.mark.parametrize("norm", NORMS)
def test_structure_and_redundant_bias(norm):
    model = NormMLP(12, (8, 6), 3, norm=norm, dropout=0.2, groups=2)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 8), (8, 6), (6, 3)]
    batch_wise = norm in ("batch", "batch-renorm")
    # A batch-wise normalizer subtracts each feature's batch mean: a bias before it is redundant.
    assert all((m.bias is None) == batch_wise for m in linears[:-1])
    assert linears[-1].bias is not None
    assert sum(isinstance(m, nn.Dropout) for m in model) == 2
    assert model(torch.randn(5, 12)).shape == (5, 3)
    assert model.norm == norm and model.hidden == (8, 6)


@pytest.mark.parametrize("norm, depends", [("batch", True), ("layer", False), ("group", False)])
def test_only_batch_norm_makes_an_output_depend_on_the_batch(norm, depends):
    torch.manual_seed(0)
    model = NormMLP(10, (8,), 4, norm=norm, groups=2).train()
    x0 = torch.randn(1, 10)
    a = model(torch.cat([x0, torch.randn(7, 10)]))[0]
    b = model(torch.cat([x0, torch.randn(7, 10)]))[0]
    assert (not torch.allclose(a, b, atol=1e-4)) == depends
