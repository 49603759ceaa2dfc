"""Tests of bnguide.deep_linear: the 25-layer deep linear network of Santurkar et al. 2018."""

import dataclasses

import numpy as np
import pytest
import torch

from bnguide.deep_linear import (
    DeepLinearNet,
    first_order_spread_step,
    layer_groups,
    make_problem,
    sum_squared_error,
    unit_moment_sensitivity,
    upstream_perturbation,
)
from bnguide.norms.lp import lp_norm


def test_problem_is_a_random_linear_map():
    x, target, a = make_problem(50, 4, seed=3, dtype=torch.float64)
    assert x.shape == (50, 4) and a.shape == (4, 4)
    torch.testing.assert_close(target, x @ a.T)
    x2, _, a2 = make_problem(50, 4, seed=3, dtype=torch.float64)
    assert torch.equal(x, x2) and torch.equal(a, a2)
    assert not torch.equal(a, make_problem(50, 4, seed=4)[2].double())


def test_plain_network_is_the_matrix_product():
    net = DeepLinearNet(depth=6, dim=4, seed=0).double()
    x = torch.randn(30, 4, dtype=torch.float64)
    product = torch.eye(4, dtype=torch.float64)
    for layer in net.layers:
        product = layer.weight @ product
    torch.testing.assert_close(net(x), x @ product.T)


@pytest.mark.parametrize(
    "norm, p", [("batch", None), ("l1", 1.0), ("l2", 2.0), ("linf", float("inf"))]
)
def test_normalized_network_matches_layer_by_layer_reference(norm, p):
    net = DeepLinearNet(depth=5, dim=3, norm=norm, seed=1, eps=1e-5).double()
    with torch.no_grad():
        for m in net.norms:
            m.weight.uniform_(0.5, 2.0)
            m.bias.normal_()
    x = torch.randn(40, 3, dtype=torch.float64) * 2 + 1
    h = x
    for i, layer in enumerate(net.layers):
        h = h @ layer.weight.T
        if i < 4:
            g, b = net.norms[i].weight, net.norms[i].bias
            if p is None:  # BN: the biased variance, eps inside the square root
                h = g * (h - h.mean(0)) / (h.var(0, unbiased=False) + 1e-5).sqrt() + b
            else:
                h = lp_norm(h, None, None, g, b, training=True, eps=1e-5, p=p)
    torch.testing.assert_close(net(x), h)
    assert len(net.norms) == 4  # none after the output layer


def test_glorot_uniform_initialisation():
    net = DeepLinearNet(depth=25, dim=10, seed=0)
    w = torch.stack([layer.weight.detach() for layer in net.layers])
    bound = (6 / 20) ** 0.5
    assert float(w.abs().max()) <= bound
    assert float(w.var()) == pytest.approx(2 / 20, rel=0.1)  # Var U(-b, b) = b^2 / 3 = 2 / 20
    same = DeepLinearNet(depth=25, dim=10, seed=0)
    assert torch.equal(net.layers[3].weight, same.layers[3].weight)


def test_loss_is_a_sum_over_samples():
    out, target = torch.ones(7, 3), torch.zeros(7, 3)
    assert float(sum_squared_error(out, target)) == 21.0


def test_layer_groups_cover_every_parameter_once():
    net = DeepLinearNet(depth=4, dim=3, norm="batch")
    groups = layer_groups(net)
    names = [n for _, ns in groups for n in ns]
    assert sorted(names) == sorted(n for n, _ in net.named_parameters())
    assert groups[0] == ("layers.0.weight", ["layers.0.weight", "norms.0.weight", "norms.0.bias"])
    assert groups[-1] == ("layers.3.weight", ["layers.3.weight"])


