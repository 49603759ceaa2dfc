"""bnguide.models: the MLP spec, its torch form, and the stacked nets (hand-written backward)."""

import itertools

import pytest
import torch
from torch import nn

from bnguide.models import (
    ACTIVATIONS,
    NORM_PLACEMENTS,
    MLPSpec,
    StackedMLP,
    build_mlp,
    draw_weights,
    load_weights_,
)

SMALL = {"in_features": 7, "hidden": (5, 6), "out_features": 4}
CASES = list(itertools.product(ACTIVATIONS, NORM_PLACEMENTS))


def stacked(spec, members, *, dtype=torch.float64, std=0.7, jitter=0.3, seed=0):
    """A StackedMLP with distinct random weights per member and perturbed biases/BN params."""
    net = StackedMLP(spec, members, dtype=dtype)
    drawn = [draw_weights(spec.sizes, std, seed + m, dtype=dtype) for m in range(members)]
    net.load_weights_([torch.stack(layer) for layer in zip(*drawn, strict=True)])
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not name.startswith("weight"):
                p.add_(jitter * torch.randn(p.shape, generator=gen, dtype=dtype))
    return net


def cross_entropy(logits, y):
    members, batch = logits.shape[:2]
    logp = torch.log_softmax(logits, -1)
    return -logp.gather(2, y.expand(members, batch).unsqueeze(-1)).squeeze(-1).mean(1)


# --- MLPSpec and build_mlp ------------------------------------------------------------------


def test_spec_sizes_and_bias():
    spec = MLPSpec(placement="before")
    assert spec.sizes == (784, 100, 100, 100, 10)
    assert [spec.has_bias(l) for l in range(4)] == [False, False, False, True]
    assert all(MLPSpec(placement="after").has_bias(l) for l in range(4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "gelu"}, "Unknown activation 'gelu'. Use one of: 'sigmoid', 'relu'"),
        ({"placement": "middle"}, "Unknown norm placement 'middle'. Use one of: 'none', 'before'"),
        ({"hidden": ()}, "MLPSpec needs at least one hidden layer, got hidden=()."),
        ({"hidden": (10, 0)}, "Layer sizes must be positive integers, got (784, 10, 0, 10)."),
        ({"eps": 0.0}, "eps must be positive, got 0.0."),
        ({"momentum": 1.5}, "momentum must be in [0, 1], got 1.5."),
    ],
)
def test_spec_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError) as err:
        MLPSpec(**kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("norm", "layers"),
    [
        ("none", [nn.Linear, nn.Sigmoid, nn.Linear, nn.Sigmoid, nn.Linear]),
        ("before", [nn.Linear, nn.BatchNorm1d, nn.Sigmoid] * 2 + [nn.Linear]),
        ("after", [nn.Linear, nn.Sigmoid, nn.BatchNorm1d] * 2 + [nn.Linear]),
    ],
)
def test_build_mlp_layer_order(norm, layers):
    model = build_mlp(MLPSpec(**SMALL, placement=norm))
    assert [type(m) for m in model] == layers
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert [m.bias is None for m in linears] == [norm == "before"] * 2 + [False]


