"""``BatchNorm1d``, ``BatchNorm2d`` and ``BatchNorm3d`` written from scratch, mirroring PyTorch.

Same constructor, parameters (``weight``, ``bias``), buffers (``running_mean``,
``running_var``, ``num_batches_tracked``), methods and behaviour as ``torch.nn.BatchNorm*d``,
so a ``state_dict`` moves between the two with ``strict=True``. The module decides *which*
statistics to use; :func:`bnguide.functional.batch_norm` computes. Used in chapter
*The full guide: implementation* (page *The PyTorch module*) and by the book's experiments.

Examples
--------
>>> import torch
>>> from bnguide.nn import BatchNorm2d
>>> bn = BatchNorm2d(3)
>>> out = bn(torch.randn(8, 3, 5, 5))  # (N, C, H, W)
>>> torch.nn.BatchNorm2d(3).load_state_dict(bn.state_dict())
<All keys matched successfully>
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm as _TorchBatchNorm

from bnguide import _validation
from bnguide.functional import batch_norm, batch_norm_scripted

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "NormBase"]


class NormBase(nn.Module):
    """What every bnguide normalizer layer shares: parameters, running buffers, reset, state.

    torch's split (``torch.nn.modules.batchnorm._NormBase``) made public and general: a
    subclass passes the shape of its learned parameters and, if it keeps running statistics,
    their names and initial values, then writes only ``forward`` (and its arithmetic). This
    class provides

    * the parameters ``weight`` (init 1) and ``bias`` (init 0) of shape ``param_shape``, or
      None when ``affine`` is False (and ``bias`` None when ``bias`` is False);
    * the buffers named in ``running_stats`` (a dict name -> initial value) plus the long
      counter ``num_batches_tracked``, all None when ``track_running_stats`` is False;
    * :meth:`reset_running_stats`, :meth:`reset_parameters` (called by the constructor);
    * state_dict versioning: a subclass with running statistics sets ``_version = 2`` and loads
      version-1 checkpoints without ``num_batches_tracked`` (the counter is set to 0), as
      torch's batch norm does;
    * :meth:`extra_repr` from the class attributes ``_repr_positional`` and
      ``_repr_keywords`` (attribute names; ``"bias"`` shows whether there is a bias).

    bnguide's ``BatchNorm*d``, ``SyncBatchNorm`` and ``InstanceNorm*d`` subclass torch's
    ``_BatchNorm`` / ``_InstanceNorm`` instead (the same bookkeeping, which torch owns), because
    libraries find normalization layers with ``isinstance`` on those private torch classes.
    Used in chapter *The full guide: implementation* and by every layer of :mod:`bnguide.norms`.

    Parameters
    ----------
    param_shape : int or tuple of int
        Shape of ``weight`` and ``bias`` (``C``, or ``normalized_shape``).
    affine : bool
        Learn ``weight`` and ``bias``.
    bias : bool
        With ``affine``, learn ``bias`` too.
    running_stats : dict of str to float, optional
        Names and initial values of the running-statistics buffers, each of shape
        ``param_shape``; None for a normalizer without running statistics.
    track_running_stats : bool
        Keep the buffers of ``running_stats`` (and ``num_batches_tracked``).
    device, dtype
        Where and in which precision to create parameters and buffers.

    Examples
    --------
    A new normalizer is one small class (here: divide each channel by its batch maximum):

    >>> import torch
    >>> class MaxNorm1d(NormBase):
    ...     _repr_positional = ("num_features",)
    ...     def __init__(self, num_features):
    ...         self.num_features = num_features
    ...         super().__init__(num_features)
    ...     def forward(self, x):  # (N, C)
    ...         return x / x.abs().amax(0) * self.weight + self.bias
    >>> MaxNorm1d(3)
    MaxNorm1d(3)
    >>> MaxNorm1d(3)(torch.tensor([[1.0, -4.0, 2.0], [-2.0, 2.0, 1.0]]))[0]
    tensor([ 0.5000, -1.0000,  1.0000], grad_fn=<SelectBackward0>)
    """

    _repr_positional: tuple[str, ...] = ()
    _repr_keywords: tuple[str, ...] = ()

    def __init__(
        self,
        param_shape,
        affine: bool = True,
        bias: bool = True,
        running_stats: dict[str, float] | None = None,
        track_running_stats: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.affine = affine
        self.track_running_stats = track_running_stats
        self._stat_init = dict(running_stats or {})
        if affine:
            self.weight = nn.Parameter(torch.empty(param_shape, **factory))
            if bias:
                self.bias = nn.Parameter(torch.empty(param_shape, **factory))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self._stat_init:
            for name in self._stat_init:
                value = torch.empty(param_shape, **factory) if track_running_stats else None
                self.register_buffer(name, value)
            counter = torch.tensor(0, dtype=torch.long, device=device)
            self.register_buffer("num_batches_tracked", counter if track_running_stats else None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Set every running statistic to its initial value and ``num_batches_tracked`` to 0."""
        if self._stat_init and self.track_running_stats:
            for name, value in self._stat_init.items():
                getattr(self, name).fill_(value)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics, ``weight`` to ones and ``bias`` to zeros."""
        self.reset_running_stats()
        if self.weight is not None:
            nn.init.ones_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _momentum_step(self) -> float:
        """Count a training batch; return its weight in the running averages.

        ``momentum``, or ``1 / num_batches_tracked`` (a cumulative average) when the
        subclass's ``momentum`` is None; 0 in evaluation or without running statistics, where
        nothing is counted.
        """
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        return factor

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # a checkpoint from before num_batches_tracked existed (version < 2): count from 0
        version = local_metadata.get("version", None)
        key = prefix + "num_batches_tracked"
        if self._stat_init and self.track_running_stats and key not in state_dict:
            if version is None or version < 2:
                state_dict[key] = torch.tensor(0, dtype=torch.long)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        def value(name):
            return self.bias is not None if name == "bias" else getattr(self, name)

        items = [str(value(n)) for n in self._repr_positional]
        items += [f"{n}={value(n)}" for n in self._repr_keywords]
        return ", ".join(items)


class _BatchNorm(_TorchBatchNorm):
    """Shared code of the three classes; they differ only in :meth:`_check_input_dim`.

    The bookkeeping (parameters ``weight``/``bias``, buffers ``running_mean``/``running_var``/
    ``num_batches_tracked``, ``reset_parameters``, ``extra_repr``, the state_dict version and
    loading of old checkpoints without ``num_batches_tracked``) is inherited from torch's
    ``torch.nn.modules.batchnorm._BatchNorm``, so that ``isinstance(layer, _BatchNorm)`` holds:
    ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``, weight-decay exclusion, layer fusion and
    FSDP wrapping find bnguide's layers by that test. The computation, :meth:`forward` and
    :func:`bnguide.functional.batch_norm`, is bnguide's own.

    Parameters
    ----------
    num_features : int
        ``C``, the number of channels (features) in dimension 1 of the input.
    eps : float
        Added to the variance before the square root.
    momentum : float or None
        Weight of each new batch in the running statistics; None means a cumulative average
        (weight ``1 / num_batches_tracked``).
    affine : bool
        Learn a per-channel scale ``weight`` (init 1) and shift ``bias`` (init 0).
    track_running_stats : bool
        Keep running statistics for evaluation. If False, batch statistics are used in both
        modes and the buffers are None.
    device, dtype
        Where and in which precision to create parameters and buffers.
    bias : bool, keyword-only
        With ``affine``, whether to learn the shift (PyTorch >= 2.6 has this switch too).
    """

    @torch.jit.unused
    def _check_input_dim(self, input):  # unannotated: TorchScript reads it as Tensor -> None
        raise NotImplementedError

    def forward(self, input: Tensor) -> Tensor:
        """Normalize ``input``; see the class docstring.

        Scriptable: under ``torch.jit.script`` the compiled module runs
        :func:`bnguide.functional.batch_norm_scripted` (the same arithmetic, no Python), so
        ``torch.jit.save`` and ``torch.jit.load`` work; in eager mode the checked
        :meth:`_forward` with its hand-written backward runs.
        """
        if torch.jit.is_scripting():
            if input.dim() < 2 or input.shape[1] != self.num_features:
                raise ValueError(
                    f"expected input of shape (N, {self.num_features}, *), got {input.shape}"
                )
            factor = self._factor()
            track = not self.training or self.track_running_stats
            return batch_norm_scripted(
                input,
                self.running_mean if track else None,
                self.running_var if track else None,
                self.weight,
                self.bias,
                self.training or self.running_mean is None,
                factor,
                self.eps,
            )
        self._check_input_dim(input)
        return self._forward(input)

    def _factor(self) -> float:
        # How much the running averages move: momentum, or 1/t for a cumulative average; in
        # training with tracked statistics, count the batch first.
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            num_batches_tracked = self.num_batches_tracked
            assert num_batches_tracked is not None  # refines Optional for TorchScript
            num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(num_batches_tracked)
        return factor

    @torch.jit.unused
    def _forward(self, input):  # unannotated: TorchScript reads it as Tensor -> Tensor
        """Normalize ``input`` over its batch (and spatial) dimensions, channel by channel.

        Shape
        -----
        input, output: ``(N, C, *)`` with ``C = num_features``, as the subclass expects.
        """
        if input.shape[1] != self.num_features:  # (the check words the error)
            _validation.check_num_channels(input, self.num_features, self._get_name())
        factor = self._factor()
        training, running_mean = self.training, self.running_mean  # a buffer: read it once
        # Which statistics: batch ones in training, and in evaluation when none are tracked.
        use_batch_stats = training or running_mean is None
        # Pass the buffers only when they are read (eval) or updated (training and tracked).
        track = not training or self.track_running_stats
        return batch_norm(
            input,
            running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )


def _dims_message(expected: str, input: Tensor, layout: str) -> str:
    # torch's wording first, then the shape and how to fix it
    return (
        f"expected {expected} input (got {input.dim()}D input); input shape "
        f"{tuple(input.shape)}, expected layout {layout}"
    )


class BatchNorm1d(_BatchNorm):
    """Batch norm over a 2D ``(N, C)`` or 3D ``(N, C, L)`` input, like ``torch.nn.BatchNorm1d``.

    Statistics per feature ``C`` over ``N`` (and ``L``). Parameters as for the shared base
    ``_BatchNorm``.
    """

    @torch.jit.unused
    def _check_input_dim(self, input):  # unannotated: TorchScript reads it as Tensor -> None
        if input.dim() not in (2, 3):
            raise ValueError(
                _dims_message("2D or 3D", input, "(N, C) or (N, C, L)")
                + ". Use BatchNorm2d for images (N, C, H, W); add a batch dimension to a single "
                "example with x.unsqueeze(0)."
            )


class BatchNorm2d(_BatchNorm):
    """Batch norm over a 4D ``(N, C, H, W)`` input, like ``torch.nn.BatchNorm2d``.

    Statistics per channel over ``N``, ``H`` and ``W``; one ``weight``/``bias`` per channel.
    """

    @torch.jit.unused
    def _check_input_dim(self, input):  # unannotated: TorchScript reads it as Tensor -> None
        if input.dim() != 4:
            raise ValueError(
                _dims_message("4D", input, "(N, C, H, W)")
                + ". Use BatchNorm1d for (N, C) features; add a batch dimension to a single "
                "image with x.unsqueeze(0)."
            )


class BatchNorm3d(_BatchNorm):
    """Batch norm over a 5D ``(N, C, D, H, W)`` input, like ``torch.nn.BatchNorm3d``.

    Statistics per channel over ``N``, ``D``, ``H`` and ``W``.
    """

    @torch.jit.unused
    def _check_input_dim(self, input):  # unannotated: TorchScript reads it as Tensor -> None
        if input.dim() != 5:
            raise ValueError(
                _dims_message("5D", input, "(N, C, D, H, W)")
                + ". Use BatchNorm2d for images (N, C, H, W); add a batch dimension to a single "
                "volume with x.unsqueeze(0)."
            )
