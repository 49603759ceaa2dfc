"""Batch normalization as a function of tensors, written from scratch for PyTorch.

:func:`batch_norm` has the signature and semantics of :func:`torch.nn.functional.batch_norm`
and never calls torch's batch norm: training mode goes through :class:`BatchNormFunction`, an
explicit :class:`torch.autograd.Function` whose backward is the closed-form gradient.
Used in chapter *The full guide: implementation* (page *The PyTorch module*) and by
:mod:`bnguide.nn`.

Examples
--------
>>> import torch
>>> from bnguide.functional import batch_norm
>>> x = torch.randn(32, 4)  # (N, C)
>>> out = batch_norm(x, None, None, training=True)  # (N, C)
>>> torch.allclose(out, torch.nn.functional.batch_norm(x, None, None, training=True))
True
"""

from __future__ import annotations

import functools
import inspect

import torch
from torch import Tensor
from torch._functorch.utils import unwrap_dead_wrappers
from torch.autograd import forward_ad

from bnguide import _validation

__all__ = [
    "BatchNormFunction",
    "batch_norm",
    "batch_norm_scripted",
    "opmath_dtype",
    "reduce_dims",
    "update_running_stats",
]


def reduce_dims(input: Tensor) -> list[int]:
    """Dimensions the statistics are taken over: batch (0) and every spatial one (2, 3, ...).

    Parameters
    ----------
    input : torch.Tensor
        ``(N, C)`` or ``(N, C, *spatial)``.

    Returns
    -------
    list of int
        ``[0, 2, 3, ...]``.
    """
    return [0] + list(range(2, input.dim()))  # TorchScript compiles this form


def _per_channel(t: Tensor, ndim: int) -> Tensor:
    # (C,) -> (1, C, 1, ...): broadcasts against an (N, C, *spatial) tensor; (C,) already
    # broadcasts against (N, C)
    return t if ndim == 2 else t.view([1, -1] + [1] * (ndim - 2))


