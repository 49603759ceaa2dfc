"""Tests of bnguide.landscape: the loss and gradient along the gradient direction."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bnguide.landscape import (
    band_statistics,
    functional_loss,
    probe_gradient_direction,
    stateless_copy,
)
from bnguide.norms.lp import LpNorm1d


def _quadratic(h: torch.Tensor):
    def loss(params, x, y):  # 0.5 w^T H w; the batch is ignored
        w = params["w"]
        return 0.5 * w @ h @ w

    return loss


def test_quadratic_matches_closed_form():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    h = a @ a.T + torch.eye(6, dtype=torch.float64)
    w = torch.randn(6, generator=gen, dtype=torch.float64)
    etas = [0.01, 0.05, 0.2]
    probe = probe_gradient_direction(_quadratic(h), {"w": w}, etas, torch.empty(0), torch.empty(0))
    g = h @ w
    for k, eta in enumerate(etas):
        moved = w - eta * g
        torch.testing.assert_close(probe.losses[k], 0.5 * moved @ h @ moved)
        # grad L(w) - grad L(w - eta g) = eta H g: a difference, so it vanishes as eta -> 0
        torch.testing.assert_close(probe.grad_diffs[k], eta * (h @ g).norm())
    beta = torch.tensor(probe.beta, dtype=torch.float64)
    torch.testing.assert_close(beta, (h @ g).norm() / g.norm())
    assert probe.loss == pytest.approx(float(0.5 * w @ h @ w))
    assert probe.grad_norm == pytest.approx(float(g.norm()))
    assert probe.loss_band == (float(probe.losses.min()), float(probe.losses.max()))
    assert probe.grad_band == (float(probe.grad_diffs.min()), float(probe.grad_diffs.max()))


def _net(norm: str) -> nn.Sequential:
    torch.manual_seed(0)
    layers = [nn.Linear(5, 8)]
    if norm == "bn":
        layers.append(nn.BatchNorm1d(8))
    elif norm == "l1":
        layers.append(LpNorm1d(8, p=1))
    layers += [nn.ReLU(), nn.Linear(8, 3)]
    return nn.Sequential(*layers).double()


def _reference(net, x, y, etas):
    """Move a copy of the model's parameters in place and use ordinary autograd."""
    model = stateless_copy(net)
    params = list(model.parameters())
    loss = F.cross_entropy(model(x), y)
    g = torch.autograd.grad(loss, params)
    losses, diffs = [], []
    for eta in etas:
        with torch.no_grad():
            for p, gi in zip(params, g, strict=True):
                p.sub_(eta * gi)
        loss_eta = F.cross_entropy(model(x), y)
        g_eta = torch.autograd.grad(loss_eta, params)
        losses.append(float(loss_eta.detach()))
        diffs.append(
            float(torch.sqrt(sum((a - b).square().sum() for a, b in zip(g, g_eta, strict=True))))
        )
        with torch.no_grad():
            for p, gi in zip(params, g, strict=True):
                p.add_(eta * gi)
    return torch.tensor(losses, dtype=torch.float64), torch.tensor(diffs, dtype=torch.float64)


@pytest.mark.parametrize("norm", ["none", "bn", "l1"])
@pytest.mark.parametrize("vectorized", [True, False])
def test_matches_autograd_reference(norm, vectorized):
    net = _net(norm)
    x = torch.randn(16, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (16,))
    etas = [0.05, 0.5, 2.0]
    loss_fn = functional_loss(net, F.cross_entropy)
    params = dict(net.named_parameters())
    probe = probe_gradient_direction(loss_fn, params, etas, x, y, vectorized=vectorized)
    ref_losses, ref_diffs = _reference(net, x, y, etas)
    torch.testing.assert_close(probe.losses, ref_losses)
    torch.testing.assert_close(probe.grad_diffs, ref_diffs)


