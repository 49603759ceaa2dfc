"""The one drawing helper the figure modules share: a mean over seeds with its min-max band."""

import numpy as np


def seed_band(ax, x, values, label, color, marker="o", **line_kw):
    """Draw the mean of ``values`` over axis 0 (seeds) as a line, and its min-max as a band.

    ``values`` is ``(seeds, len(x))``; with one seed only the line is drawn. Extra keywords go
    to ``ax.plot`` (for example ``ls``).
    """
    values = np.asarray(values, dtype=float)
    ax.plot(x, values.mean(0), marker=marker, color=color, label=label, **line_kw)
    if values.shape[0] > 1:
        ax.fill_between(x, values.min(0), values.max(0), color=color, alpha=0.18, lw=0)
