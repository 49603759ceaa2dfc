"""The book's figure style and the colours that mean the same thing on every page.

Every notebook calls :func:`use` once; plotting helpers in :mod:`bnguide.plots` use
:data:`COLORS` so "with BN" and "without BN" look the same throughout the book.

Examples
--------
>>> import matplotlib.pyplot as plt
>>> from bnguide import style
>>> style.use()
>>> fig, ax = plt.subplots()
>>> lines = ax.plot([0, 1], [0, 1], color=style.COLORS["bn"], label="BN")
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

__all__ = ["COLORS", "STYLE_FILE", "use"]

STYLE_FILE = Path(__file__).with_name("bnguide.mplstyle")

# Okabe-Ito colours: distinguishable with the common forms of colour blindness.
COLORS = {
    "baseline": "#D55E00",  # no normalization
    "bn": "#0072B2",  # batch normalization
    "alt1": "#009E73",
    "alt2": "#CC79A7",
    "alt3": "#E69F00",
    "alt4": "#56B4E9",
    "paper": "#555555",  # numbers read off the original papers
}


def use() -> None:
    """Apply bnguide's matplotlib style sheet to all following figures."""
    plt.style.use(STYLE_FILE)
