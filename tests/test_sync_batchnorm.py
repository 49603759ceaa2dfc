"""SyncBatchNorm in real processes (gloo on 127.0.0.1) against single-process BN on the whole batch.

Each launch starts fresh processes; every rank builds the same global batch from a seed, runs
its slice through SyncBatchNorm and single-process torch BN through the whole batch, and
returns the largest differences for the parent to check.
"""

import time

import pytest
import torch
import torch.distributed as dist

from bnguide.distributed import launch
from bnguide.norms.sync import SyncBatchNorm, sync_batch_norm

TIMEOUT_S = 60  # per launch: a broken collective fails the test instead of hanging CI

# (sizes per rank, shape of one sample, dtype, affine, momentum)
CASES = {
    2: [
        ((3, 5), (4, 3, 3), torch.float32, True, 0.1),
        ((2, 7), (6,), torch.float64, True, None),
        ((4, 4), (3, 5), torch.float64, False, 0.3),
    ],
    4: [
        ((1, 2, 3, 6), (4, 3, 3), torch.float32, True, 0.1),
        ((5, 1, 1, 3), (6,), torch.float64, True, None),
    ],
}


def _compare(rank, world, sizes, sample_shape, dtype, affine, momentum, steps=3):
    """Train-mode steps of SyncBatchNorm on this rank's slice vs torch BN on the whole batch."""
    g = torch.Generator().manual_seed(1234)
    c = sample_shape[0]
    ref = torch.nn.BatchNorm1d(c, momentum=momentum, affine=affine, dtype=dtype)
    if len(sample_shape) == 3:
        ref = torch.nn.BatchNorm2d(c, momentum=momentum, affine=affine, dtype=dtype)
    ours = SyncBatchNorm(c, momentum=momentum, affine=affine, dtype=dtype)
    if affine:
        with torch.no_grad():
            for p in (ref.weight, ref.bias):
                p.copy_(torch.randn(c, generator=g, dtype=dtype))
        ours.load_state_dict(ref.state_dict())
    start, stop = sum(sizes[:rank]), sum(sizes[: rank + 1])
    err = {"out": 0.0, "grad_input": 0.0, "grad_params": 0.0}
    for step in range(steps):
        x = torch.randn(sum(sizes), *sample_shape, generator=g, dtype=dtype) * (step + 1) + 3
        upstream = torch.randn(x.shape, generator=g, dtype=dtype)  # random: not all-ones
        x_ref = x.clone().requires_grad_(True)
        ref.zero_grad()
        out_ref = ref(x_ref)
        out_ref.backward(upstream)
        x_mine = x[start:stop].clone().requires_grad_(True)
        ours.zero_grad()
        out = ours(x_mine)
        out.backward(upstream[start:stop])
        err["out"] = max(err["out"], _maxdiff(out, out_ref[start:stop]))
        err["grad_input"] = max(err["grad_input"], _maxdiff(x_mine.grad, x_ref.grad[start:stop]))
        if affine:
            for mine, theirs in ((ours.weight, ref.weight), (ours.bias, ref.bias)):
                total = mine.grad.clone()
                dist.all_reduce(total)  # what a data-parallel wrapper sums
                err["grad_params"] = max(err["grad_params"], _maxdiff(total, theirs.grad))
    err["running_mean"] = _maxdiff(ours.running_mean, ref.running_mean)
    err["running_var"] = _maxdiff(ours.running_var, ref.running_var)
    err["num_batches_tracked"] = float(ours.num_batches_tracked != ref.num_batches_tracked)
    ours.eval()
    ref.eval()
    x = torch.randn(5, *sample_shape, generator=g, dtype=dtype)
    err["eval_out"] = _maxdiff(ours(x), ref(x))
    return err


def _maxdiff(a, b) -> float:
    """Largest difference, relative to the reference's scale when that exceeds 1."""
    a, b = a.detach(), b.detach()
    return ((a - b).abs().max() / b.abs().max().clamp(min=1)).item()


