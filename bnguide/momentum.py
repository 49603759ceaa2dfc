"""Converting BN's running-statistics momentum between frameworks.

PyTorch's ``momentum`` is the weight of the *new* batch:
``running = (1 - momentum) * running + momentum * batch`` (default 0.1). Keras/TensorFlow,
Flax and the CS231n assignments call ``momentum`` the weight of the *old* value:
``moving = momentum * moving + (1 - momentum) * batch`` (Keras default 0.99, Flax 0.99).
So a Keras momentum ``m`` is a PyTorch momentum ``1 - m``. Copying the number unchanged makes the
running statistics follow the last batch almost alone. Used in the chapter *Pitfalls*.

The defaults differ in ``eps`` too: 1e-5 in PyTorch and Flax, 1e-3 in Keras.
"""

from __future__ import annotations

__all__ = ["DEFAULTS", "from_keras", "keras_update", "to_keras"]

# Each framework's default (momentum in its own convention, eps).
DEFAULTS = {
    "pytorch": {"momentum": 0.1, "eps": 1e-5, "convention": "weight of the new batch"},
    "keras": {"momentum": 0.99, "eps": 1e-3, "convention": "weight of the old value"},
    "flax": {"momentum": 0.99, "eps": 1e-5, "convention": "weight of the old value"},
}


def _check(momentum: float, name: str) -> None:
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {momentum}.")


def from_keras(keras_momentum: float) -> float:
    """The PyTorch ``momentum`` equivalent to a Keras/Flax ``momentum``: ``1 - keras_momentum``.

    Parameters
    ----------
    keras_momentum : float
        Weight of the old moving average, in [0, 1] (Keras default 0.99).

    Returns
    -------
    float
        Weight of the new batch, for ``torch.nn.BatchNorm*d(momentum=...)``.
    """
    _check(keras_momentum, "keras_momentum")
    return 1.0 - keras_momentum


def to_keras(torch_momentum: float) -> float:
    """The Keras/Flax ``momentum`` equivalent to a PyTorch ``momentum``: ``1 - torch_momentum``.

    ``torch_momentum=None`` (PyTorch's cumulative average) has no Keras equivalent and raises.
    """
    if torch_momentum is None:
        raise ValueError(
            "momentum=None is PyTorch's cumulative average (factor 1/num_batches_tracked); "
            "Keras has no equivalent constant momentum."
        )
    _check(torch_momentum, "torch_momentum")
    return 1.0 - torch_momentum


def keras_update(moving, batch_value, keras_momentum: float):
    """Keras' update of a moving statistic: ``moving * m + batch_value * (1 - m)``.

    Works on floats, NumPy arrays and tensors; returns a new value.
    """
    _check(keras_momentum, "keras_momentum")
    return moving * keras_momentum + batch_value * (1.0 - keras_momentum)
