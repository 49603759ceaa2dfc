"""A small Sphinx extension for the book's website: a "run this page" note on notebook pages.

Every page built from a notebook gets, right under its title, the one command that runs it in a
clone of the repository (the download button at the top gives the ``.ipynb`` itself). Loaded
through ``sphinx.local_extensions`` in ``_config.yml``; checked by ``tests/test_website.py``.
"""

from __future__ import annotations

import html
from pathlib import Path

__all__ = ["run_command", "setup"]

NOTE_CLASS = "bnguide-run-locally"


def run_command(source: str) -> str:
    """The shell command that installs the environment and opens ``source`` in JupyterLab.

    Parameters
    ----------
    source : str
        The notebook's path relative to the repository root, e.g. ``"book/data.ipynb"``.
    """
    return f"make env && .venv/bin/jupyter lab {source}"


def _note(source: str) -> str:
    command = html.escape(run_command(source))
    return (
        f'<div class="admonition tip {NOTE_CLASS}">'
        '<p class="admonition-title">Run this page yourself</p>'
        "<p>Download the notebook with the download button at the top of the page, or run it "
        "from a clone of the repository with one command:</p>"
        f'<div class="highlight"><pre><span></span>{command}</pre></div>'
        "</div>"
    )


def _add_note(app, pagename, templatename, context, doctree) -> None:
    if doctree is None or "body" not in context:
        return
    source = Path(app.env.doc2path(pagename, base=False))
    if source.suffix != ".ipynb":
        return
    body = context["body"]
    end_of_title = body.find("</h1>")
    if end_of_title < 0:
        return
    cut = end_of_title + len("</h1>")
    context["body"] = body[:cut] + _note(source.as_posix()) + body[cut:]


def setup(app):
    app.connect("html-page-context", _add_note)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
