"""The first cell of every notebook of the book: it installs bnguide where bnguide is missing.

A notebook opened from the Colab or Binder launch button, or downloaded alone, has no clone of
the repository around it. Its first cell installs the release of bnguide from the repository
(``repository.url`` in ``_config.yml``, the version in ``pyproject.toml``) when the package is not
importable, and does nothing where it is (a clone with ``make lab``, the book build, nbval). The
cell is tagged ``remove-cell``, so the website does not show it.

Run from the repository root::

    python book/_ext/install_cell.py           # add or update the cell in every notebook
    python book/_ext/install_cell.py --check   # list the notebooks whose first cell differs

Only the first cell is written: the rest of each file stays byte for byte as it was (the cell is
stored without outputs, so no notebook is executed again for it). ``tests/test_run_anywhere.py``
checks that every notebook starts with this cell and runs it in a clean environment.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

__all__ = [
    "CELL_ID",
    "TAG",
    "cell",
    "has_current_cell",
    "notebooks",
    "release_version",
    "repository_url",
    "requirement",
    "write_cell",
]

ROOT = Path(__file__).resolve().parents[2]
CELL_ID = "install-bnguide"
TAG = "remove-cell"
# Where the cells of an nbformat-written notebook begin.
_CELLS_START = '{\n "cells": [\n'


def repository_url(root: Path = ROOT) -> str:
    """The repository's URL: ``repository.url`` in ``_config.yml``, the one place it is kept."""
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    url = (config.get("repository") or {}).get("url")
    if not url or not url.startswith("https://"):
        raise ValueError(f"_config.yml: repository.url must be an https:// URL, not {url!r}")
    return url.rstrip("/")


def release_version(root: Path = ROOT) -> str:
    """The version in ``pyproject.toml`` (``[project] version``), the release the cell pins."""
    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    match = re.search(r'^version\s*=\s*"([^"]+)"', project, re.MULTILINE)
    if match is None:
        raise ValueError('pyproject.toml: no version = "..." in [project]')
    return match.group(1)


def requirement(root: Path = ROOT) -> str:
    """What the cell installs: the release tag ``v<version>`` of the repository."""
    return f"bnguide @ git+{repository_url(root)}@v{release_version(root)}"


def cell(root: Path = ROOT) -> dict:
    """The cell, as stored in a notebook (no outputs: it prints nothing where bnguide exists)."""
    source = (
        "# Colab, Binder or a notebook downloaded alone: install bnguide if it is missing.\n"
        "import importlib.util\n"
        "\n"
        'if importlib.util.find_spec("bnguide") is None:\n'
        f'    %pip install --quiet "{requirement(root)}"\n'
        "    import bnguide  # fails here if the install did not work"
    )
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": CELL_ID,
        "metadata": {"tags": [TAG]},
        "outputs": [],
        "source": source.splitlines(keepends=True),
    }


def notebooks(root: Path = ROOT) -> list[Path]:
    """Every notebook of the book."""
    return sorted(
        p for p in (root / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
    )


def _first_cell_span(text: str, path: Path) -> tuple[dict, int, int]:
    if not text.startswith(_CELLS_START):
        raise ValueError(
            f"{path}: does not start with {_CELLS_START!r}; save it with Jupyter or nbformat first"
        )
    start = text.index("{", len(_CELLS_START))
    first, end = json.JSONDecoder().raw_decode(text, start)
    return first, start, end


def _serialized(new_cell: dict) -> str:
    # As nbformat writes a cell: sorted keys, one space of indent per level, two levels deep.
    return json.dumps(new_cell, sort_keys=True, indent=1, ensure_ascii=False).replace("\n", "\n  ")


def has_current_cell(path: Path, root: Path = ROOT) -> bool:
    """Whether the notebook starts with the cell exactly as :func:`cell` makes it."""
    first, _, _ = _first_cell_span(path.read_text(encoding="utf-8"), path)
    return first == cell(root)


def write_cell(path: Path, root: Path = ROOT) -> bool:
    """Insert the cell before the first one, or replace an older copy. True if the file changed."""
    text = path.read_text(encoding="utf-8")
    first, start, end = _first_cell_span(text, path)
    new = _serialized(cell(root))
    if first.get("id") == CELL_ID:
        updated = text[:start] + new + text[end:]
    else:
        updated = text[:start] + new + ",\n  " + text[start:]
    json.loads(updated)  # still a notebook
    if updated == text:
        return False
    path.write_text(updated, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; list what differs")
    args = parser.parse_args(argv)
    if args.check:
        stale = [p for p in notebooks() if not has_current_cell(p)]
        for p in stale:
            print(f"{p.relative_to(ROOT)}: first cell is not the install cell; run {__file__}")
        return 1 if stale else 0
    for p in notebooks():
        if write_cell(p):
            print(f"wrote the install cell of {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
