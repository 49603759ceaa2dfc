import html.parser

import pytest

from bnguide.table import Table


class _Cells(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.tag = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.tag = tag
            self.rows[-1].append((tag, dict(attrs)["style"], ""))

    def handle_endtag(self, tag):
        self.tag = None

    def handle_data(self, data):
        if self.tag:
            tag, style, text = self.rows[-1][-1]
            self.rows[-1][-1] = (tag, style, text + data)


def test_html_has_one_row_per_row_with_escaped_cells_and_the_alignment():
    t = Table(["a", "b <x>"], [["1 & 2", "3"], ["4", "5"]], align="lr")
    parser = _Cells()
    parser.feed(t._repr_html_())
    assert [[c[2] for c in row] for row in parser.rows] == [
        ["a", "b <x>"],
        ["1 & 2", "3"],
        ["4", "5"],
    ]
    assert [c[0] for c in parser.rows[0]] == ["th", "th"]
    assert [c[1] for c in parser.rows[1]] == ["text-align: left", "text-align: right"]
    assert "|" not in t._repr_html_()  # no Markdown table syntax reaches the page


def test_text_form_aligns_columns():
    t = Table(["name", "n"], [["long name", 1], ["x", 100]])
    assert str(t).splitlines() == ["name         n", "long name    1", "x          100"]
    assert repr(t) == str(t)


def test_bad_shapes_are_refused_with_what_to_fix():
    with pytest.raises(ValueError, match="row 1 has 1 cells but the header has 2 columns"):
        Table(["a", "b"], [["1", "2"], ["3"]])
    with pytest.raises(ValueError, match="one letter per column"):
        Table(["a", "b"], [], align="lrr")
    with pytest.raises(ValueError, match="one letter per column"):
        Table(["a", "b"], [], align="lc")
    with pytest.raises(ValueError, match="at least one column"):
        Table([], [])