def _all_cases(rank, world):
    return [_compare(rank, world, *case) for case in CASES[world]]


@pytest.mark.parametrize("world", sorted(CASES))
def test_sync_bn_equals_single_process_bn_on_the_concatenated_batch(world):
    per_rank = launch(_all_cases, world, timeout=TIMEOUT_S)
    for rank, errors in enumerate(per_rank):
        for case, err in zip(CASES[world], errors, strict=True):
            tol = 1e-6 if case[2] == torch.float32 else 1e-10
            for what, value in err.items():
                assert value <= tol, f"rank {rank}, case {case}: {what} off by {value:.2e}"


def _errors(rank, world):
    """Each bad input on one or all ranks; every rank must raise, and the group must survive."""
    messages = []

    def attempt(fn):
        try:
            fn()
        except (RuntimeError, ValueError) as e:
            messages.append(f"{type(e).__name__}: {e}")
        else:
            messages.append("no error")

    attempt(lambda: SyncBatchNorm(4 if rank == 0 else 8)(torch.randn(3, 4 if rank == 0 else 8)))
    layer = SyncBatchNorm(4)
    attempt(lambda: layer(torch.randn(3, 4 if rank == 0 else 3)))
    attempt(lambda: layer(torch.randn(3 if rank == 0 else 0, 4)))
    attempt(lambda: layer(torch.randn(3, 4) if rank == 0 else torch.randn(4)))
    out = layer(torch.randn(2, 4))  # the group still works after all those errors
    messages.append(f"ok {tuple(out.shape)}")
    return messages


def test_bad_input_raises_the_same_clear_error_on_every_rank_without_hanging():
    rank0, rank1 = launch(_errors, 2, timeout=TIMEOUT_S)
    disagree = "ranks disagree on the number of channels: rank 0 has 4, rank 1 has 8"
    assert disagree in rank0[0] and disagree in rank1[0]
    assert rank0[1].startswith("RuntimeError: SyncBatchNorm: rank 1's input failed its shape")
    assert rank1[1].startswith("ValueError: SyncBatchNorm: expected input with 4 channels")
    empty = "RuntimeError: SyncBatchNorm: rank 1 has an empty batch (0 samples)"
    assert rank0[2].startswith(empty) and rank1[2].startswith(empty)
    assert rank0[3].startswith("RuntimeError: SyncBatchNorm: rank 1's input failed its shape")
    assert rank1[3] == "ValueError: expected at least 2D input (got 1D input)"
    assert rank0[4] == rank1[4] == "ok (2, 4)"


def test_training_without_a_process_group_is_a_clear_error():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="needs an initialized process group in training mode"):
        SyncBatchNorm(3)(torch.randn(4, 3))


def test_eval_mode_needs_no_process_group_and_is_batch_norm():
    ours, ref = SyncBatchNorm(3, dtype=torch.float64), torch.nn.BatchNorm1d(3, dtype=torch.float64)
    with torch.no_grad():
        ref.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        ref.running_var.copy_(torch.tensor([2.0, 0.5, 3.0]))
        ref.weight.copy_(torch.tensor([1.5, -0.5, 2.0]))
    ours.load_state_dict(ref.state_dict())
    ours.eval()
    ref.eval()
    x = torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match=r"expected at least 2D input \(got 1D input\)"):
        ours(torch.randn(3))