def test_bn_cuts_the_dependence_of_a_unit_on_earlier_layers():
    x = torch.randn(200, 5, dtype=torch.float64)
    plain = unit_moment_sensitivity(DeepLinearNet(8, 5, "none", seed=2).double(), x, layer=5)
    bn_net = DeepLinearNet(8, 5, "batch", seed=2, eps=1e-12).double()
    bn = unit_moment_sensitivity(bn_net, x, layer=5)
    assert bool((plain[:6] > 1e-3).all()) and bool((plain[6:] == 0).all())
    # with BN only gamma and beta of the unit's own layer move its mean and spread
    # (earlier layers only through eps, made negligible here)
    assert float(bn[:5].max()) < 1e-6 * float(bn[5])
    assert float(bn[5]) > 0.5


def test_upstream_perturbation_moves_moments_only_without_bn():
    x = torch.randn(300, 5, dtype=torch.float64)
    plain_net = DeepLinearNet(8, 5, "none", seed=3).double()
    bn_net = DeepLinearNet(8, 5, "batch", seed=3, eps=1e-12).double()
    before = plain_net.layers[0].weight.clone()
    plain = upstream_perturbation(plain_net, x, layer=6)
    bn = upstream_perturbation(bn_net, x, layer=6)
    assert torch.equal(plain_net.layers[0].weight, before)  # the nudge is undone
    assert float(plain["std"].max()) > 1e-3
    assert float(bn["mean"].max()) < 1e-10 and float(bn["std"].max()) < 1e-8
    assert float(bn["values"].min()) > 1e-4  # individual examples still move


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="Unknown normalizer 'gn'. Use one of: 'none', 'batch'"):
        DeepLinearNet(norm="gn")
    with pytest.raises(ValueError, match="Unknown normalizer 'bn'"):  # the registry's "batch"
        DeepLinearNet(norm="bn")
    with pytest.raises(ValueError, match="depth must be at least 1"):
        DeepLinearNet(depth=0)
    with pytest.raises(ValueError, match="n_samples >= 2"):
        make_problem(1)
    net = DeepLinearNet(depth=3, dim=2)
    with pytest.raises(ValueError, match=r"layer must be in \[0, 2\]"):
        unit_moment_sensitivity(net, torch.randn(4, 2), layer=3)
    with pytest.raises(ValueError, match=r"unit must be in \[0, 1\]"):
        unit_moment_sensitivity(net, torch.randn(4, 2), layer=1, unit=2)
    with pytest.raises(ValueError, match="need 0 <= source <= layer"):
        upstream_perturbation(net, torch.randn(4, 2), layer=0, source=1)


def test_experiment_shapes_and_measurements_do_not_change_training():
    from bnguide.experiments import santurkar_deep_linear as exp

    small = exp.Config(
        depth=4,
        dim=3,
        n_samples=20,
        steps=6,
        loss_every=2,
        probe_every=3,
        dense_until=0,
        variants=("none", "batch", "l1"),
        step_multipliers=(0.5, 2.0),
        lr=1e-3,
        seeds=(0, 1),
    )
    result = exp.run(small)
    assert result.loss["batch"].shape == (2, 4)  # (seeds, losses)
    assert result.band_losses["l1"].shape == (2, 2, 2)  # (seeds, probes, step sizes)
    assert result.ics_cos["batch"].shape == (2, 2, 4)  # (seeds, probes, layers)
    assert set(result.ics_cos) == {"none", "batch"}
    assert result.ms_per_step > 0
    unmeasured = exp.run(exp.Config(**{**small.__dict__, "ics_variants": ()}))
    assert unmeasured.ics_cos == {}
    for v in small.variants:
        assert np.array_equal(result.loss[v], unmeasured.loss[v])


def test_experiment_rejects_bad_configs():
    from bnguide.experiments import santurkar_deep_linear as exp

    with pytest.raises(ValueError, match="Config.probe_every must be a positive integer"):
        exp.run(exp.Config(probe_every=0))
    with pytest.raises(ValueError, match="Config.dense_until must be a non-negative integer"):
        exp.run(exp.Config(dense_until=-50))
    with pytest.raises(ValueError, match="Unknown normalizer 'bn'"):
        exp.run(exp.Config(variants=("bn",), ics_variants=()))
    with pytest.raises(RuntimeError, match=r"\['none'\] diverged at step \d+; lower Config.lr"):
        exp.run(exp.Config(depth=3, variants=("none",), lr=10.0, steps=50, seeds=(0,)))


