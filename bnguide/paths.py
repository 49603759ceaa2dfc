"""Where bnguide keeps downloaded data and cached experiment results.

Both live under one root: ``$BNGUIDE_CACHE`` if set, else the operating system's cache folder
(``~/.cache/bnguide`` on Linux). Used by :mod:`bnguide.data` and :mod:`bnguide.cache`.

Examples
--------
>>> from bnguide.paths import cache_root
>>> cache_root().name  # doctest: +SKIP
'bnguide'
"""

import os
from pathlib import Path

import pooch

__all__ = ["cache_root"]


def cache_root() -> Path:
    """Return the root folder for bnguide's downloads and cached results.

    Returns
    -------
    pathlib.Path
        ``$BNGUIDE_CACHE`` when that variable is set and non-empty, otherwise
        ``pooch.os_cache("bnguide")``. The folder is not created here.
    """
    override = os.environ.get("BNGUIDE_CACHE", "").strip()
    return Path(override).expanduser() if override else Path(pooch.os_cache("bnguide"))
