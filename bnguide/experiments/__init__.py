"""The experiments behind the book's figures, discovered from the modules of this package.

An experiment module defines ``NAME`` (what ``python -m bnguide list`` shows), ``DESCRIPTION``,
a frozen dataclass ``Config`` whose defaults are the scale the book shows, and
``run(config, progress=False) -> Result``. Run one with ``bnguide.cache.cached_run``; run one
per seed with ``bnguide.cache.cached_runs(run, seed_configs(config, seeds))``.

Examples
--------
>>> from bnguide import experiments
>>> "ghost-batch" in experiments.available()
True
>>> experiments.get("ghost-batch").__name__
'bnguide.experiments.ghost_batch'
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Iterable
from types import ModuleType
from typing import Any

__all__ = ["available", "get", "seed_configs"]


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


def seed_configs(config: Any, seeds: Iterable[int]) -> list:
    """``config`` once per seed, for :func:`bnguide.cache.cached_runs` (each seed cached alone).

    Parameters
    ----------
    config : dataclass instance
        An experiment's ``Config``, with a field ``seed`` (an int) or ``seeds`` (a tuple).
    seeds : iterable of int
        One config per seed: ``seed=s``, or ``seeds=(s,)``.

    Returns
    -------
    list
        Configs equal to ``config`` but for the seed.

    Raises
    ------
    ValueError
        If ``config`` has neither field.

    Examples
    --------
    >>> from bnguide.experiments import santurkar_mlp
    >>> [c.seed for c in seed_configs(santurkar_mlp.Config(), (3, 4))]
    [3, 4]
    """
    names = {f.name for f in dataclasses.fields(config)}
    if "seed" in names:
        return [dataclasses.replace(config, seed=int(s)) for s in seeds]
    if "seeds" in names:
        return [dataclasses.replace(config, seeds=(int(s),)) for s in seeds]
    raise ValueError(
        f"{type(config).__name__} has no field 'seed' or 'seeds': seed_configs needs one to "
        "vary. Give the Config one, or build the configs with dataclasses.replace."
    )
