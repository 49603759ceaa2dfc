"""Tests of bnguide.ics: distributional shift and Definition 2.1 of Santurkar et al. 2018."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnguide.ics import distribution_shift, gradient_shift, wasserstein_1d
from bnguide.landscape import functional_loss, stateless_copy


def _w1_from_cdfs(a: np.ndarray, b: np.ndarray) -> float:
    """W1 as the integral of |F_a - F_b| over the real line (piecewise constant CDFs)."""
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid[:-1], side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid[:-1], side="right") / len(b)
    return float(np.sum(np.abs(fa - fb) * np.diff(grid)))


def test_wasserstein_matches_cdf_integral():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(200, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(200, 3, generator=gen, dtype=torch.float64) * 2 + 0.5
    ours = wasserstein_1d(a, b)
    for c in range(3):
        assert float(ours[c]) == pytest.approx(_w1_from_cdfs(a[:, c].numpy(), b[:, c].numpy()))


def test_wasserstein_of_a_shift_is_the_shift_and_ignores_order():
    a = torch.randn(100, 2, dtype=torch.float64)
    shifted = a[torch.randperm(100)] + torch.tensor([0.3, -2.0], dtype=torch.float64)
    torch.testing.assert_close(
        wasserstein_1d(a, shifted), torch.tensor([0.3, 2.0], dtype=torch.float64)
    )


def test_distribution_shift_previous_and_first():
    base = torch.randn(50, 4, dtype=torch.float64)
    snaps = torch.stack([base, base + 1, base + 3])  # (T, N, C)
    torch.testing.assert_close(
        distribution_shift(snaps), torch.tensor([1.0, 2.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        distribution_shift(snaps, reference="first"), torch.tensor([1.0, 3.0], dtype=torch.float64)
    )


def test_distribution_shift_errors():
    with pytest.raises(ValueError, match=r"shape \(T, N, C\) with T >= 2"):
        distribution_shift(torch.zeros(1, 5, 2))
    with pytest.raises(ValueError, match="reference must be"):
        distribution_shift(torch.zeros(2, 5, 2), reference="last")
    with pytest.raises(ValueError, match="same shape"):
        wasserstein_1d(torch.zeros(5, 2), torch.zeros(4, 2))


def _mlp(norm: bool) -> nn.Sequential:
    torch.manual_seed(1)
    layers: list[nn.Module] = []
    for n_in, n_out in [(6, 7), (7, 7), (7, 5)]:
        layers.append(nn.Linear(n_in, n_out))
        if norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(nn.Tanh())
    layers.append(nn.Linear(5, 3))
    return nn.Sequential(*layers).double()


def _groups(net):
    groups = []
    for name, _ in net.named_parameters():
        index, kind = name.split(".", 1)
        if isinstance(net[int(index)], nn.Linear) and kind == "weight":
            groups.append((name, [name]))
        else:
            groups[-1][1].append(name)
    return groups


def _reference(net, groups, x, y, lr):
    """Literally take the SGD step for the layers below i on a copy, then backpropagate."""
    model = stateless_copy(net)
    loss = F.cross_entropy(model(x), y)
    names = [n for n, _ in model.named_parameters()]
    g = dict(zip(names, torch.autograd.grad(loss, list(model.parameters())), strict=True))
    l2, cos = [], []
    for i, (weight, _) in enumerate(groups):
        moved = copy.deepcopy(model)
        below = {n for _, ns in groups[:i] for n in ns}
        with torch.no_grad():
            for n, p in moved.named_parameters():
                if n in below:
                    p.sub_(lr * g[n])
        p_w = dict(moved.named_parameters())[weight]
        (g_new,) = torch.autograd.grad(F.cross_entropy(moved(x), y), [p_w])
        l2.append(float((g[weight] - g_new).norm()))
        cos.append(float(F.cosine_similarity(g[weight].flatten(), g_new.flatten(), dim=0)))
    return torch.tensor(l2, dtype=torch.float64), torch.tensor(cos, dtype=torch.float64)


@pytest.mark.parametrize("norm", [False, True])
@pytest.mark.parametrize("vectorized", [True, False])
def test_gradient_shift_matches_literal_definition(norm, vectorized):
    net = _mlp(norm)
    groups = _groups(net)
    x = torch.randn(20, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))
    lr = 0.5
    params = {k: v.detach() for k, v in net.named_parameters()}
    loss_fn = functional_loss(net, F.cross_entropy)
    grads = torch.func.grad(loss_fn)(params, x, y)
    new = {k: params[k] - lr * grads[k] for k in params}
    l2, cos = gradient_shift(loss_fn, params, new, groups, x, y, vectorized=vectorized)
    ref_l2, ref_cos = _reference(net, groups, x, y, lr)
    torch.testing.assert_close(l2, ref_l2.to(l2.dtype))
    torch.testing.assert_close(cos, ref_cos.to(cos.dtype))
    # nothing below the first layer moves: G' = G there
    assert float(l2[0]) < 1e-12 and float(cos[0]) == pytest.approx(1.0)
    assert float(l2[1:].min()) > 0


def test_gradient_shift_passes_given_gradients_through():
    net = _mlp(False)
    groups = _groups(net)
    x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
    params = {k: v.detach() for k, v in net.named_parameters()}
    loss_fn = functional_loss(net, F.cross_entropy)
    grads = torch.func.grad(loss_fn)(params, x, y)
    new = {k: params[k] - 0.1 * grads[k] for k in params}
    a = gradient_shift(loss_fn, params, new, groups, x, y)
    b = gradient_shift(loss_fn, params, new, groups, x, y, grads=grads)
    torch.testing.assert_close(a, b)


def test_gradient_shift_reports_unknown_parameter_names():
    net = _mlp(False)
    params = {k: v.detach() for k, v in net.named_parameters()}
    with pytest.raises(KeyError, match="are not in params"):
        gradient_shift(
            functional_loss(net, F.cross_entropy),
            params,
            params,
            [("5.weight", ["5.weight"])],
            torch.zeros(2, 6, dtype=torch.float64),
            torch.zeros(2, dtype=torch.long),
        )


def test_relative_shift_is_scale_free():
    gen = torch.Generator().manual_seed(5)
    base = torch.randn(400, 3, generator=gen, dtype=torch.float64)
    snaps = torch.stack([base, base + 0.5])
    rel = distribution_shift(snaps, relative=True)
    rel_scaled = distribution_shift(10 * snaps, relative=True)
    torch.testing.assert_close(rel, rel_scaled)
    expected = (0.5 / (base + 0.5).std(0, unbiased=False)).mean()
    torch.testing.assert_close(rel, expected.reshape(1))
