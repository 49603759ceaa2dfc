"""bnguide: batch normalization from first principles, and the book built on it.

Submodules are imported on demand (``import bnguide.nn``, ``from bnguide import data``) so that
``import bnguide`` stays cheap.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "cache",
    "data",
    "experiments",
    "functional",
    "nn",
    "numpy_bn",
    "style",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'bnguide' has no attribute {name!r}")