def _stack(nets, dtype=torch.float64):
    weights = torch.stack([torch.stack([m.weight.detach() for m in n.layers]) for n in nets])
    ones = torch.ones(len(nets), nets[0].depth - 1, nets[0].dim, dtype=dtype)
    gamma = torch.stack([torch.stack([m.weight.detach() for m in n.norms]) if n.norms else ones[0]
                         for n in nets])  # fmt: skip
    beta = torch.stack([torch.stack([m.bias.detach() for m in n.norms]) if n.norms else 0 * ones[0]
                        for n in nets])  # fmt: skip
    return [t[None].requires_grad_(True) for t in (weights, gamma, beta)]


def test_stacked_loss_is_every_networks_summed_squared_error_and_gradient():
    # float64 both ways; the moments replace sums over the samples, so the two differ by
    # rounding only: 1e-8 relative here (a few hundred float64 eps: 25 layers of products),
    # where eps = 1e-5 keeps every scale away from 0
    from bnguide.deep_linear import StackedProblem, stacked_loss

    kinds, seeds = ("none", "batch", "l2", "l1", "linf"), (0, 3)
    problem = StackedProblem(seeds, kinds, n_samples=200, dim=4)
    nets = []
    for kind in kinds:
        for s in seeds:
            net = DeepLinearNet(6, 4, kind, seed=s + 1).double()
            with torch.no_grad():
                for m in net.norms:  # gamma and beta away from 1 and 0
                    m.weight.uniform_(0.5, 2.0)
                    m.bias.normal_()
            nets.append(net)
    params = _stack(nets)
    loss = stacked_loss(*params, problem)
    grads = torch.autograd.grad(loss.sum(), params)
    assert loss.shape == (1, len(nets))
    for j, (net, (kind, s)) in enumerate(
        zip(nets, [(k, s) for k in kinds for s in seeds], strict=True)
    ):
        x, target, _ = (t.double() for t in make_problem(200, 4, seed=s))  # drawn in float32
        expected = sum_squared_error(net(x), target)
        ref = torch.autograd.grad(expected, [m.weight for m in net.layers])
        assert float(loss[0, j]) == pytest.approx(float(expected), rel=1e-8), kind
        ref = torch.stack(ref)
        torch.testing.assert_close(
            grads[0][0, j], ref, rtol=1e-6, atol=1e-7 * float(ref.abs().max())
        )
        if kind == "none":
            assert float(grads[1][0, j].abs().max()) == 0.0  # no norms: gamma unused
        else:
            ref_gamma = torch.autograd.grad(
                sum_squared_error(net(x), target), [m.weight for m in net.norms]
            )
            ref_gamma = torch.stack(ref_gamma)
            scale = 1e-7 * float(ref_gamma.abs().max())
            torch.testing.assert_close(grads[1][0, j], ref_gamma, rtol=1e-6, atol=scale)


def test_stacked_problem_rejects_bad_arguments():
    from bnguide.deep_linear import StackedProblem

    with pytest.raises(ValueError, match="Unknown normalizer 'group'"):
        StackedProblem((0,), ("none", "group"))
    with pytest.raises(ValueError, match="need distinct kinds and at least one seed"):
        StackedProblem((0,), ("none", "none"))
    with pytest.raises(ValueError, match="need distinct kinds and at least one seed"):
        StackedProblem((), ("none",))


