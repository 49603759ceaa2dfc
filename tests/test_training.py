"""bnguide.training: the lockstep loop must equal one plain torch loop per (variant, seed)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bnguide.models import MLPSpec, build_mlp, draw_weights, load_weights_
from bnguide.training import (
    Data,
    Trainer,
    TrainLog,
    Variant,
    evaluation_steps,
    train_variants,
)
from bnguide.training.fit import torch_threads

SIZES = {"in_features": 6, "hidden": (5, 4), "out_features": 3}
BATCH_SEED_OFFSET = 2**32  # documented: seed s shuffles with a generator seeded s + 2**32


def toy_data(n=50, n_test=40, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centers = 2 * torch.randn(3, 6, generator=gen, dtype=dtype)

    def split(k):
        y = torch.randint(0, 3, (k,), generator=gen)
        return centers[y] + torch.randn(k, 6, generator=gen, dtype=dtype), y

    return Data(*split(n), *split(n_test))


def variants():
    return [
        Variant("plain", MLPSpec(**SIZES, placement="none"), lr=0.3),
        Variant("bn", MLPSpec(**SIZES, placement="before"), lr=0.3),
        Variant("bn-fast", MLPSpec(**SIZES, placement="before"), lr=0.9),  # same spec, other lr
        Variant("after-mom", MLPSpec(**SIZES, placement="after", activation="relu"), 0.1, 0.9),
    ]


def reference_run(variant, seed, data, steps, batch_size, init_std):
    """One torch.nn model trained by a plain loop with torch.optim.SGD on the documented batches."""
    model = build_mlp(variant.spec, dtype=data.x_train.dtype)
    load_weights_(model, draw_weights(variant.spec.sizes, init_std, seed, dtype=data.x_train.dtype))
    opt = torch.optim.SGD(model.parameters(), lr=variant.lr, momentum=variant.momentum)
    gen = torch.Generator().manual_seed(seed + BATCH_SEED_OFFSET)
    per_epoch = len(data.x_train) // batch_size
    for step in range(steps):
        if step % per_epoch == 0:
            order = torch.randperm(len(data.x_train), generator=gen)
        idx = order[(step % per_epoch) * batch_size : (step % per_epoch + 1) * batch_size]
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_trainer_equals_plain_torch_loops():
    data = toy_data()
    seeds, steps, batch = (3, 7), 23, 8  # 6 steps per epoch: several reshuffles
    trainer = Trainer(variants(), data, seeds=seeds, batch_size=batch, init_std=0.5)
    for _ in range(steps):
        trainer.step()
    for variant in variants():
        net, members = trainer.nets(variant.name)
        for s, seed in enumerate(seeds):
            expected = reference_run(variant, seed, data, steps, batch, 0.5)
            got = net.member(range(net.members)[members][s])
            for (name, a), b in zip(
                got.state_dict().items(), expected.state_dict().values(), strict=True
            ):
                if name.endswith("num_batches_tracked"):
                    continue
                torch.testing.assert_close(
                    a, b, rtol=1e-9, atol=1e-11, msg=f"{variant.name} {name}"
                )


def test_variants_of_a_seed_start_equal_and_seeds_differ():
    trainer = Trainer(variants(), toy_data(), seeds=(0, 1), batch_size=8, init_std=0.5)
    first = {}
    for variant in variants():
        net, members = trainer.nets(variant.name)
        first[variant.name] = net.weight0[members].detach()
    for w in first.values():
        torch.testing.assert_close(w, first["plain"], rtol=0, atol=0)
    assert not torch.equal(first["plain"][0], first["plain"][1])


def test_evaluation_matches_torch_modules():
    data = toy_data()
    log = train_variants(
        variants()[:2], data, seeds=(0, 1), steps=12, batch_size=8, init_std=0.5,
        eval_steps=[0, 5, 12], probe_unit=2, probe_examples=10,
    )  # fmt: skip
    trainer = Trainer(variants()[:2], data, seeds=(0, 1), batch_size=8, init_std=0.5)
    for _ in range(12):
        trainer.step()
    for v, name in enumerate(log.names):
        net, members = trainer.nets(name)
        net.eval()
        for s in range(2):
            model = net.member(range(net.members)[members][s])
            seen = []
            model[-2].register_forward_hook(lambda m, inp, out, seen=seen: seen.append(inp[0]))
            logits = model(data.x_test)
            accuracy = (logits.argmax(1) == data.y_test).double().mean().item()
            assert log.test_accuracy[v, s, -1] == pytest.approx(accuracy)
            z = seen[0].detach().numpy()  # (N_test, 4): inputs of the last hidden activation
            unit = np.quantile(z[:, 2], [0.15, 0.5, 0.85])
            pooled = np.quantile(z[:10].ravel(), [0.15, 0.5, 0.85])
            np.testing.assert_allclose(log.probe_unit[v, s, -1], unit, rtol=1e-10)
            np.testing.assert_allclose(log.probe_all[v, s, -1], pooled, rtol=1e-10)
            every = np.quantile(z[:10], [0.15, 0.5, 0.85], axis=0).T  # (units, 3)
            np.testing.assert_allclose(log.probe_units[v, s, -1], every, rtol=1e-10)


def test_train_log_shapes_and_determinism():
    kwargs = {"seeds": (0, 1, 2), "steps": 10, "batch_size": 8, "init_std": 0.5}
    a = train_variants(variants(), toy_data(), eval_steps=[0, 4, 10], **kwargs)
    b = train_variants(variants(), toy_data(), eval_steps=[0, 4, 10], **kwargs)
    assert a.names == ("plain", "bn", "bn-fast", "after-mom")
    assert a.test_accuracy.shape == (4, 3, 3) and a.probe_unit.shape == (4, 3, 3, 3)
    assert np.isnan(a.train_loss[..., 0]).all() and np.isfinite(a.train_loss[..., 1:]).all()
    np.testing.assert_array_equal(a.test_accuracy, b.test_accuracy)
    np.testing.assert_array_equal(a.probe_unit, b.probe_unit)
    np.testing.assert_array_equal(a.diverged_at, -np.ones((4, 3)))


def test_the_log_does_not_depend_on_the_callers_thread_count():
    kwargs = {"seeds": (0, 1), "steps": 14, "batch_size": 8, "init_std": 0.5, "eval_steps": [0, 14]}
    with torch_threads(1):
        one = train_variants(variants(), toy_data(), processes=1, **kwargs)
    with torch_threads(3):
        three = train_variants(variants(), toy_data(), processes=1, **kwargs)
    np.testing.assert_array_equal(three.train_loss, one.train_loss)
    np.testing.assert_array_equal(three.probe_unit, one.probe_unit)
    np.testing.assert_array_equal(three.test_accuracy, one.test_accuracy)
    with torch_threads(3):
        Trainer(variants(), toy_data(), batch_size=8).step()
        assert torch.get_num_threads() == 3  # restored after each step


def test_train_loss_is_the_mean_minibatch_loss_since_the_last_evaluation():
    data = toy_data()
    variant = variants()[1]
    log = train_variants([variant], data, seeds=(4,), steps=9, batch_size=8, init_std=0.5,
                         eval_steps=[0, 3, 9])  # fmt: skip
    model = build_mlp(variant.spec, dtype=torch.float64)
    load_weights_(model, draw_weights(variant.spec.sizes, 0.5, 4, dtype=torch.float64))
    opt = torch.optim.SGD(model.parameters(), lr=variant.lr)
    gen = torch.Generator().manual_seed(4 + BATCH_SEED_OFFSET)
    order = torch.randperm(50, generator=gen)
    losses = []
    for step in range(6):  # 6 steps per epoch: the run stays inside the first epoch up to 6
        idx = order[step * 8 : (step + 1) * 8]
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert log.train_loss[0, 0, 1] == pytest.approx(np.mean(losses[:3]), rel=1e-10)


def test_divergence_is_reported():
    spec = MLPSpec(**SIZES, activation="identity")
    log = train_variants(
        [Variant("ok", spec, lr=0.01), Variant("huge", spec, lr=1e12)], toy_data(),
        seeds=(0,), steps=30, batch_size=8, init_std=0.5, eval_steps=[0, 10, 20, 30],
    )  # fmt: skip
    assert log.diverged_at[0, 0] == -1
    assert log.diverged_at[1, 0] in (10, 20, 30)


def test_steps_to_reach():
    log = TrainLog(
        names=("a",), seeds=(0, 1), steps=np.array([0, 10, 20]),
        test_accuracy=np.array([[[0.1, 0.6, 0.9], [0.1, 0.3, 0.4]]]),
        train_loss=np.zeros((1, 2, 3)), probe_unit=np.zeros((1, 2, 3, 3)),
        probe_all=np.zeros((1, 2, 3, 3)), quantiles=(0.15, 0.5, 0.85),
        diverged_at=np.array([[-1, -1]]), seconds=0.0,
    )  # fmt: skip
    np.testing.assert_array_equal(log.steps_to_reach("a", 0.5), [10, np.nan])
    with pytest.raises(KeyError, match="No variant 'b'; variants are a."):
        log.index("b")


def test_evaluation_steps():
    np.testing.assert_array_equal(evaluation_steps(10, 4), [0, 4, 8, 10])
    np.testing.assert_array_equal(
        evaluation_steps(100, 50, dense_every=10, dense_until=30), [0, 10, 20, 30, 50, 100]
    )
    with pytest.raises(ValueError, match="must be positive"):
        evaluation_steps(10, 0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Variant("x", MLPSpec(), lr=0), "Variant 'x': lr must be positive, got 0."),
        (lambda: Variant("x", MLPSpec(), 0.1, 1.0), "momentum must be in [0, 1), got 1.0."),
        (lambda: Trainer([], toy_data()), "Give at least one Variant to train."),
        (
            lambda: Trainer([variants()[0], variants()[0]], toy_data()),
            "Variant names must be unique, got ['plain', 'plain'].",
        ),
        (
            lambda: Trainer(
                [
                    variants()[0],
                    Variant("wide", MLPSpec(in_features=6, hidden=(9,), out_features=3), 0.1),
                ],
                toy_data(),
            ),
            "All variants must share their layer sizes",
        ),
        (lambda: Trainer(variants(), toy_data(), seeds=()), "seeds must be a non-empty list"),
        (  # checked here, before any worker process starts
            lambda: train_variants(variants(), toy_data(), seeds=(2, 2), steps=9, processes=2),
            "distinct integers, got [2, 2].",
        ),
        (lambda: Trainer(variants(), toy_data(), seeds=(1, 1)), "distinct integers, got [1, 1]."),
        (
            lambda: Trainer(variants(), toy_data(), batch_size=1),
            "batch_size must be an integer between 2 and the 50 training examples, got 1",
        ),
        (
            lambda: Trainer([Variant("m", MLPSpec(), 0.1)], toy_data(), batch_size=8),
            "The data have 6 features but the nets expect 784.",
        ),
        (
            lambda: train_variants(variants(), toy_data(), steps=0),
            "steps must be a positive integer, got 0.",
        ),
        (
            lambda: train_variants(
                variants(), toy_data(), steps=5, batch_size=8, eval_steps=[0, 9]
            ),
            "eval_steps must lie between 0 and steps=5",
        ),
        (
            lambda: train_variants(variants(), toy_data(), steps=5, batch_size=8, probe_layer=2),
            "probe_layer 2 out of range for 2 hidden layers.",
        ),
        (
            lambda: train_variants(variants(), toy_data(), steps=5, batch_size=8, probe_unit=4),
            "probe_unit 4 out of range for a layer of 4 units.",
        ),
    ],
)
def test_bad_settings_are_rejected(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert message in str(err.value)


def test_worker_processes_give_the_same_log_as_one_process():
    # 4 variants in 3 specs over 2 processes (whole stacks), and 1 variant split by seed
    kwargs = {"seeds": (0, 1, 2), "steps": 12, "batch_size": 8, "init_std": 0.5,
              "eval_steps": [0, 5, 12]}  # fmt: skip
    for chosen in (variants(), variants()[1:2]):
        one = train_variants(chosen, toy_data(), processes=1, **kwargs)
        two = train_variants(chosen, toy_data(), processes=2, **kwargs)
        assert two.settings["processes"] == 2 and two.names == one.names
        busy = two.settings["worker_seconds"]
        assert len(busy) == 2 and all(0 < t <= two.seconds for t in busy)
        for field in ("test_accuracy", "train_loss", "probe_unit", "probe_all", "probe_units"):
            np.testing.assert_allclose(getattr(two, field), getattr(one, field), rtol=1e-12)
        np.testing.assert_array_equal(two.diverged_at, one.diverged_at)


def test_deal_out_covers_every_pair_once_and_balances_the_work():
    from bnguide.training.workers import deal_out

    seeds = (0, 1, 2)
    for chosen, processes in ((variants(), 2), (variants()[:1], 2), (variants(), 3)):
        plans = deal_out(chosen, seeds, processes)
        pairs = [(v, s) for plan in plans for ids, ss in plan for v in ids for s in ss]
        assert sorted(pairs) == [(v, s) for v in range(len(chosen)) for s in seeds]
        assert len(plans) == processes
    with pytest.raises(ValueError, match="processes must be a positive integer, got 0"):
        deal_out(variants(), seeds, 0)


def test_process_options_are_checked():
    kwargs = {"steps": 4, "batch_size": 8}
    with pytest.raises(ValueError, match="processes must be a positive integer, got 0"):
        train_variants(variants(), toy_data(), processes=0, **kwargs)
    meta = Data(*(torch.empty(t.shape, dtype=t.dtype, device="meta") for t in (
        toy_data().x_train, toy_data().y_train, toy_data().x_test, toy_data().y_test)))  # fmt: skip
    with pytest.raises(ValueError, match="trains on the CPU only; the data are on meta"):
        train_variants(variants(), meta, processes=2, **kwargs)


def test_a_failing_worker_process_reports_its_error():
    # probe_examples=0 leaves the quantiles nothing to summarize: the child fails, not hangs
    with pytest.raises(RuntimeError, match="A training worker process failed"):
        train_variants(variants(), toy_data(), steps=4, batch_size=8, processes=2,
                       probe_examples=0)  # fmt: skip


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_a_gpu_gives_the_log_of_the_cpu():
    cpu = toy_data()
    gpu = Data(*(t.to("cuda") for t in (cpu.x_train, cpu.y_train, cpu.x_test, cpu.y_test)))
    kwargs = {"seeds": (0, 1), "steps": 12, "batch_size": 8, "init_std": 0.5, "eval_steps": [0, 12]}
    on_cpu = train_variants(variants(), cpu, **kwargs)
    on_gpu = train_variants(variants(), gpu, **kwargs)  # one process: the GPU trains every stack
    assert on_gpu.settings.get("processes") is None
    for field in ("test_accuracy", "train_loss", "probe_unit", "probe_all"):
        np.testing.assert_allclose(getattr(on_gpu, field), getattr(on_cpu, field), atol=1e-9)