def test_draw_weights_is_seeded_and_gaussian():
    a = draw_weights((784, 300, 10), 0.05, seed=3)
    b = draw_weights((784, 300, 10), 0.05, seed=3)
    c = draw_weights((784, 300, 10), 0.05, seed=4)
    assert [tuple(w.shape) for w in a] == [(784, 300), (300, 10)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    assert abs(a[0].std().item() - 0.05) < 0.001  # 235,200 draws
    assert abs(a[0].mean().item()) < 0.001


def test_draw_weights_rejects_bad_std():
    with pytest.raises(ValueError, match="The initial weight std must be positive, got 0"):
        draw_weights((3, 2), 0, seed=0)


def test_load_weights_checks_shapes():
    model = build_mlp(MLPSpec(**SMALL))
    with pytest.raises(ValueError, match="has 3 linear layers but got 2 weights"):
        load_weights_(model, draw_weights((7, 5, 6), 0.1, 0))
    bad = draw_weights((7, 5, 6, 4), 0.1, 0)
    bad[1] = bad[1].T
    with pytest.raises(ValueError, match=r"does not fit nn.Linear\(5, 6\); pass \(in, out\)"):
        load_weights_(model, bad)


# --- StackedMLP ----------------------------------------------------------------------------


@pytest.mark.parametrize(("activation", "norm"), CASES)
@pytest.mark.parametrize("shared_input", [False, True])
def test_hand_written_backward_matches_autograd(activation, norm, shared_input):
    spec = MLPSpec(**SMALL, activation=activation, placement=norm)
    net = stacked(spec, 3)
    gen = torch.Generator().manual_seed(1)
    shape = (8, 7) if shared_input else (3, 8, 7)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, shape[:-1], generator=gen)
    loss, grads = net.loss_and_grads(x, y)
    reference = cross_entropy(net(x), y)
    expected = torch.autograd.grad(reference.sum(), list(net.parameters()))
    torch.testing.assert_close(loss, reference.detach(), rtol=1e-12, atol=1e-12)
    assert len(grads) == len(expected)
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-12)