def test_stacked_run_matches_one_network_at_a_time():
    # The experiment (all variants and seeds stacked, loss from moments) against the plain
    # per-network loop of DeepLinearNet, bnguide.landscape and bnguide.ics, both in float64 at
    # the paper's lr. They start 1e-9 apart (rounding); gradient descent at lr 1e-6 runs near
    # its stability limit and amplifies that along its sharpest directions, so after 20 steps
    # the losses agree to 3e-5 relative. L-infinity is compared before its first update only:
    # under ATEN_CPU_CAPABILITY=default its two paths parted by 0.2% after 20 steps.
    from bnguide.experiments import santurkar_deep_linear as exp
    from bnguide.ics import gradient_shift
    from bnguide.landscape import functional_loss, probe_gradient_direction

    cfg = exp.Config(steps=20, loss_every=10, probe_every=10, dense_until=0, seeds=(1,))
    cfg = dataclasses.replace(cfg, step_multipliers=(0.1, 1.0, 10.0))
    result = exp.run(cfg)
    etas = torch.tensor(cfg.step_multipliers, dtype=torch.float64) * cfg.lr
    for i, seed in enumerate(cfg.seeds):
        x, target, _ = (t.double() for t in make_problem(seed=seed))  # drawn in float32
        for v in cfg.variants:
            net = DeepLinearNet(norm=v, seed=seed + 1).double()
            loss_fn = functional_loss(net, sum_squared_error)
            losses, bands, cosines = [], [], []
            for step in range(cfg.steps + 1):
                net.zero_grad()
                loss = sum_squared_error(net(x), target)
                if step % cfg.loss_every == 0:
                    losses.append(float(loss.detach()))
                if step == cfg.steps:
                    break
                loss.backward()
                if step % cfg.probe_every == 0:
                    params = {k: p.detach().clone() for k, p in net.named_parameters()}
                    grads = {k: p.grad.detach().clone() for k, p in net.named_parameters()}
                    bands.append(probe_gradient_direction(loss_fn, params, etas, x, target).losses)
                    if v in cfg.ics_variants:
                        new = {k: params[k] - cfg.lr * grads[k] for k in params}
                        groups = layer_groups(net)
                        shift = gradient_shift(loss_fn, params, new, groups, x, target, grads=grads)
                        cosines.append(shift[1])
                with torch.no_grad():
                    for p in net.parameters():
                        p -= cfg.lr * p.grad
            # L-infinity's scale is a max over samples: where two samples nearly tie, rounding
            # picks the maximizer and the two paths then part for good, so only its first
            # record (before any update) is an equivalence check.
            keep = slice(0, 1) if v == "linf" else slice(None)
            np.testing.assert_allclose(result.loss[v][i][keep], losses[keep], rtol=3e-5, err_msg=v)
            bands = torch.stack(bands)[keep]
            np.testing.assert_allclose(result.band_losses[v][i][keep], bands, rtol=3e-5)
            if cosines:
                np.testing.assert_allclose(result.ics_cos[v][i], torch.stack(cosines), atol=1e-5)


def test_first_order_step_is_exact_with_bn_and_spills_over_without():
    x = torch.randn(200, 4, dtype=torch.float64)
    plain_net = DeepLinearNet(10, 4, "none", seed=5).double()
    before = plain_net.layers[0].weight.clone()
    plain = first_order_spread_step(plain_net, x, layer=7, factor=2.0)
    assert torch.equal(plain_net.layers[0].weight, before)  # works on a copy
    assert abs(plain["achieved"] - 1) > 1e-3 and plain["others"] > 1e-2
    bn = first_order_spread_step(DeepLinearNet(10, 4, "batch", seed=5).double(), x, layer=7)
    assert bn["achieved"] == pytest.approx(1.0, abs=1e-6) and bn["others"] < 1e-6
    with pytest.raises(ValueError, match="factor must be positive"):
        first_order_spread_step(plain_net, x, layer=7, factor=0.0)
    with pytest.raises(ValueError, match="need 0 <= layer < 10"):
        first_order_spread_step(plain_net, x, layer=10)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_gradient_shift_on_the_deep_linear_network_matches_literal_steps(norm):
    # Definition 2.1 through the DLN's (1, d, N) norm layout and vmap, against copies of the
    # network whose layers below i literally took their gradient step (weights, gamma, beta).
    import copy

    from bnguide.ics import gradient_shift
    from bnguide.landscape import functional_loss

    x, target, _ = make_problem(64, 4, seed=0, dtype=torch.float64)
    net = DeepLinearNet(6, 4, norm, seed=1).double()
    loss_fn = functional_loss(net, sum_squared_error)
    params = {k: v.detach().clone() for k, v in net.named_parameters()}
    grads = torch.func.grad(loss_fn)(params, x, target)
    lr = 1e-3
    new = {k: params[k] - lr * grads[k] for k in params}
    groups = layer_groups(net)
    l2, cos = gradient_shift(loss_fn, params, new, groups, x, target)
    for i, (weight, _) in enumerate(groups):
        moved = copy.deepcopy(net)
        below = {n for _, names in groups[:i] for n in names}
        with torch.no_grad():
            for n, p in moved.named_parameters():
                if n in below:
                    p.sub_(lr * grads[n])
        w = dict(moved.named_parameters())[weight]
        (g_new,) = torch.autograd.grad(sum_squared_error(moved(x), target), [w])
        g = grads[weight]
        assert float(l2[i]) == pytest.approx(float((g - g_new).norm()), rel=1e-9, abs=1e-9)
        expected = torch.nn.functional.cosine_similarity(g.flatten(), g_new.flatten(), dim=0)
        assert float(cos[i]) == pytest.approx(float(expected), abs=1e-9)
    assert float(cos[0]) == pytest.approx(1.0) and float(l2[1:].min()) > 0


