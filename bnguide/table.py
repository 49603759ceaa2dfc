"""Tables of results shown in a notebook: a real HTML table on the website, aligned text elsewhere.

Used by the chapters that print comparison tables (:doc:`/book/practice/ioffe-mnist`,
:doc:`/book/practice/learning-rate-and-sigmoid`, :doc:`/book/practice/bn-placement`).

A notebook cell that ends with a :class:`Table` shows it as HTML (the book's theme styles it; GitHub
and nbviewer render it too). ``IPython.display.Markdown`` is not used for tables: the book's
notebook renderer showed such output as one paragraph of pipes.

Examples
--------
>>> t = Table(["variant", "accuracy"], [["BN", "97.9%"], ["no BN", "96.7%"]], align="lr")
>>> print(t)
variant  accuracy
BN          97.9%
no BN       96.7%
>>> "<table" in t._repr_html_()
True
"""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__ = ["Link", "Table"]


class Link:
    """A table cell that links somewhere: ``<a href=...>`` in HTML, its text elsewhere.

    Parameters
    ----------
    text : str
        What the cell shows.
    href : str
        The address, relative to the page that shows the table (``"why/ics.html"``).

    Examples
    --------
    >>> print(Table(["page"], [[Link("ICS", "why/ics.html")]]))
    page
    ICS
    """

    def __init__(self, text: str, href: str):
        self.text, self.href = str(text), str(href)

    def __str__(self) -> str:
        return self.text

    def html(self) -> str:
        """The cell's HTML, text and address escaped."""
        return f'<a href="{html.escape(self.href)}">{html.escape(self.text)}</a>'


class Table:
    """A table of already formatted cells.

    Parameters
    ----------
    header : sequence of str
        The column titles.
    rows : sequence of sequences
        One sequence per row, as many cells as ``header``; cells are shown with ``str()``, a
        :class:`Link` as a link.
    align : str, optional
        One letter per column, ``"l"`` (left) or ``"r"`` (right; numbers). Default: the first
        column left, the others right.

    Raises
    ------
    ValueError
        If a row or ``align`` does not have one entry per column, or ``align`` has other letters.
    """

    def __init__(self, header: Sequence[str], rows: Sequence[Sequence], align: str | None = None):
        self.header = [str(h) for h in header]
        n = len(self.header)
        if n == 0:
            raise ValueError("a Table needs at least one column: pass a non-empty header")
        self.rows = [
            [cell if isinstance(cell, Link) else str(cell) for cell in row] for row in rows
        ]
        for i, row in enumerate(self.rows):
            if len(row) != n:
                raise ValueError(
                    f"row {i} has {len(row)} cells but the header has {n} columns: "
                    "give every row one cell per column"
                )
        self.align = align if align is not None else "l" + "r" * (n - 1)
        if len(self.align) != n or set(self.align) - {"l", "r"}:
            raise ValueError(
                f"align={self.align!r}: give one letter per column ({n}), 'l' or 'r' each"
            )

    def _repr_html_(self) -> str:
        def cells(tag: str, row: list[str]) -> str:
            return "".join(
                f'<{tag} style="text-align: {"left" if a == "l" else "right"}">'
                f"{c.html() if isinstance(c, Link) else html.escape(c)}</{tag}>"
                for a, c in zip(self.align, row, strict=True)
            )

        body = "".join(f"<tr>{cells('td', row)}</tr>" for row in self.rows)
        return (
            '<table class="bnguide-table table">'
            f"<thead><tr>{cells('th', self.header)}</tr></thead><tbody>{body}</tbody></table>"
        )

    def __str__(self) -> str:
        table = [self.header, *self.rows]
        table = [[str(c) for c in row] for row in table]
        widths = [max(len(row[j]) for row in table) for j in range(len(self.header))]
        lines = [
            "  ".join(
                c.ljust(w) if a == "l" else c.rjust(w)
                for a, c, w in zip(self.align, row, widths, strict=True)
            ).rstrip()
            for row in table
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)
