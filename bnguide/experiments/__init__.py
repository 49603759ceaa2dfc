"""The experiments behind the book's figures, discovered from the modules of this package.

An experiment module defines ``NAME`` (what ``python -m bnguide list`` shows), ``DESCRIPTION``,
a frozen dataclass ``Config`` whose defaults are the scale the book shows, and
``run(config, progress=False) -> Result``. Run one with ``bnguide.cache.cached_run``.

Examples
--------
>>> from bnguide import experiments
>>> "ghost-batch" in experiments.available()
True
>>> experiments.get("ghost-batch").__name__
'bnguide.experiments.ghost_batch'
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

__all__ = ["available", "get"]


def available() -> dict[str, ModuleType]:
    """All experiment modules, by ``NAME``, sorted by name.

    Returns
    -------
    dict of str to module
        ``NAME`` -> experiment module.
    """
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if all(hasattr(module, attr) for attr in ("NAME", "Config", "run")):
            found[module.NAME] = module
    return dict(sorted(found.items()))


def get(name: str) -> ModuleType:
    """The experiment module called ``name``.

    Parameters
    ----------
    name : str
        The experiment's ``NAME``, e.g. ``"ghost-batch"``.

    Returns
    -------
    module
        The experiment module, with its ``Config`` and ``run``.

    Raises
    ------
    ValueError
        If no experiment has that name (the message lists the known ones).
    """
    experiments = available()
    if name not in experiments:
        known = ", ".join(experiments) or "(none)"
        raise ValueError(f"Unknown experiment {name!r}. Known experiments: {known}.")
    return experiments[name]