def _batch_statistics(
    input: Tensor, count: Tensor, eps: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    # centered input, per-channel batch mean, biased variance and 1 / sqrt(var + eps), and the
    # squared deviations (a tensor laid out like centered, free for the caller to write into);
    # count (values per channel) and eps are 0-dim tensors of the input's dtype (see _const)
    dims, ndim = reduce_dims(input), input.dim()
    mean = input.sum(dims).div_(count)  # (C,); sum then divide: cheaper than Tensor.mean
    centered = input - _per_channel(mean, ndim)  # (N, C, *)
    squares = centered * centered  # (N, C, *)
    var = squares.sum(dims).div_(count)  # (C,) biased; two passes: stable
    return centered, mean, var, var.add(eps).rsqrt_(), squares


@functools.lru_cache(maxsize=256)
def _cached_const(value: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    with torch.inference_mode(False), torch.no_grad():  # a plain tensor wherever it is made
        return torch.tensor(value, dtype=dtype, device=device)


def _const(value: float, like: Tensor) -> Tensor | float:
    # A Python number as a cached 0-dim tensor of like's dtype and device: an operation with a
    # Python number first converts it (an extra aten op, ~1.5 us); the value is the same, so
    # are the results, bit for bit. Left a number under torch.compile, which sees no cache.
    # Only float32 and float64: a float16 operation reads a Python number in float32.
    if like.dtype not in _CONST_DTYPES or torch.compiler.is_compiling():
        return value
    return _cached_const(value, like.dtype, like.device)


_CONST_DTYPES = (torch.float32, torch.float64)


def _input_gradient(
    grad_out: Tensor,
    centered: Tensor,
    invstd: Tensor,
    scale: Tensor,
    dbeta: Tensor,
    dgamma: Tensor,
    out: Tensor | None = None,
) -> Tensor:
    # dx = scale * (g - (dbeta + x_hat * dgamma) / m), with x_hat = centered * invstd and
    # scale = gamma * invstd, evaluated as a * g + b * centered + c with per-channel a, b, c:
    # two passes over memory, laid out like the input (torch's kernel does the same).
    # ``out`` may name a scratch tensor (laid out like the input) to write into.
    ndim = centered.dim()
    k = scale / _const(-(centered.numel() // centered.shape[1]), scale)  # -scale / m, (C,)
    c = _per_channel(k * dbeta, ndim)
    b = _per_channel(k * invstd * dgamma, ndim)
    a = _per_channel(scale, ndim)
    if out is None:  # a fresh tensor, laid out like the input (not like grad_out)
        return torch.addcmul(c, centered, b).addcmul_(grad_out, a)  # (N, C, *)
    return torch.addcmul(c, grad_out, a, out=out).addcmul_(centered, b)  # (N, C, *)


def _plain(t: Tensor) -> bool:
    # not wrapped by torch.func (vmap, grad, jvp) or autograd's batched gradients (gradcheck's
    # check_batched_grad): those have no rule for out= operations
    functorch = torch._C._functorch
    return not (functorch.is_functorch_wrapped_tensor(t) or functorch.is_legacy_batchedtensor(t))


class BatchNormFunction(torch.autograd.Function):
    """Training-mode batch norm with batch statistics and a hand-written closed-form backward.

    ``BatchNormFunction.apply(input, weight, bias, eps)`` returns ``(out, mean, var, centered,
    invstd)``: the output, then per channel the batch mean and biased variance (for the running
    statistics) and the intermediates the backward reuses; only ``out`` is differentiable.
    ``weight`` and ``bias`` may be None. Second derivatives work too (with ``create_graph=True``
    the backward is itself differentiable), and so do forward-mode AD (:meth:`jvp`) and
    ``torch.func.vmap`` (the vmap rule is generated from the forward and backward, which is why
    ``forward`` takes no ``ctx`` and :meth:`setup_context` saves what the backward needs).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(input, weight, bias, eps):
        ndim = input.dim()
        count = _const(input.numel() // input.shape[1], input)  # values per channel
        stats = _batch_statistics(input, count, _const(eps, input))
        centered, mean, var, invstd, squares = stats
        scale = _per_channel(invstd if weight is None else invstd * weight, ndim)  # (1, C, 1...)
        # y = gamma * (x - mean) * invstd + beta, written straight from the centered input into
        # the squares' memory (one large tensor fewer to allocate) unless torch.func wraps it
        out = squares if _plain(squares) else None
        if bias is None:
            out = torch.mul(centered, scale, out=out)  # (N, C, *)
        else:
            out = torch.addcmul(_per_channel(bias, ndim), centered, scale, out=out)  # (N, C, *)
        return out, mean, var, centered, invstd

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, eps = inputs
        _, mean, var, centered, invstd = output
        ctx.save_for_backward(input, centered, invstd, weight)
        ctx.save_for_forward(centered, invstd, weight)
        ctx.eps, ctx.has_bias = eps, bias is not None
        ctx.mark_non_differentiable(mean, var, centered, invstd)
        ctx.set_materialize_grads(False)  # no zero gradients made for the statistics

    @staticmethod
    def backward(ctx, grad_out, *_grad_statistics):
        if grad_out is None:  # no gradient reached the output (the statistics get none)
            return None, None, None, None
        input, centered, invstd, weight = ctx.saved_tensors
        double = torch.is_grad_enabled()  # create_graph=True: the backward is differentiated
        if double:
            # rebuild the statistics from the input with differentiable operations, so that
            # second derivatives flow through them too
            count = _const(input.numel() // input.shape[1], input)
            centered, _, _, invstd, _ = _batch_statistics(input, count, _const(ctx.eps, input))
        dims = reduce_dims(centered)
        scratch = centered * grad_out  # (N, C, *), laid out like the input
        dbeta = grad_out.sum(dims)  # (C,)
        dgamma = scratch.sum(dims) * invstd  # sum(g * x_hat), (C,)
        grad_input = None
        if ctx.needs_input_grad[0]:
            scale = invstd if weight is None else invstd * weight  # (C,)
            # reuse the scratch tensor for the result unless autograd is recording (double
            # backward) or torch.func has wrapped the tensors (vmap: no out= rule)
            reuse = not double and _plain(scratch)
            grad_input = _input_gradient(
                grad_out, centered, invstd, scale, dbeta, dgamma, scratch if reuse else None
            )
        grad_weight = dgamma if weight is not None and ctx.needs_input_grad[1] else None
        grad_bias = dbeta if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_input, grad_weight, grad_bias, None

    @staticmethod
    def jvp(ctx, d_input, d_weight, d_bias, _d_eps):
        # forward-mode derivative: differentiate mean, var, invstd and the affine map along
        # the tangents (d_input, d_weight, d_bias); any of them may be None
        centered, invstd, weight = ctx.saved_tensors
        ndim, dims = centered.dim(), reduce_dims(centered)
        m = centered.numel() // centered.shape[1]
        x_hat = centered * _per_channel(invstd, ndim)  # (N, C, *)
        if d_input is None:
            d_x_hat = torch.zeros_like(centered)
        else:
            d_mean = d_input.sum(dims) / m  # (C,)
            d_centered = d_input - _per_channel(d_mean, ndim)  # (N, C, *)
            d_var = 2 * (centered * d_centered).sum(dims) / m  # (C,)
            d_invstd = -0.5 * invstd.pow(3) * d_var  # (C,)
            d_x_hat = d_centered * _per_channel(invstd, ndim) + centered * _per_channel(
                d_invstd, ndim
            )
        d_out = d_x_hat if weight is None else d_x_hat * _per_channel(weight, ndim)
        if d_weight is not None:
            d_out = d_out + x_hat * _per_channel(d_weight, ndim)
        if d_bias is not None:
            d_out = d_out + _per_channel(d_bias, ndim)
        return d_out, None, None, None, None  # the statistics are not differentiable


# torch's Function.apply (the path with keyword arguments or torch.func transforms) binds its
# arguments with inspect.signature(forward) on every call: compute that signature once.
BatchNormFunction.forward.__signature__ = inspect.signature(BatchNormFunction.forward)
# What torch's Function.apply calls once it has bound the arguments to forward's signature:
# batch_norm calls it directly with four positional arguments, which need no binding.
_function_base_apply = torch._C._FunctionBase.__dict__["apply"]  # called with the class first


@torch.no_grad()
def update_running_stats(
    running_mean: Tensor | None,
    running_var: Tensor | None,
    mean: Tensor,
    var: Tensor,
    count: int,
    momentum: float,
) -> None:
    """Move the running statistics towards this batch's, in place and outside autograd.

    .. math:: \\hat\\mu \\leftarrow (1 - m)\\,\\hat\\mu + m\\,\\mu_B, \\qquad
        \\hat\\sigma^2 \\leftarrow (1 - m)\\,\\hat\\sigma^2 + m\\,\\frac{n}{n-1}\\sigma_B^2

    Parameters
    ----------
    running_mean, running_var : Tensor or None
        Updated in place when not None.
    mean, var : Tensor
        The batch mean and *biased* batch variance; the variance is stored unbiased.
    count : int
        ``n``, the number of values behind each channel's statistics.
    momentum : float
        Weight of the new batch (PyTorch's convention).

    Shape
    -----
    every tensor: ``(C,)``.
    """
    # lerp_(end, w) computes running + w * (end - running) = (1 - w) * running + w * end
    # detach(): no_grad stops gradients but not forward-mode tangents, which must not reach
    # the buffers either
    _move_running_stats(running_mean, running_var, mean.detach(), var.detach(), count, momentum)


def _move_running_stats(running_mean, running_var, mean, var, count, momentum) -> None:
    # mean, var: not differentiable (BatchNormFunction marks them so): no autograd to turn off
    if running_var is not None:
        var = _as(var, running_var.dtype)
        var = var * _const(count / (count - 1), var)  # unbiased
    if running_mean is None or running_var is None:
        if running_mean is not None:
            running_mean.lerp_(_as(mean, running_mean.dtype), momentum)
        if running_var is not None:
            running_var.lerp_(var, momentum)
    else:  # both: one call (the same lerp_ on each, one dispatch fewer)
        mean = _as(mean, running_mean.dtype)
        torch._foreach_lerp_([running_mean, running_var], [mean, var], momentum)


def _usual_arguments(input, running_mean, running_var, weight, bias, training, momentum, eps):
    # True for arguments that pass every check below, tested in a few cheap comparisons (the
    # checks take a few microseconds, a few percent of a small step); False: check in detail
    if not (isinstance(input, Tensor) and input.dim() >= 2 and input.is_floating_point()):
        return False
    shape = (input.shape[1],)
    for t in (running_mean, running_var, weight, bias):
        if t is not None and t.shape != shape:
            return False
    if not training:
        return eps >= 0.0 and running_mean is not None and running_var is not None
    tracking = running_mean is not None or running_var is not None
    # more than one value per channel: numel != C (C = 0 goes to the detailed checks)
    return eps > 0.0 and input.numel() != shape[0] and not (tracking and momentum is None)


def _check_arguments(input, running_mean, running_var, weight, bias, training, momentum, eps):
    if _usual_arguments(input, running_mean, running_var, weight, bias, training, momentum, eps):
        return
    where = "batch_norm"
    if not isinstance(input, Tensor):
        raise ValueError(
            f"{where}: expected input to be a torch.Tensor, got {type(input).__name__}."
        )
    _validation.check_floating_point(input, where)
    _validation.check_min_dims(input, where)
    channels = input.shape[1]
    for name, tensor in [
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ]:
        _validation.check_per_channel(tensor, name, channels, where)
    if training:
        _validation.check_batch_size(input.size())
    _validation.check_eps(eps, training)
    tracking = running_mean is not None or running_var is not None
    if training and tracking and momentum is None:
        raise ValueError(
            f"{where}: momentum must be a number to update the running statistics, got None. "
            "For a cumulative average pass momentum=1/num_batches_tracked (bnguide.nn does)."
        )
    if not training and (running_mean is None or running_var is None):
        raise _validation.TorchRuntimeError(
            f"{where}: evaluation mode (training=False) normalizes with running_mean and "
            "running_var, but at least one is None. Pass both, or training=True to use batch "
            "statistics."
        )


def _has_tangent(t: Tensor | None) -> bool:
    return t is not None and forward_ad.unpack_dual(t).tangent is not None


def _check_no_tangent_on_statistics(input, running_mean, running_var) -> None:
    # Running statistics are buffers, not inputs of the function: as torch, refuse a
    # forward-mode tangent on them rather than differentiate through them silently.
    if forward_ad._current_level < 0:  # no dual level open: no tangents anywhere (cheap test)
        return
    if _has_tangent(input) and (_has_tangent(running_mean) or _has_tangent(running_var)):
        raise _validation.TorchRuntimeError(
            "batch_norm is not differentiable wrt running_mean and running_var, they cannot "
            "have forward grad defined. Pass the buffers without a tangent (e.g. "
            "forward_ad.unpack_dual(t).primal)."
        )


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization over dimension 1, like :func:`torch.nn.functional.batch_norm`.

    In training, normalizes with the batch mean and biased variance and, when given, updates
    ``running_mean`` and ``running_var`` in place (the variance stored unbiased, ``momentum``
    weighting the new batch). In evaluation, normalizes with the running statistics.

    .. math:: y = \\frac{x - \\mathrm{E}[x]}{\\sqrt{\\mathrm{Var}[x] + \\epsilon}}
        \\cdot \\gamma + \\beta

    Parameters
    ----------
    input : Tensor
        Floating point, channels in dimension 1 (any memory format, channels-last included).
    running_mean, running_var : Tensor or None
        Running statistics; required when ``training`` is False.
    weight, bias : Tensor or None
        ``gamma`` and ``beta``; None means 1 and 0.
    training : bool
        Use (and track) batch statistics rather than the running ones.
    momentum : float
        Weight of the new batch in the running averages.
    eps : float
        Added to the variance; positive in training.

    Returns
    -------
    Tensor
        Same shape (and memory format) as ``input``.

    Shape
    -----
    input: ``(N, C)`` or ``(N, C, *spatial)``; running_mean, running_var, weight, bias: ``(C,)``.
    """
    if isinstance(input, Tensor) and input.dim() < 2 and input.numel() == 0:
        return input.clone()  # an empty 1D input: nothing to normalize, as torch returns
    _check_arguments(input, running_mean, running_var, weight, bias, training, momentum, eps)
    _check_no_tangent_on_statistics(input, running_mean, running_var)
    # torch's "opmath" rule: float16 and bfloat16 inputs are computed in float32 (their sums of
    # squares would overflow or lose the variance) and the result is rounded once, back to the
    # input's dtype; parameters may be float32 or the input's dtype
    compute = opmath_dtype(input.dtype)
    x, w, b = _as(input, compute), _to(weight, compute), _to(bias, compute)
    if training:
        if input.numel() == 0:  # an empty batch: empty output, zero parameter gradients,
            out = x if w is None else x * _per_channel(w, x.dim())  # running stats unchanged
            return (out if b is None else out + _per_channel(b, x.dim())).to(input.dtype)
        if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
            out, mean, var, _, _ = BatchNormFunction.apply(x, w, b, eps)
        else:  # the same without apply's per-call argument binding (a tenth of a small step)
            args = unwrap_dead_wrappers((x, w, b, eps))  # as Function.apply does
            out, mean, var, _, _ = _function_base_apply(BatchNormFunction, *args)
        if running_mean is not None or running_var is not None:
            count = input.numel() // input.shape[1]
            _move_running_stats(running_mean, running_var, mean, var, count, momentum)
        return _as(out, input.dtype)
    # Evaluation: a fixed per-channel affine map; plain torch ops, so autograd differentiates it.
    ndim = input.dim()
    scale = torch.rsqrt(running_var.to(compute) + eps)  # (C,)
    if w is not None:
        scale = scale * w
    out = (x - _per_channel(running_mean.to(compute), ndim)) * _per_channel(scale, ndim)
    return (out if b is None else out + _per_channel(b, ndim)).to(input.dtype)  # (N, C, *)


def batch_norm_scripted(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
) -> Tensor:
    """:func:`batch_norm` in operations TorchScript compiles: what a scripted layer runs.

    ``torch.jit.script`` cannot compile :class:`BatchNormFunction` (a Python autograd
    Function), so a scripted :mod:`bnguide.nn` layer calls this instead: the same forward
    arithmetic in the same order (the output equals :func:`batch_norm`'s bit for bit), with
    autograd differentiating the operations instead of the hand-written backward, and without
    the argument checks. A module scripted this way has no Python left in it, so
    ``torch.jit.save`` can write it and ``torch.jit.load`` run it without bnguide installed.

    Parameters
    ----------
    input, running_mean, running_var, weight, bias, training, momentum, eps
        As for :func:`batch_norm`.

    Returns
    -------
    Tensor
        Equal to :func:`batch_norm`'s output.
    """
    compute = opmath_dtype(input.dtype)
    x = input.to(compute)
    w = None if weight is None else weight.to(compute)
    b = None if bias is None else bias.to(compute)
    ndim = input.dim()
    if training:
        if input.numel() == 0:  # an empty batch: running statistics unchanged
            out = x if w is None else x * _per_channel(w, ndim)
            return (out if b is None else out + _per_channel(b, ndim)).to(input.dtype)
        count = input.numel() // input.shape[1]
        values = torch.full((), float(count), dtype=compute, device=x.device)  # per channel
        eps_t = torch.full((), eps, dtype=compute, device=x.device)
        centered, mean, var, invstd, _ = _batch_statistics(x, values, eps_t)
        with torch.no_grad():
            if running_mean is not None:
                running_mean.lerp_(mean.detach().to(running_mean.dtype), momentum)
            if running_var is not None:
                unbiased = var.detach().to(running_var.dtype) * (count / (count - 1))
                running_var.lerp_(unbiased, momentum)
        scale = invstd if w is None else invstd * w  # (C,)
        if b is None:
            return (centered * _per_channel(scale, ndim)).to(input.dtype)
        out = torch.addcmul(_per_channel(b, ndim), centered, _per_channel(scale, ndim))
        return out.to(input.dtype)
    assert running_mean is not None and running_var is not None  # refines Optional for TorchScript
    scale = torch.rsqrt(running_var.to(compute) + eps)  # (C,)
    if w is not None:
        scale = scale * w
    out = (x - _per_channel(running_mean.to(compute), ndim)) * _per_channel(scale, ndim)
    return (out if b is None else out + _per_channel(b, ndim)).to(input.dtype)  # (N, C, *)


def opmath_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a normalizer computes in: float32 for float16 and bfloat16, else ``dtype``.

    PyTorch's CPU and CUDA kernels accumulate reduced-precision inputs in float32 ("opmath")
    and round the result once; every bnguide normalizer does the same.

    Parameters
    ----------
    dtype : torch.dtype
        The input's dtype.

    Returns
    -------
    torch.dtype
        ``torch.float32`` for ``torch.float16`` and ``torch.bfloat16``; ``dtype`` otherwise.
    """
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _to(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else _as(t, dtype)


def _as(t: Tensor, dtype: torch.dtype) -> Tensor:
    # t.to(dtype) returns t itself when the dtype matches, but only after a dispatch: skip it
    return t if t.dtype == dtype else t.to(dtype)