def test_convert_sync_batchnorm_keeps_parameters_buffers_and_mode():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU())
    model[1].running_mean.fill_(0.25)
    model.eval()
    converted = SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(converted[1], SyncBatchNorm) and not converted[1].training
    assert converted[1].weight is model[1].weight
    torch.testing.assert_close(converted[1].running_mean, torch.full((3,), 0.25))
    x = torch.randn(2, 1, 5, 5)
    torch.testing.assert_close(converted(x), model(x))
    assert (
        repr(SyncBatchNorm(3))
        == "SyncBatchNorm(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    )


def test_functional_rejects_1d_input():
    with pytest.raises(ValueError, match=r"expected at least 2D input \(got 1D input\)"):
        sync_batch_norm(torch.randn(4), None, None)


# -- the launcher itself ---------------------------------------------------------------------


def _rank_info(rank, world):
    t = torch.tensor([float(rank)])
    dist.all_reduce(t)
    return rank, world, t.item()


def _fail_on_rank_1(rank, world):
    if rank == 1:
        raise ValueError("boom on purpose")
    return rank


def _wait_forever_on_rank_0(rank, world):
    if rank == 0:
        dist.recv(torch.zeros(1), src=1)  # rank 1 never sends
    return rank


def _sleep_on_rank_0(rank, world):
    if rank == 0:
        time.sleep(600)
    return rank


def test_launch_returns_each_ranks_result_in_order():
    assert launch(_rank_info, 3, timeout=TIMEOUT_S) == [(0, 3, 3.0), (1, 3, 3.0), (2, 3, 3.0)]


def test_launch_reports_a_ranks_exception_with_its_traceback():
    with pytest.raises(RuntimeError, match=r"(?s)rank 1 of 2 raised:.*ValueError: boom on purpose"):
        launch(_fail_on_rank_1, 2, timeout=TIMEOUT_S)


def test_launch_kills_ranks_stuck_in_communication():
    with pytest.raises((TimeoutError, RuntimeError)):
        launch(_wait_forever_on_rank_0, 2, timeout=5)


def test_launch_kills_ranks_past_the_deadline():
    start = time.monotonic()
    with pytest.raises(
        TimeoutError, match="1 of 2 ranks did not finish within 3 s and were killed"
    ):
        launch(_sleep_on_rank_0, 2, timeout=3)
    assert time.monotonic() - start < 30


def test_launch_rejects_bad_arguments():
    with pytest.raises(ValueError, match="world_size must be at least 1"):
        launch(_rank_info, 0)


# -- the chapter's experiment ----------------------------------------------------------------


def _count_communication(rank, world):
    """Collectives SyncBatchNorm issues in one training step of the chapter's CNN."""
    from bnguide.models.small_cnn import small_cnn

    calls = []
    gather, reduce = dist.all_gather, dist.all_reduce

    def counting_gather(tensors, tensor, group=None):
        calls.append(len(tensors) * tensor.numel() * tensor.element_size())
        return gather(tensors, tensor, group=group)

    def counting_reduce(tensor, op=dist.ReduceOp.SUM, group=None):
        calls.append(tensor.numel() * tensor.element_size())
        return reduce(tensor, op=op, group=group)

    model = SyncBatchNorm.convert_sync_batchnorm(small_cnn("batch"))
    x = torch.randn(3, 1, 14, 14)
    model(x).sum().backward()  # first step: includes the one-time channel check
    dist.all_gather, dist.all_reduce = counting_gather, counting_reduce
    try:
        model(x).square().sum().backward()
    finally:
        dist.all_gather, dist.all_reduce = gather, reduce
    return len(calls), sum(calls)


def test_comm_per_step_counts_what_sync_batchnorm_sends():
    from bnguide.experiments.sync_bn_small_batch import comm_per_step

    counted = launch(_count_communication, 2, timeout=TIMEOUT_S)
    assert counted[0] == counted[1] == comm_per_step((8, 16, 32), 2)


def test_experiment_config_rejects_bad_settings():
    from bnguide.experiments.sync_bn_small_batch import Config

    with pytest.raises(ValueError, match="world_size must be at least 2"):
        Config(world_size=1)
    with pytest.raises(ValueError, match="per_rank_batches must be positive integers"):
        Config(per_rank_batches=(0, 2))
    with pytest.raises(ValueError, match="seeds must not be empty"):
        Config(seeds=())
