"""Tests for bnguide.training.fit: the in-memory training loop and evaluation."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bnguide.models.norm_mlp import NormMLP
from bnguide.training.fit import check_batch_size, evaluate, minibatches, single_thread, train

D = torch.float64


def _data(n=40, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=D)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def test_check_batch_size_messages():
    bn_model = NormMLP(5, (4,), 2, norm="batch")
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2, got 1. Batch norm"):
        check_batch_size(1, bn_model)
    with pytest.raises(ValueError, match="my-experiment: batch_size must be an integer >= 2"):
        check_batch_size(1, where="my-experiment")  # no model: assume batch statistics
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2, got 2.5"):
        check_batch_size(2.5, bn_model)
    check_batch_size(1, NormMLP(5, (4,), 2, norm="layer"))  # no batch statistics: fine
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        check_batch_size(0, NormMLP(5, (4,), 2, norm="none"))


def test_minibatches_are_permutations_without_short_batches():
    gen = torch.Generator().manual_seed(0)
    stream = minibatches(10, 3, gen)
    epoch = [next(stream) for _ in range(3)]  # 3 full batches per epoch, 1 example dropped
    assert all(len(b) == 3 for b in epoch)
    seen = torch.cat(epoch)
    assert len(set(seen.tolist())) == 9 and seen.max() < 10
    with pytest.raises(ValueError, match="batch_size=11 is larger than the 10 training examples"):
        next(minibatches(10, 11, gen))


def test_train_matches_a_plain_torch_loop():
    x, y = _data()
    torch.manual_seed(3)
    ours = NormMLP(5, (6,), 2, norm="batch").double()
    reference = NormMLP(5, (6,), 2, norm="batch").double()
    reference.load_state_dict(ours.state_dict())
    losses = train(ours, x, y, batch_size=8, steps=12, lr=0.1, momentum=0.9, seed=7)
    # Reference: the same permutations (generator seeded alike), torch.optim.SGD, drop_last.
    gen = torch.Generator().manual_seed(7)
    opt = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    expected = []
    while len(expected) < 12:
        order = torch.randperm(40, generator=gen)
        for start in range(0, 40 - 8 + 1, 8):
            if len(expected) == 12:
                break
            idx = order[start : start + 8]
            loss = F.cross_entropy(reference(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            expected.append(float(loss.detach()))
    torch.testing.assert_close(losses.double(), torch.tensor(expected, dtype=D))
    for (name, a), b in zip(
        ours.state_dict().items(), reference.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)


def test_train_rejects_bad_settings_and_calls_on_step():
    x, y = _data()
    model = NormMLP(5, (4,), 2, norm="batch").double()
    with pytest.raises(ValueError, match="batch_size must be an integer >= 2, got 1"):
        train(model, x, y, batch_size=1, steps=3, lr=0.1)
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        train(model, x, y, batch_size=4, steps=0, lr=0.1)
    calls = []

    def on_step(step, net):
        calls.append((step, net.training))
        net.eval()  # train() must switch back to training mode

    train(model, x, y, batch_size=4, steps=3, lr=0.1, on_step=on_step)
    assert calls == [(1, True), (2, True), (3, True)]


def test_gradient_clipping_bounds_the_first_update():
    x, y = _data()
    x = x * 100  # large gradients
    model = nn.Linear(5, 2).double()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    train(model, x, y, batch_size=8, steps=1, lr=1.0, momentum=0.0, clip_grad_norm=0.5)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm() <= 0.5 + 1e-9


def test_evaluate_matches_manual_computation_and_restores_mode():
    x, y = _data()
    torch.manual_seed(0)
    model = NormMLP(5, (6,), 2, norm="batch").double()
    train(model, x, y, batch_size=8, steps=5, lr=0.1)
    model.train()
    loss, acc = evaluate(model, x, y, batch_size=7)
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-12)
    assert acc == pytest.approx(float((logits.argmax(1) == y).double().mean()))


def test_evaluate_with_batch_statistics():
    x, y = _data(n=40)
    torch.manual_seed(0)
    model = NormMLP(5, (6,), 2, norm="batch").double().eval()
    loss, _ = evaluate(model, x, y, batch_size=10, batch_stats=True)
    expected = 0.0
    model.train()
    with torch.no_grad():
        for chunk, target in zip(x.split(10), y.split(10), strict=True):
            expected += float(F.cross_entropy(model(chunk), target, reduction="sum"))
    assert loss == pytest.approx(expected / 40, rel=1e-12)
    with pytest.raises(ValueError, match="leave a last batch of one example"):
        evaluate(model, x[:21], y[:21], batch_size=10, batch_stats=True)


def test_single_thread_sets_and_restores_the_thread_count():
    before = torch.get_num_threads()
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before

    @single_thread()
    def run():
        """Docstring kept."""
        return torch.get_num_threads()

    assert run() == 1 and torch.get_num_threads() == before
    assert run.__name__ == "run" and run.__doc__ == "Docstring kept."  # cache keys use the name


def _plain_santurkar_loop(
    net, x, y, *, steps, lr, batch_size, seed, eval_every, eval_data, probe_at
):
    """The loop of the Santurkar experiments written out (the reference for its hooks)."""
    gen = torch.Generator().manual_seed(seed)
    order, pos, records, probes = torch.randperm(len(x), generator=gen), 0, [], []
    net.train()
    for step in range(steps + 1):
        if step % eval_every == 0:
            with torch.no_grad():
                net.eval()
                records.append((step, net(eval_data).clone()))
                net.train()
        if step == steps:
            break
        if pos + batch_size > len(x):
            order, pos = torch.randperm(len(x), generator=gen), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        net.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        loss.backward()
        if step in probe_at:
            probes.append((step, [p.grad.clone() for p in net.parameters()]))
        with torch.no_grad():
            for p in net.parameters():
                p.add_(p.grad, alpha=-lr)
    return records, probes


def test_the_santurkar_loop_is_the_one_loop_with_hooks():
    from bnguide.norms.noisy import CovariateShiftNoise
    from bnguide.training import santurkar

    x = torch.randn(70, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (70,))

    def net():
        torch.manual_seed(3)  # the same weights and noise draws for both runs
        return torch.nn.Sequential(
            torch.nn.Linear(6, 5), torch.nn.BatchNorm1d(5), CovariateShiftNoise(),
            torch.nn.ReLU(), torch.nn.Linear(5, 3),
        ).double()  # fmt: skip

    ref_net = net()
    records, probes = _plain_santurkar_loop(
        ref_net, x, y, steps=12, lr=0.1, batch_size=16, seed=4, eval_every=4, eval_data=x,
        probe_at={0, 7},
    )  # fmt: skip
    seen_grads = []

    def probe(step, model, params, grads, xb, yb):
        seen_grads.append((step, [grads[k] for k, _ in model.named_parameters()]))

    new_net = net()
    log = santurkar.train(
        new_net, x, y, steps=12, lr=0.1, batch_size=16, seed=4, eval_every=4,
        eval_data=(x, y), probe_steps=(0, 7), probe=probe,
    )  # fmt: skip
    assert log.steps.tolist() == [step for step, _ in records] == [0, 4, 8, 12]
    for (s1, g1), (s2, g2) in zip(probes, seen_grads, strict=True):
        assert s1 == s2 and all(torch.equal(a, b) for a, b in zip(g1, g2, strict=True))
    for a, b in zip(ref_net.state_dict().values(), new_net.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_before_update_can_stop_training():
    model = NormMLP(4, (6,), 2, norm="batch")
    x, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
    before = [p.clone() for p in model.parameters()]
    losses = train(model, x, y, batch_size=8, steps=5, lr=0.1, before_update=lambda *a: True)
    assert len(losses) == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_the_santurkar_loop_logs_one_run_and_where_it_diverged():
    from bnguide.training import santurkar

    x, y = torch.randn(64, 784), torch.randint(0, 10, (64,))
    net = santurkar.glorot_mlp("l2", hidden=(8,))
    log = santurkar.train(
        net, x, y, steps=6, lr=0.1, batch_size=16, eval_every=3, eval_data=(x, y),
        test_data=(x[:8], y[:8]), name="l2",
    )  # fmt: skip
    assert log.names == ("l2",) and log.steps.tolist() == [0, 3, 6]
    for field in ("train_accuracy", "batch_accuracy", "test_accuracy", "train_loss"):
        assert getattr(log, field).shape == (1, 1, 3), field
    assert np.isnan(log.batch_accuracy[0, 0, 0]) and log.diverged_at.tolist() == [[-1]]
    blown = santurkar.glorot_mlp("none", hidden=(8,))
    log = santurkar.train(
        blown, x * 1e30, y, steps=6, lr=1e10, batch_size=16, eval_every=3, eval_data=(x, y)
    )
    assert 0 <= log.diverged_at[0, 0] < 6 and log.test_accuracy is None
    with pytest.raises(ValueError, match="Unknown normalizer 'bn'"):
        santurkar.glorot_mlp("bn")


def test_shards_split_the_global_batch_between_ranks():
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    seen = {}

    def record(rank):
        def hook(step, model, loss, idx, logits):
            seen.setdefault(rank, []).append(idx.clone())

        return hook

    for rank, shard in ((None, None), (0, (0, 2)), (1, (1, 2))):
        model = nn.Linear(5, 3)
        size = 16 if shard is None else 8
        train(
            model,
            x,
            y,
            batch_size=size,
            steps=3,
            lr=0.1,
            seed=4,
            shard=shard,
            before_update=record(rank),
        )
    for step in range(3):  # the two ranks' slices are the unsharded run's batch, in order
        np.testing.assert_array_equal(torch.cat([seen[0][step], seen[1][step]]), seen[None][step])
    with pytest.raises(ValueError, match="shard must be"):
        train(nn.Linear(5, 3), x, y, batch_size=8, steps=1, lr=0.1, shard=(2, 2))


def test_run_sgd_minimizes_the_sum_of_a_loss_vector_and_runs_its_hooks():
    # two independent quadratics in one tensor: one SGD step is w -= lr * 2 (w - target)
    from bnguide.training.fit import run_sgd

    target = torch.tensor([1.0, -2.0], dtype=torch.float64)
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    seen, after = [], []

    def probe(step, loss):
        seen.append((step, w.grad.clone(), loss.detach().clone()))

    losses = run_sgd([w], lambda step: (w - target) ** 2, steps=3, lr=0.25,
                     before_update=probe, after_update=after.append)  # fmt: skip
    expected = torch.zeros(2, dtype=torch.float64)
    for step, grad, loss in seen:
        torch.testing.assert_close(grad, 2 * (expected - target))  # each entry its own gradient
        torch.testing.assert_close(loss, (expected - target) ** 2)
        assert float(losses[step]) == pytest.approx(float(((expected - target) ** 2).sum()))
        expected = expected - 0.25 * 2 * (expected - target)
    torch.testing.assert_close(w.detach(), expected)
    assert after == [1, 2, 3] and [s for s, _, _ in seen] == [0, 1, 2]
    stopped = run_sgd([w], lambda step: (w - target) ** 2, steps=5, lr=0.25,
                      before_update=lambda step, loss: step == 2)  # fmt: skip
    assert stopped.shape == (2,)
    with pytest.raises(ValueError, match="run_sgd: steps must be a positive integer, got 0"):
        run_sgd([w], lambda step: w.sum(), steps=0, lr=0.1)