def test_probing_leaves_running_statistics_alone():
    net = _net("bn")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    loss_fn = functional_loss(net, F.cross_entropy)
    x = torch.randn(16, 5, dtype=torch.float64)
    probe_gradient_direction(
        loss_fn, dict(net.named_parameters()), [0.1, 1.0], x, torch.zeros(16, dtype=torch.long)
    )
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_stateless_copy_normalizes_like_the_original_in_training_mode():
    net = _net("bn")
    clone = stateless_copy(net)
    assert clone[1].running_mean is None and not clone[1].track_running_stats
    x = torch.randn(10, 5, dtype=torch.float64)
    torch.testing.assert_close(clone(x), net(x))
    assert net[1].running_mean is not None


@pytest.mark.parametrize("etas", [[], [0.1, 0.0], [-1.0]])
def test_step_sizes_must_be_positive(etas):
    with pytest.raises(ValueError, match="step_sizes must be a non-empty sequence of positive"):
        probe_gradient_direction(_quadratic(torch.eye(2)), {"w": torch.ones(2)}, etas)


def test_probes_never_change_the_training_run():
    from bnguide.training import santurkar

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 784, generator=gen), torch.randint(0, 10, (300,), generator=gen)
    logs = []
    for with_probe in (False, True):
        net = santurkar.glorot_mlp("batch", hidden=(16, 16))
        loss_fn = functional_loss(net, F.cross_entropy)

        def probe(step, net, params, grads, xb, yb, loss_fn=loss_fn):
            probe_gradient_direction(loss_fn, params, [0.05, 0.2], xb, yb)

        logs.append(
            santurkar.train(
                net,
                x,
                y,
                steps=8,
                lr=0.1,
                eval_every=4,
                eval_data=(x[:100], y[:100]),
                probe_steps=range(8),
                probe=probe if with_probe else None,
            )
        )
    np.testing.assert_array_equal(logs[0].train_accuracy, logs[1].train_accuracy)
    np.testing.assert_array_equal(logs[0].train_loss, logs[1].train_loss)  # first is NaN


def test_santurkar_mlp_experiment_at_small_scale():
    from bnguide.experiments import santurkar_mlp as exp

    cfg = exp.Config(
        hidden=(8, 8),
        variants=("none", "l1"),
        steps=4,
        probe_every=2,
        eval_every=2,
        n_eval=64,
        n_test=64,
        n_train=512,
        step_multipliers=(1.0, 2.0, 4.0),
    )
    result = exp.run(cfg)
    assert result.band_losses["l1"].shape == (2, 3)
    assert result.ics_cos["none"].shape == (2, 3)
    assert result.test_accuracy["none"].shape == (3,)
    np.testing.assert_allclose(result.step_sizes, [0.1, 0.2, 0.4])
    np.testing.assert_allclose(result.ics_cos["none"][:, 0], 1.0, atol=1e-6)


def test_band_statistics_match_probe_properties():
    gen = torch.Generator().manual_seed(3)
    a = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    loss_fn = _quadratic(a @ a.T + torch.eye(4, dtype=torch.float64))
    etas = [0.01, 0.03, 0.1]
    probes = [
        probe_gradient_direction(
            loss_fn,
            {"w": torch.randn(4, generator=gen, dtype=torch.float64)},
            etas,
            torch.empty(0),
            torch.empty(0),
        )
        for _ in range(3)
    ]
    stats = band_statistics(
        np.stack([p.losses.numpy() for p in probes]),
        np.stack([p.grad_diffs.numpy() for p in probes]),
        np.array(etas),
        np.array([p.grad_norm for p in probes]),
    )
    for i, p in enumerate(probes):
        assert stats["loss_band"][i] == pytest.approx(p.loss_band[1] - p.loss_band[0])
        assert stats["grad_envelope"][i] == pytest.approx(p.grad_band[1])
        assert stats["beta"][i] == pytest.approx(p.beta)
    with pytest.raises(ValueError, match=r"must both be \(P, K\)"):
        band_statistics(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="step_sizes must be"):
        band_statistics(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(2), np.zeros(2))