@pytest.mark.parametrize("copies", [1, 3])
def test_hand_written_gradients_match_autograd_with_a_random_upstream_gradient(copies):
    # every kind and two seeds, gamma and beta away from 1 and 0, E copies of the batch; a
    # random weight per network's loss checks that each network gets its own gradient
    from bnguide.deep_linear import (
        StackedProblem,
        fast_stacked_loss,
        stacked_loss,
        stacked_loss_and_grads,
    )

    kinds, seeds, depth, d = ("none", "batch", "l1", "l2", "linf"), (0, 3), 6, 4
    problem = StackedProblem(seeds, kinds, n_samples=200, dim=d)
    gen = torch.Generator().manual_seed(0)
    b = problem.size
    weights = torch.rand(copies, b, depth, d, d, generator=gen, dtype=torch.float64) - 0.5
    gamma = 0.5 + 1.5 * torch.rand(copies, b, depth - 1, d, generator=gen, dtype=torch.float64)
    beta = torch.randn(copies, b, depth - 1, d, generator=gen, dtype=torch.float64)
    params = [t.requires_grad_(True) for t in (weights, gamma, beta)]
    upstream = torch.randn(copies, b, generator=gen, dtype=torch.float64)
    reference = stacked_loss(*params, problem)
    expected = torch.autograd.grad((upstream * reference).sum(), params, retain_graph=True)
    fast = fast_stacked_loss(*params, problem)
    torch.testing.assert_close(fast, reference, rtol=1e-12, atol=0)
    got = torch.autograd.grad((upstream * fast).sum(), params)
    for g, e, name in zip(got, expected, ("weights", "gamma", "beta"), strict=True):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10 * float(e.abs().max()), msg=name)
    loss, plain = stacked_loss_and_grads(*[p.detach() for p in params], problem)
    torch.testing.assert_close(loss, reference.detach(), rtol=1e-12, atol=0)
    # without the upstream weights: each network's own gradient; unused parameters get zeros
    own = torch.autograd.grad(reference.sum(), params, allow_unused=True)
    torch.testing.assert_close(plain[0], own[0], rtol=1e-10, atol=1e-10 * float(own[0].abs().max()))
    none = problem.slices["none"]
    assert float(plain[1][:, none].abs().max()) == 0.0 and float(plain[2][:, none].abs().max()) == 0
    assert float(plain[2][:, :, : depth - 2].abs().max()) == 0.0  # only the last beta matters


