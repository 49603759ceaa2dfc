"""GhostBatchNorm against torch's BatchNorm run ghost batch by ghost batch (float64)."""

import pytest
import torch

from bnguide.norms.ghost import GhostBatchNorm, ghost_batch_norm


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


def _reference(bn, x, m):
    """torch BN applied to each ghost batch in turn: the definition of ghost BN."""
    return torch.cat([bn(chunk) for chunk in torch.split(x, m)])


def _pair(c, m, dims, momentum=0.1, affine=True, seed=0):
    ghost = GhostBatchNorm(c, virtual_batch_size=m, momentum=momentum, affine=affine)
    bn = (torch.nn.BatchNorm1d if dims <= 3 else torch.nn.BatchNorm2d)(
        c, momentum=momentum, affine=affine
    )
    if affine:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            bn.weight.copy_(torch.randn(c, generator=g))
            bn.bias.copy_(torch.randn(c, generator=g))
        ghost.load_state_dict(bn.state_dict())
    return ghost, bn


@pytest.mark.parametrize(
    ("shape", "m", "momentum", "affine"),
    [
        ((32, 5), 8, 0.1, True),  # 4 ghost batches
        ((30, 5), 8, 0.1, True),  # 3 full ghost batches and one of 6
        ((12, 3, 4, 4), 5, 0.3, True),  # conv input, remainder 2
        ((9, 4, 7), 4, None, True),  # (N, C, L), cumulative average, remainder 1 (x 7 positions)
        ((16, 6), 16, 0.1, False),  # one ghost batch: plain BN
        ((10, 6), 64, 0.1, True),  # virtual batch larger than the batch: plain BN
    ],
)
def test_matches_torch_batch_norm_per_ghost_batch(shape, m, momentum, affine):
    ghost, bn = _pair(shape[1], m, len(shape), momentum, affine)
    g = torch.Generator().manual_seed(1)
    for step in range(3):
        x = torch.randn(shape, generator=g) * (step + 1) + step
        upstream = torch.randn(shape, generator=g)
        x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        y1, y2 = ghost(x1), _reference(bn, x2, m)
        torch.testing.assert_close(y1, y2, atol=1e-12, rtol=0)
        ghost.zero_grad()
        bn.zero_grad()
        y1.backward(upstream)
        y2.backward(upstream)
        torch.testing.assert_close(x1.grad, x2.grad, atol=1e-12, rtol=0)
        if affine:
            torch.testing.assert_close(ghost.weight.grad, bn.weight.grad, atol=1e-12, rtol=0)
            torch.testing.assert_close(ghost.bias.grad, bn.bias.grad, atol=1e-12, rtol=0)
    torch.testing.assert_close(ghost.running_mean, bn.running_mean, atol=1e-12, rtol=0)
    torch.testing.assert_close(ghost.running_var, bn.running_var, atol=1e-12, rtol=0)
    assert int(ghost.num_batches_tracked) == int(bn.num_batches_tracked)
    ghost.eval()
    bn.eval()
    x = torch.randn(shape, generator=g)
    torch.testing.assert_close(ghost(x), bn(x), atol=1e-12, rtol=0)


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(10, 3, 2, generator=g).requires_grad_(True)
    w = torch.randn(3, generator=g).requires_grad_(True)
    b = torch.randn(3, generator=g).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, w, b: ghost_batch_norm(x, 4, weight=w, bias=b), (x, w, b)
    )


def test_each_ghost_batch_is_normalized_on_its_own():
    x = torch.randn(24, 4) * torch.arange(1, 25.0)[:, None]  # very different scales per example
    y = ghost_batch_norm(x, 6, eps=0.0).reshape(4, 6, 4)  # (ghost, example, channel)
    torch.testing.assert_close(y.mean(1), torch.zeros(4, 4), atol=1e-12, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(4, 4), atol=1e-12, rtol=0)


def test_without_running_stats_eval_uses_ghost_statistics():
    layer = GhostBatchNorm(3, virtual_batch_size=4, track_running_stats=False).eval()
    x = torch.randn(8, 3)
    torch.testing.assert_close(
        layer(x), ghost_batch_norm(x, 4, weight=layer.weight, bias=layer.bias)
    )


def test_state_dict_loads_into_torch_batch_norm():
    ghost = GhostBatchNorm(3, virtual_batch_size=4)
    ghost(torch.randn(16, 3, 2, 2))
    bn = torch.nn.BatchNorm2d(3)
    bn.load_state_dict(ghost.state_dict())
    assert int(bn.num_batches_tracked) == 4
    torch.testing.assert_close(bn.running_mean, ghost.running_mean)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: GhostBatchNorm(3, virtual_batch_size=0), "virtual_batch_size must be a positive"),
        (lambda: GhostBatchNorm(3, 4)(torch.randn(9, 3)),
         r"ghost batches hold 4 and 1 example\(s\)"),
        (lambda: GhostBatchNorm(3, 1)(torch.randn(8, 3)), "more than 1 value per channel"),
        (lambda: GhostBatchNorm(3, 4)(torch.randn(8, 5)),
         r"GhostBatchNorm\(3\) expects input of shape \(N, 3, \*\), got \[8, 5\]"),
        (lambda: ghost_batch_norm(torch.randn(4), 2), r"expected at least 2D input"),
    ],
)  # fmt: skip
def test_bad_input_gives_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- the chapter's experiment ----------------------------------------------------------------


def test_experiment_runs_every_arm_at_a_tiny_scale(float32):
    from bnguide.experiments import ghost_batch

    config = ghost_batch.Config(
        batch_size=32, ghost_sizes=(4, 32), small_batch=8, hidden=(8,), epochs=2, eval_every=1,
        train_size=64, test_size=32, seeds=(0,),
    )  # fmt: skip
    result = ghost_batch.run(config)
    assert result.labels == ["ghost 4", "plain BN, batch 32", "plain BN, batch 8"]
    assert result.train_acc.shape == result.test_acc.shape == (1, 3, 2)
    assert ((result.test_acc >= 0) & (result.test_acc <= 1)).all()
    assert result.final_loss.shape == (1, 3) and (result.final_loss > 0).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ghost_sizes": (1, 8)}, r"ghost_sizes must lie in \[2, batch_size=512\]"),
        ({"train_size": 1000}, "must be a multiple of every batch size"),
        ({"epochs": 45}, r"epochs \(45\) must be a multiple of eval_every \(10\)"),
        ({"image_side": 5}, "image_side must divide 28"),
        ({"seeds": ()}, "seeds must not be empty"),
    ],
)
def test_experiment_config_rejects_bad_settings(kwargs, match):
    from bnguide.experiments import ghost_batch

    with pytest.raises(ValueError, match=match):
        ghost_batch.Config(**kwargs)
