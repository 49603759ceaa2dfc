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
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm as _TorchBatchNorm

from bnguide import _validation
from bnguide.functional import batch_norm, batch_norm_scripted

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d"]


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
        _validation.check_num_channels(input, self.num_features, self._get_name())
        factor = self._factor()
        # Which statistics: batch ones in training, and in evaluation when none are tracked.
        use_batch_stats = self.training or self.running_mean is None
        # Pass the buffers only when they are read (eval) or updated (training and tracked).
        track = not self.training or self.track_running_stats
        return batch_norm(
            input,
            self.running_mean if track else None,
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
