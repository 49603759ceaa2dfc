"""Layer statistics of sigmoid MLPs: compared with autograd on the standard PyTorch model."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from bnguide.models import MLPSpec, StackedMLP, draw_weights
from bnguide.saturation import gaussian_saturated_share, layer_statistics


def _net(norm, std=0.5, members=2, activation="sigmoid"):
    spec = MLPSpec(
        in_features=8, hidden=(7, 6), out_features=3, activation=activation, placement=norm
    )
    drawn = [draw_weights(spec.sizes, std, seed=s) for s in range(members)]
    weights = [torch.stack([d[l] for d in drawn]) for l in range(len(spec.sizes) - 1)]
    return StackedMLP(spec, members).load_weights_(weights).train()


@pytest.mark.parametrize("norm", ["none", "before", "after"])
def test_matches_autograd_on_each_member(norm):
    torch.manual_seed(0)
    net = _net(norm, std=1.5)
    x, y = torch.randn(40, 8) * 2, torch.randint(0, 3, (40,))
    running = net.running_mean0.clone() if norm != "none" else None
    stats = layer_statistics(net, x, y, threshold=0.1, bins=10, gradient_range=(-8.0, 0.0))
    if running is not None:  # a copy was measured: the running statistics did not move
        assert torch.equal(net.running_mean0, running)
    for m in range(net.members):
        model = net.member(m).train()
        pre = []
        hooks = [
            mod.register_forward_hook(lambda _, inp, __, pre=pre: pre.append(inp[0]))
            for mod in model
            if isinstance(mod, nn.Sigmoid)
        ]
        loss = nn.functional.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, pre)
        for h in hooks:
            h.remove()
        for l, (a, g) in enumerate(zip(pre, grads, strict=True)):
            s = torch.sigmoid(a).detach().numpy()
            expected = ((s < 0.1) | (s > 0.9)).mean()
            assert stats.saturated[m, l] == pytest.approx(expected, abs=1e-12)
            rms = g.pow(2).mean().sqrt().item()
            assert stats.gradient_rms[m, l] == pytest.approx(rms, rel=1e-4)
            hist = np.histogram(s, np.linspace(0, 1, 11))[0] / s.size
            assert np.allclose(stats.activation_hist[m, l], hist, atol=1e-12)
    assert np.allclose(stats.activation_hist.sum(-1), 1) and np.allclose(
        stats.gradient_hist.sum(-1), 1
    )


def test_saturation_grows_with_the_weight_scale():
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    small = layer_statistics(_net("none", std=0.05), x, y).saturated
    large = layer_statistics(_net("none", std=5.0), x, y).saturated
    assert (small == 0).all() and (large > 0.5).all()


def test_gaussian_share():
    # sigmoid(z) > 0.95  <=>  z > log(19); two tails of a standard normal
    assert gaussian_saturated_share(0.05) == pytest.approx(
        2 * 0.5 * math.erfc(math.log(19) / math.sqrt(2)), rel=1e-12
    )
    z = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = torch.sigmoid(z)
    assert ((s < 0.05) | (s > 0.95)).double().mean().item() == pytest.approx(
        gaussian_saturated_share(0.05), rel=0.05
    )


def test_bad_input():
    x, y = torch.randn(8, 8), torch.randint(0, 3, (8,))
    with pytest.raises(ValueError, match="sigmoid saturation"):
        layer_statistics(_net("none", activation="relu"), x, y)
    with pytest.raises(ValueError, match=r"threshold must lie in \(0, 0.5\)"):
        layer_statistics(_net("none"), x, y, threshold=0.7)
    with pytest.raises(TypeError, match="StackedMLP"):
        layer_statistics(nn.Linear(8, 3), x, y)
    with pytest.raises(ValueError, match="gradient_range"):
        layer_statistics(_net("none"), x, y, gradient_range=(0.0, -1.0))
