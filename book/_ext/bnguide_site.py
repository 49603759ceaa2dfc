"""A small Sphinx extension for the book's website.

- Every page built from a notebook gets a short box, "Run this page yourself", after its opening
  (before its first section): the one command that opens it in JupyterLab from a clone, and what
  works elsewhere (the download and launch buttons; the notebook's first, hidden cell installs
  bnguide there). The 30-second and 3-minute pages, shorter than the box, get a "Run this page"
  button in the header instead, linking to the book's "Run it yourself" section.
  The README's "Running one notebook" says the same; ``tests/test_packaging.py`` checks it.
- Pages that moved keep their old address: a small page there sends the browser on to the new one
  (``MOVED``), so links from elsewhere to the old address do not break.
- Each script is included once: Sphinx 7 includes inline scripts that extensions register late
  (sphinx-thebe's configuration among them) twice, and the second copy of thebe's fails in the
  browser with "Identifier 'THEBE_JS_URL' has already been declared" on every page.

Loaded through ``sphinx.local_extensions`` in ``_config.yml``; checked by
``tests/test_website.py``.
"""

from __future__ import annotations

import html
import posixpath
from pathlib import Path

__all__ = ["ELSEWHERE", "MOVED", "SHORT_PAGES", "run_command", "setup"]

NOTE_CLASS = "bnguide-run-locally"
# Pages shorter than the box: a header button instead.
SHORT_PAGES = ("book/in-30-seconds.ipynb", "book/in-3-minutes.ipynb")
# Where the header button of SHORT_PAGES points: the section of the intro that says it all.
RUN_SECTION = ("book/intro", "run-it-yourself")
# What works outside a clone; the README says the same words.
ELSEWHERE = (
    "Elsewhere, download the notebook (download button, top of the page) or open it in Colab or "
    "Binder (launch button): its first, hidden cell installs bnguide when it is missing."
)


# Old address -> new page (both relative to the site's root, without ".html").
MOVED = {"book/implementation/common-mistakes": "book/practice/pitfalls"}


def _write_moved_pages(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    for old, new in MOVED.items():
        target = posixpath.relpath(new, posixpath.dirname(old)) + ".html"
        page = out / f"{old}.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="0; url={html.escape(target)}">'
            f'<link rel="canonical" href="{html.escape(target)}"><title>Moved</title></head>'
            f'<body><p>This page moved to <a href="{html.escape(target)}">'
            f"{html.escape(target)}</a>.</p></body></html>"
        )


def run_command(source: str) -> str:
    """The shell command that creates the environment if needed and opens ``source`` in JupyterLab.

    Parameters
    ----------
    source : str
        The notebook's path relative to the repository root, e.g. ``"book/data.ipynb"``.
    """
    return f"make lab NOTEBOOK={source}"


def _note(source: str) -> str:
    command = html.escape(run_command(source))
    return (
        f'<div class="admonition tip {NOTE_CLASS}">'
        '<p class="admonition-title">Run this page yourself</p>'
        "<p>In a clone of the repository:</p>"
        f'<div class="highlight"><pre><span></span>{command}</pre></div>'
        f"<p>{html.escape(ELSEWHERE)}</p>"
        "</div>"
    )


def _after_opening(body: str) -> int | None:
    """Where the page's opening ends: before its first section, else after its first paragraph."""
    end_of_title = body.find("</h1>")
    if end_of_title < 0:
        return None
    section = body.find("<section", end_of_title)
    if section >= 0:
        return section
    paragraph = body.find("</p>", end_of_title)
    return paragraph + len("</p>") if paragraph >= 0 else end_of_title + len("</h1>")


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
    if source.as_posix() in SHORT_PAGES:
        page, anchor = RUN_SECTION
        context.setdefault("header_buttons", []).insert(
            0,
            {
                "type": "link",
                "url": f"{context['pathto'](page)}#{anchor}",
                "text": "Run this page",
                "tooltip": "Run this page yourself: how, in a clone, Colab or Binder",
                "icon": "fas fa-play",
                "label": "bnguide-run-page",
            },
        )
        return
    cut = _after_opening(context["body"])
    if cut is not None:
        body = context["body"]
        context["body"] = body[:cut] + _note(source.as_posix()) + body[cut:]


# Extensions that keep no state while pages are read but do not say so: sphinx-external-toc
# always loads sphinx_multitoc_numbering (it changes how section numbers are assigned after all
# pages are read, in the main process; this book numbers none), and sphinx-mathjax-offline only
# copies MathJax into the site when the build finishes.
PARALLEL_SAFE_UNDECLARED = ("sphinx_multitoc_numbering", "sphinx-mathjax-offline")


def _declare_parallel_safe(app):
    # Undeclared, Sphinx warns and reads the pages one at a time; declared, `make book` reads
    # and executes them in parallel.
    for name in PARALLEL_SAFE_UNDECLARED:
        extension = app.extensions.get(name)
        if extension is not None and extension.parallel_read_safe is None:
            extension.parallel_read_safe = True


def setup(app):
    app.connect("builder-inited", _declare_parallel_safe)
    # After sphinx-book-theme has prepared the header buttons (priority 500-501).
    app.connect("html-page-context", _add_note, priority=600)
    app.connect("html-page-context", _dedupe_scripts)
    app.connect("build-finished", _write_moved_pages)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
