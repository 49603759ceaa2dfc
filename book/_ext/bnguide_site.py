"""A small Sphinx extension for the book's website.

- Every page built from a notebook gets, right under its title, the one command that runs it in
  a clone of the repository (the download button at the top gives the ``.ipynb`` itself).
- Each script is included once: Sphinx 7 includes inline scripts that extensions register late
  (sphinx-thebe's configuration among them) twice, and the second copy of thebe's fails in the
  browser with "Identifier 'THEBE_JS_URL' has already been declared" on every page.

Loaded through ``sphinx.local_extensions`` in ``_config.yml``; checked by
``tests/test_website.py``.
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


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    # Sphinx registers an inline script once with filename None and once more with "" when it
    # was added after the builder started, so the two copies do not compare equal.
    unique, seen = [], set()
    for script in context.get("script_files") or []:
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", script) or "", tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    if unique:
        context["script_files"] = unique


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
    app.connect("html-page-context", _dedupe_scripts)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
