"""Tests for bnguide.models.rnn: the RNN with per-step BN or LayerNorm on its summed inputs."""

import pytest
import torch
from torch.nn import functional as F

from bnguide.models.rnn import RECURRENT_NORMS, NormRNN, rows_as_sequence

D = torch.float64


def _model(norm, seed=0, **kw):
    torch.manual_seed(seed)
    model = NormRNN(3, 5, 4, norm=norm, seq_len=6, **kw).double()
    if norm != "none":  # non-trivial affine parameters
        with torch.no_grad():
            model.weight.uniform_(0.5, 1.5)
            model.bias.uniform_(-0.5, 0.5)
    return model


def _reference(model, x):
    """The recurrence written out with plain tensor operations and batch/layer statistics."""
    w_x, w_h = model.input.weight, model.recurrent.weight
    h = torch.zeros(len(x), model.hidden_size, dtype=D)
    for t in range(x.shape[1]):
        a = x[:, t] @ w_x.T + h @ w_h.T  # (N, H)
        if model.norm == "none":
            a = a + model.input.bias
        else:
            dim = 0 if model.norm == "batch" else 1  # over the batch, or over the units
            mean = a.mean(dim, keepdim=True)
            var = a.var(dim, keepdim=True, correction=0)
            a = (a - mean) / torch.sqrt(var + 1e-5) * model.weight + model.bias
        h = torch.tanh(a)
    return h @ model.readout.weight.T + model.readout.bias


@pytest.mark.parametrize("norm", RECURRENT_NORMS)
def test_forward_and_gradients_match_the_written_out_recurrence(norm):
    model = _model(norm).train()
    x = torch.randn(7, 6, 3, dtype=D, requires_grad=True)
    out = model(x)
    expected = _reference(model, x)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    upstream = torch.randn_like(out)  # a random upstream gradient, never all ones
    grads = torch.autograd.grad(out, [x, *model.parameters()], upstream)
    ref_grads = torch.autograd.grad(expected, [x, *model.parameters()], upstream)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_gradcheck(norm):
    model = _model(norm, seed=1).train()
    x = torch.randn(4, 6, 3, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,), eps=1e-6, atol=1e-5)


def test_batch_norm_keeps_separate_statistics_for_each_step():
    model = _model("batch", momentum=0.5).train()
    x = torch.randn(8, 6, 3, dtype=D)
    model(x)
    # Step 0 sees W_x x_0 only (h_0 = 0): its running mean is half the batch mean of that.
    a0 = x[:, 0] @ model.input.weight.T
    torch.testing.assert_close(model.step_norms[0].running_mean, 0.5 * a0.mean(0).detach())
    means = torch.stack([bn.running_mean for bn in model.step_norms])  # (T, H)
    assert len(model.step_norms) == 6
    assert not torch.allclose(means[0], means[3])  # different steps, different statistics


def test_eval_mode_uses_the_running_statistics_and_handles_one_example():
    model = _model("batch").train()
    x = torch.randn(8, 6, 3, dtype=D)
    model(x)
    model.eval()
    alone = model(x[:1])
    torch.testing.assert_close(alone, model(x)[:1])  # no dependence on the batch in eval mode


@pytest.mark.parametrize("norm, depends", [("none", False), ("batch", True), ("layer", False)])
def test_dependence_on_the_batch_in_training_mode(norm, depends):
    model = _model(norm).train()
    x0 = torch.randn(1, 6, 3, dtype=D)
    a = model(torch.cat([x0, torch.randn(5, 6, 3, dtype=D)]))[0]
    b = model(torch.cat([x0, torch.randn(5, 6, 3, dtype=D)]))[0]
    assert (not torch.allclose(a, b)) == depends


def test_errors():
    with pytest.raises(ValueError, match="Unknown normalizer 'group' for NormRNN. Use one of"):
        NormRNN(norm="group")
    model = _model("batch")
    with pytest.raises(ValueError, match=r"expects input of shape \(N, T, 3\), got \(2, 6\)"):
        model(torch.randn(2, 6, dtype=D))
    with pytest.raises(
        ValueError, match="statistics for 6 time steps and cannot run a sequence of 7"
    ):
        model(torch.randn(2, 7, 3, dtype=D))
    _model("layer")(torch.randn(2, 9, 3, dtype=D))  # LayerNorm runs any length
    with pytest.raises(ValueError, match=r"Expected MNIST images of shape \(N, 784\)"):
        rows_as_sequence(torch.zeros(2, 10))


def test_rows_as_sequence_reads_rows_top_to_bottom():
    images = torch.arange(2 * 784, dtype=D).reshape(2, 1, 28, 28)
    seq = rows_as_sequence(images)
    assert seq.shape == (2, 28, 28)
    assert torch.equal(seq[1, 5], images[1, 0, 5])
    assert torch.equal(rows_as_sequence(images.reshape(2, 784)), seq)


def test_layer_norm_matches_torch_functional():
    # The per-step normalization of "layer" is torch's layer_norm over the hidden units.
    model = _model("layer")
    a = torch.randn(4, 5, dtype=D)
    expected = F.layer_norm(a, (5,), model.weight, model.bias)
    torch.testing.assert_close(model._normalize(a, 0), expected)
