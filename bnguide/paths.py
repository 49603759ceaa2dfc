"""Where bnguide keeps downloaded data and cached experiment results.

Both live under one root: ``$BNGUIDE_CACHE`` if set, else the operating system's cache folder
(``~/.cache/bnguide`` on Linux). Used by :mod:`bnguide.data` and :mod:`bnguide.cache`, which both
clean up the temporaries of killed writers with :func:`remove_stale_temporaries`.

Examples
--------
>>> from bnguide.paths import cache_root
>>> cache_root().name  # doctest: +SKIP
'bnguide'
"""

import os
import re
import shutil
from pathlib import Path

import pooch

__all__ = ["cache_root", "remove_stale_temporaries"]


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


_TEMPORARY = re.compile(r"\.tmp-(\d+)-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


def remove_stale_temporaries(folder: Path, pattern: re.Pattern = _TEMPORARY) -> int:
    """Delete the temporary files and folders in ``folder`` left by processes that died.

    Temporary names carry the writer's process id (``.tmp-<pid>-...``); those whose process
    no longer exists are removed, those of running writers are left alone.

    Parameters
    ----------
    folder : pathlib.Path
    pattern : re.Pattern
        Matches temporary names at their start; group 1 is the process id.

    Returns
    -------
    int
        How many were removed.
    """
    removed = 0
    try:
        entries = list(folder.iterdir())
    except OSError:
        return 0
    for entry in entries:
        match = pattern.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            try:
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
            except OSError:
                pass
    return removed
