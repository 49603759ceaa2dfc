"""A simple recurrent classifier whose summed inputs are normalized at every time step.

``h_t = tanh(norm_t(W_x x_t + W_h h_{t-1}) )`` with ``h_0 = 0``; the last state is read out by
a linear layer. ``norm`` chooses what normalizes the summed inputs ``a_t``:

- ``"none"``: nothing (the linear map keeps its bias);
- ``"batch"``: batch normalization with *separate statistics for every time step* (one
  ``BatchNorm1d`` without affine parameters per step, as in Cooijmans et al. 2017) followed by
  a shared per-unit scale and shift. The network is tied to the sequence length it was
  trained on: step ``t`` has no statistics beyond it.
- ``"layer"``: layer normalization over the hidden units of each example at each step
  (Ba, Kiros & Hinton 2016), with the same per-unit scale and shift at every step.

Used in the chapter *Recurrent nets and LayerNorm*.

Examples
--------
>>> import torch
>>> from bnguide.models.rnn import NormRNN, rows_as_sequence
>>> x = rows_as_sequence(torch.rand(8, 784))  # (N, 28 steps, 28 pixels)
>>> NormRNN(norm="layer")(x).shape  # (N, classes)
torch.Size([8, 10])
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RECURRENT_NORMS", "NormRNN", "rows_as_sequence"]

RECURRENT_NORMS = ("none", "batch", "layer")


def rows_as_sequence(images: torch.Tensor) -> torch.Tensor:
    """MNIST images ``(N, 784)`` or ``(N, 1, 28, 28)`` as sequences of rows ``(N, 28, 28)``.

    Parameters
    ----------
    images : torch.Tensor
        ``(N, 784)`` or ``(N, 1, 28, 28)``.

    Returns
    -------
    torch.Tensor
        ``(N, 28, 28)``: 28 steps of 28 pixels.
    """
    if (images.dim() == 2 and images.shape[1] == 784) or images.shape[-2:] == (28, 28):
        return images.reshape(len(images), 28, 28)  # (N, T=28, 28 pixels)
    raise ValueError(
        f"Expected MNIST images of shape (N, 784) or (N, 1, 28, 28), got {tuple(images.shape)}."
    )


class NormRNN(nn.Module):
    """An Elman RNN (tanh) with a normalizer on the summed inputs, and a linear read-out.

    Parameters
    ----------
    input_size : int
        Features per time step (28 pixels for row-by-row MNIST).
    hidden_size : int
        Number of recurrent units.
    num_classes : int
        Outputs of the read-out layer.
    norm : {"none", "batch", "layer"}
        What normalizes the summed inputs, see the module docstring.
    seq_len : int
        Number of time steps; ``"batch"`` keeps statistics for exactly this many.
    momentum : float
        Running-statistics momentum of the per-step BN layers.

    Shape
    -----
    Input ``(N, seq_len, input_size)``; output ``(N, num_classes)``.
    """

    def __init__(
        self,
        input_size: int = 28,
        hidden_size: int = 64,
        num_classes: int = 10,
        *,
        norm: str = "none",
        seq_len: int = 28,
        momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if norm not in RECURRENT_NORMS:
            known = ", ".join(repr(n) for n in RECURRENT_NORMS)
            raise ValueError(f"Unknown normalizer {norm!r} for NormRNN. Use one of: {known}.")
        self.norm, self.seq_len, self.hidden_size = norm, seq_len, hidden_size
        self.input = nn.Linear(input_size, hidden_size, bias=norm == "none")
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)
        if norm == "batch":
            self.step_norms = nn.ModuleList(
                nn.BatchNorm1d(hidden_size, affine=False, momentum=momentum) for _ in range(seq_len)
            )
        elif norm == "layer":
            self.layer_norm = nn.LayerNorm(hidden_size, elementwise_affine=False)
        if norm != "none":
            self.weight = nn.Parameter(torch.ones(hidden_size))  # shared over time steps
            self.bias = nn.Parameter(torch.zeros(hidden_size))
        self.readout = nn.Linear(hidden_size, num_classes)
        nn.init.orthogonal_(self.recurrent.weight)

    def _normalize(self, a: torch.Tensor, t: int) -> torch.Tensor:
        if self.norm == "none":
            return a
        if self.norm == "batch":
            a = self.step_norms[t](a)  # statistics of step t only
        else:
            a = self.layer_norm(a)  # statistics of each example's own units
        return a * self.weight + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[2] != self.input.in_features:
            raise ValueError(
                f"NormRNN expects input of shape (N, T, {self.input.in_features}), "
                f"got {tuple(x.shape)}. For MNIST images use rows_as_sequence(images)."
            )
        if self.norm == "batch" and x.shape[1] != self.seq_len:
            raise ValueError(
                f"This NormRNN keeps batch statistics for {self.seq_len} time steps and cannot "
                f"run a sequence of {x.shape[1]} steps. Use seq_len={x.shape[1]}, or a "
                "normalizer without per-step statistics (norm='layer')."
            )
        inputs = self.input(x)  # (N, T, H): W_x x_t for all t at once
        h = x.new_zeros(len(x), self.hidden_size)  # (N, H)
        for t in range(x.shape[1]):
            h = torch.tanh(self._normalize(inputs[:, t] + self.recurrent(h), t))  # (N, H)
        return self.readout(h)  # (N, classes)

    def extra_repr(self) -> str:
        return f"norm={self.norm!r}, seq_len={self.seq_len}"