def test_hand_written_backward_matches_finite_differences():
    spec = MLPSpec(**SMALL, activation="sigmoid", placement="before")
    net = stacked(spec, 2)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 9, 7, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (2, 9), generator=gen)
    weights = torch.randn(2, generator=gen, dtype=torch.float64)  # random upstream gradient
    _, grads = net.loss_and_grads(x, y)
    params = list(net.parameters())
    direction = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    h = 1e-6

    def objective(sign):
        with torch.no_grad():
            for p, d in zip(params, direction, strict=True):
                p.add_(sign * h * d)
            value = (weights * cross_entropy(net(x), y)).sum()
            for p, d in zip(params, direction, strict=True):
                p.sub_(sign * h * d)
        return value

    numeric = (objective(1) - objective(-1)) / (2 * h)
    # grads[k][m] is the gradient of member m's loss: weight it by that member's upstream value
    analytic = sum(
        weights @ (g * d).flatten(1).sum(1) for g, d in zip(grads, direction, strict=True)
    )
    torch.testing.assert_close(analytic, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(("activation", "norm"), CASES)
def test_members_equal_torch_modules(activation, norm):
    spec = MLPSpec(**SMALL, activation=activation, placement=norm)
    net = stacked(spec, 3).train()
    models = [net.member(i) for i in range(3)]
    x = torch.randn(3, 10, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    logits = net(x)  # training mode: batch statistics, running statistics updated
    for i, model in enumerate(models):
        torch.testing.assert_close(logits[i], model(x[i]), rtol=1e-12, atol=1e-12)
    # running statistics now match torch's BatchNorm1d update, so eval mode agrees too
    net.eval()
    x_test = torch.randn(6, 7, dtype=torch.float64)
    for i, model in enumerate(models):
        exported = net.member(i)
        assert not exported.training
        torch.testing.assert_close(exported(x_test), model.eval()(x_test), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(net(x_test)[i], model(x_test), rtol=1e-12, atol=1e-12)


def test_probes_are_the_inputs_of_the_activation():
    spec = MLPSpec(**SMALL, activation="sigmoid", placement="before")
    net = stacked(spec, 2).eval()
    model = net.member(1)
    seen = []
    model[-2].register_forward_hook(lambda m, inp, out: seen.append(inp[0]))  # last Sigmoid
    x = torch.randn(5, 7, dtype=torch.float64)
    _, probes = net(x, probe=True)
    model(x)
    assert [tuple(p.shape) for p in probes] == [(2, 5, 5), (2, 5, 6)]
    torch.testing.assert_close(probes[-1][1], seen[0])


@pytest.mark.parametrize("lr", [0.3, torch.tensor([0.1, 0.7])])
def test_fused_sgd_step_equals_gradient_step(lr):
    spec = MLPSpec(**SMALL, activation="tanh", placement="before")
    x = torch.randn(2, 9, 7, dtype=torch.float64)
    y = torch.randint(0, 4, (2, 9))
    net, ref = stacked(spec, 2), stacked(spec, 2)
    loss = net.sgd_step_(x, y, lr)
    ref_loss, grads = ref.loss_and_grads(x, y)
    rate = lr.view(-1, 1, 1).double() if torch.is_tensor(lr) else lr
    with torch.no_grad():
        for p, g in zip(ref.parameters(), grads, strict=True):
            p.sub_(rate * g)
    torch.testing.assert_close(loss, ref_loss, rtol=0, atol=0)
    for a, b in zip(net.state_dict().values(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_members_do_not_interact():
    spec = MLPSpec(**SMALL, placement="before")
    x = torch.randn(3, 8, 7, dtype=torch.float64)
    y = torch.randint(0, 4, (3, 8))
    loss_a, grads_a = stacked(spec, 3).loss_and_grads(x, y)
    x2 = x.clone()
    x2[0] = torch.randn(8, 7, dtype=torch.float64)  # (a constant shift would vanish in BN)
    loss_b, grads_b = stacked(spec, 3).loss_and_grads(x2, y)
    assert loss_a[0] != loss_b[0]
    torch.testing.assert_close(loss_a[1:], loss_b[1:], rtol=0, atol=0)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga[1:], gb[1:], rtol=0, atol=0)


def test_load_weights_resets_state():
    spec = MLPSpec(**SMALL, placement="after")
    net = stacked(spec, 2)
    net(torch.randn(2, 5, 7, dtype=torch.float64))  # moves the running statistics
    net.load_weights_([net.weight0.detach(), net.weight1.detach(), net.weight2.detach()])
    assert torch.all(net.bias0 == 0) and torch.all(net.bn_weight0 == 1)
    assert torch.all(net.running_mean1 == 0) and torch.all(net.running_var1 == 1)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: StackedMLP(MLPSpec(**SMALL), 0), ValueError, "members must be a positive integer"),
        (
            lambda: StackedMLP(MLPSpec(**SMALL), 2)(torch.randn(4, 8)),
            ValueError,
            "Expected input of shape (B, 7) or (members, B, 7), got (4, 8).",
        ),
        (
            lambda: StackedMLP(MLPSpec(**SMALL), 2)(torch.randn(3, 4, 7)),
            ValueError,
            "Input has 3 batches for 2 members.",
        ),
        (
            lambda: StackedMLP(MLPSpec(**SMALL, placement="before"), 2)(torch.randn(2, 1, 7)),
            ValueError,
            "Expected more than 1 value per channel when training",
        ),
        (
            lambda: StackedMLP(MLPSpec(**SMALL), 2).load_weights_([torch.zeros(2, 7, 5)]),
            ValueError,
            "Expected 3 weight tensors, got 1.",
        ),
        (
            lambda: StackedMLP(MLPSpec(**SMALL), 2).load_weights_([torch.zeros(2, 5, 7)] * 3),
            ValueError,
            "weight0 must have shape (2, 7, 5) (members, in, out), got (2, 5, 7).",
        ),
        (lambda: StackedMLP(MLPSpec(**SMALL), 2).member(2), IndexError, "member 2 out of range"),
        (
            lambda: StackedMLP(MLPSpec(**SMALL), 2).sgd_step_(
                torch.randn(4, 7), torch.zeros(4), 0.1
            ),
            ValueError,
            "sgd_step_ needs one batch per member: x of shape (M, B, in).",
        ),
    ],
)
def test_stacked_errors(call, error, message):
    with pytest.raises(error) as err:
        call()
    assert message in str(err.value)