def test_run_trains_through_the_one_loop_and_matches_plain_gradient_descent():
    # the experiment's loop (fit.run_sgd with the hand-written loss) against p -= lr * grad
    # with autograd on stacked_loss: the same trajectory to float64 rounding over 30 steps
    from bnguide.deep_linear import StackedProblem, stacked_loss
    from bnguide.experiments import santurkar_deep_linear as exp

    cfg = exp.Config(depth=5, dim=3, n_samples=50, steps=30, loss_every=10, lr=1e-3,
                     variants=("none", "batch", "l2"), seeds=(0, 1), probe_every=10**6,
                     dense_until=0, ics_variants=())  # fmt: skip
    result = exp.run(cfg)
    problem = StackedProblem(cfg.seeds, cfg.variants, cfg.n_samples, cfg.dim)
    params = exp._initial_parameters(cfg, torch.float64)
    losses = []
    for step in range(cfg.steps + 1):
        params = [p.detach().requires_grad_(True) for p in params]
        loss = stacked_loss(*params, problem, cfg.eps)
        if step % cfg.loss_every == 0:
            losses.append(loss[0].detach().numpy())
        grads = torch.autograd.grad(loss.sum(), params, allow_unused=True)
        pairs = zip(params, grads, strict=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in pairs]
        params = [p - cfg.lr * g for p, g in zip(params, grads, strict=True)]
    losses = np.stack(losses, 1)  # (B, E)
    for v in cfg.variants:
        np.testing.assert_allclose(result.loss[v], losses[problem.slices[v]], rtol=1e-9, err_msg=v)
    assert losses[:, -1].max() < losses[:, 0].min()  # it did train


def test_probe_schedule_is_dense_early():
    from bnguide.experiments import santurkar_deep_linear as exp

    steps = exp.probe_schedule(exp.Config())
    assert steps[:3].tolist() == [0, 50, 100] and steps[-1] == 9500 and len(steps) == 38
    assert exp.probe_schedule(exp.Config(steps=120, dense_until=0, probe_every=50)).tolist() == [
        0, 50, 100]  # fmt: skip


def test_late_gain_and_loss_ratios_read_the_recorded_losses():
    from bnguide.experiments import santurkar_deep_linear as exp

    cfg = exp.Config(depth=4, dim=3, n_samples=20, steps=40, loss_every=10, probe_every=20)
    result = exp.run(dataclasses.replace(cfg, variants=("none", "batch"), ics_variants=("none",)))
    loss = result.loss["batch"]  # (S, 5): steps 0, 10, 20, 30, 40
    expected = (loss[:, 2] - loss[:, -1]) / (loss[:, 0] - loss[:, 2])
    np.testing.assert_allclose(exp.late_gain(result, "batch"), expected)
    # a made-up curve: halves of 90 and 9 -> 0.1; a steady descent -> 1
    result.loss["batch"] = np.array([[100.0, 50, 10, 5, 1], [4, 3, 2, 1, 0], [3, 2, 1, 1, 1]])
    np.testing.assert_allclose(exp.late_gain(result, "batch"), [0.1, 1.0, 0.0])
    with np.errstate(divide="ignore"):
        ratio = exp.final_loss_ratio(result, "none", over="batch")
    assert ratio[0] == result.loss["none"][0, -1] and np.isinf(ratio[1])
    np.testing.assert_allclose(
        exp.final_loss_ratio(result, "batch"),
        result.loss["batch"][:, -1] / result.loss["none"][:, -1],
    )


def test_plateau_claims_count_a_seed_only_beyond_half_the_papers_gap():
    from bnguide import claims
    from bnguide.experiments import santurkar_deep_linear as exp

    l1 = claims.get("dln-final-loss-l1-vs-bn").criterion
    linf = claims.get("dln-final-loss-linf-vs-bn").criterion
    paper = exp.PAPER_FINAL_LOSS
    assert l1.margin == pytest.approx((1 - paper["l1"] / paper["batch"]) / 2, abs=0.005)
    assert linf.margin == pytest.approx((paper["linf"] / paper["batch"] - 1) / 2, abs=0.005)
    assert l1.verdict([paper["l1"] / paper["batch"]] * 3) == "reproduced"  # the paper's own ratio
    assert l1.verdict([1.0, 0.99, 1.05]) == linf.verdict([1.0, 1.2, 0.9]) == "not reproduced"
    assert linf.verdict([1.0, 1.6, 1.6]) == "partly"
