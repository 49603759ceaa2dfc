"""The website as a reader meets it: every page of the built book, opened in a real browser.

The book is served from ``_build/html`` on 127.0.0.1 and every page is loaded in headless
Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright; nothing downloads a browser).
One crawl collects what each page shows; each test below then checks one promise the website
makes to readers and names every page that breaks it. Screenshots of the landing page and of the
most figure-heavy chapter go to ``artifacts/screenshots/``.

Run after ``make book`` (``make test`` does both). ``BNGUIDE_SITE`` points the tests at another
build folder, ``BNGUIDE_CHROMIUM`` at another Chromium. The tests that need no build (the API
reference pages, the dependency lists) always run.
"""

from __future__ import annotations

import functools
import html.parser
import http.server
import importlib
import importlib.util
import inspect
import json
import os
import re
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("BNGUIDE_SITE", ROOT / "_build" / "html"))
CHROMIUM = os.environ.get("BNGUIDE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
# Without the network flags Chromium keeps trying to reach Google's hosts, which this machine's
# closed network refuses; a fresh --user-data-dir comes from launch_persistent_context.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_TIMEOUT_MS = 30_000

_spec = importlib.util.spec_from_file_location(
    "bnguide_api_pages", ROOT / "book" / "reference" / "generate.py"
)
api_pages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api_pages)
_spec = importlib.util.spec_from_file_location(
    "bnguide_cell_display", ROOT / "book" / "cell_display.py"
)
cell_display = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cell_display)

# ---------------------------------------------------------------------------------------------
# Tests that need no built site
# ---------------------------------------------------------------------------------------------


def test_api_reference_pages_are_up_to_date():
    expected = api_pages.expected_pages()
    folder = ROOT / "book" / "reference"
    present = {p.name for p in folder.glob("*.md")}
    stale = sorted(
        name
        for name, text in expected.items()
        if not (folder / name).is_file() or (folder / name).read_text() != text
    )
    extra = sorted(present - set(expected))
    assert not stale and not extra, (
        f"book/reference/ is out of date (to write: {stale}, to delete: {extra}). "
        "Run `.venv/bin/python book/reference/generate.py` and commit the result."
    )


def test_every_public_module_has_a_reference_page():
    pages = api_pages.expected_pages()
    documented = {name.removesuffix(".md") for name in pages} | {api_pages.PACKAGE}
    for module in api_pages.public_modules():
        assert module in documented, module
    # a submodule whose names are all re-exported links them where its package documents them
    log = pages["bnguide.training.log.md"]
    assert "{py:class}`bnguide.training.TrainLog`" in log and ":members:" not in log
    assert ":no-index:" in pages["bnguide.norms.rms_norm.md"]  # bnguide.norms.rms_norm: a function


def test_reference_generator_skips_private_modules_and_lists_every_page():
    modules = api_pages.public_modules()
    assert modules[0] == "bnguide"
    assert all(not part.startswith("_") for m in modules for part in m.split("."))
    index = api_pages.expected_pages()["index.md"]
    for name in api_pages.expected_pages():
        if name != "index.md":
            assert f"   {name.removesuffix('.md')}\n" in index, name


def _notebook(code: str, markdown: str) -> str:
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": [markdown]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "source": [code]},
    ]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_chapters_using_reads_imports_and_text_of_the_chapters_in_the_toc(tmp_path):
    book = tmp_path / "book"
    (book / "part").mkdir(parents=True)
    (book / "reference").mkdir()
    toc = {"root": "book/intro", "chapters": [{"file": "book/part/b"}, {"file": "book/part/a"}]}
    toc["chapters"] += [{"file": "book/glossary"}, {"file": "book/reference/bnguide.nn"}]
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump(toc))
    (book / "intro.md").write_text("# Intro\n\nThe command line is {py:mod}`bnguide.cli`.\n")
    (book / "part" / "a.ipynb").write_text(
        _notebook("from bnguide.nn import BatchNorm1d\nimport bnguide.plots.why as why", "# A")
    )
    (book / "part" / "b.md").write_text(
        "# B\n\n```python\nfrom bnguide.norms import LayerNorm\n```\n\n"
        "See {py:func}`bnguide.data.load` and `bnguide.nn.BatchNorm2d`.\n"
    )
    # back matter, reference pages and pages missing from the toc are no chapters
    (book / "glossary.md").write_text("# Glossary\n\n{py:mod}`bnguide.fold`\n")
    (book / "reference" / "bnguide.nn.md").write_text("# nn\n\n{py:mod}`bnguide.fold`\n")
    (book / "part" / "draft.ipynb").write_text(_notebook("from bnguide import fold", "# Draft"))

    used = api_pages.chapters_using(tmp_path)

    assert used["bnguide.nn"] == ["book/part/b", "book/part/a"]  # reading order of the toc
    assert used["bnguide.cli"] == ["book/intro"]
    assert used["bnguide.data"] == ["book/part/b"]
    assert used["bnguide.norms"] == ["book/part/b"]
    assert used["bnguide.plots.why"] == ["book/part/a"]
    assert used["bnguide.plots"] == ["book/part/a"]  # a package: used through a submodule
    assert "bnguide.fold" not in used and "bnguide" not in used


def test_module_pages_link_the_chapters_that_use_them():
    pages = api_pages.expected_pages()
    used = api_pages.chapters_using()
    for module, chapters in used.items():
        line = "Used in: " + ", ".join(f"{{doc}}`/{c}`" for c in chapters) + "."
        assert line in pages[f"{module}.md"], module
    assert "book/implementation/pytorch-module" in used["bnguide.nn"]


def _public_objects():
    """(qualified name, object) for every public function and class, where it is defined."""
    for name in api_pages.public_modules():
        module = importlib.import_module(name)
        for attr in api_pages.object_names(module):
            obj = getattr(module, attr, None)
            defined_here = getattr(obj, "__module__", None) == name
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and defined_here:
                yield f"{name}.{attr}", obj


def _has_section(doc: str, *titles: str) -> bool:
    return any(re.search(rf"^\s*{t}\n\s*-{{3,}}", doc, re.M) for t in titles)


def test_every_public_function_and_class_has_a_docstring():
    missing = [q for q, obj in _public_objects() if not inspect.getdoc(obj)]
    assert not missing, f"{len(missing)} public objects have no docstring: {missing}"


def test_public_functions_document_their_parameters_and_what_they_return():
    problems = []
    for qualified, obj in _public_objects():
        doc = inspect.getdoc(obj) or ""
        if not inspect.isfunction(obj) or not doc:
            continue
        signature = inspect.signature(obj)
        if set(signature.parameters) - {"self", "cls"} and not _has_section(doc, "Parameters"):
            problems.append(f"{qualified}: no Parameters section")
        returns = signature.return_annotation
        if returns not in (inspect.Signature.empty, None, "None") and not _has_section(
            doc, "Returns", "Yields"
        ):
            problems.append(f"{qualified}: no Returns section")
    assert not problems, f"{len(problems)} NumPy-style sections missing:\n" + "\n".join(problems)


def test_every_reference_page_shows_an_example():
    """Each module's page shows at least one example (an Examples section or a >>> line)."""
    without = []
    for name in api_pages.public_modules()[1:]:  # the package's own page (index.md) has one
        module = importlib.import_module(name)
        docs = [module.__doc__ or ""] + [
            inspect.getdoc(o) or "" for _, o in _public_objects_of(name)
        ]
        if not any(_has_section(d, "Examples?") or ">>>" in d for d in docs):
            without.append(name)
    assert not without, f"{len(without)} modules show no example: {without}"


def test_the_example_on_the_reference_index_runs_and_matches_torch():
    import torch

    code = re.search(r"```python\n(.*?)```", api_pages.INDEX_INTRO, re.S).group(1)
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - our own documentation example
    x, out = namespace["x"], namespace["out"]
    expected = torch.nn.functional.batch_norm(x, None, None, training=True)
    torch.testing.assert_close(out, expected)


def _public_objects_of(module_name: str):
    return [(q, o) for q, o in _public_objects() if q.rpartition(".")[0] == module_name]


def _requirements(text: str) -> set[str]:
    return {r.replace(" ", "") for r in text}


def test_playwright_is_a_test_dependency_in_pyproject_and_environment_yml():
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        pytest.skip("reading pyproject.toml needs Python 3.11+")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    test_extra = [r for r in extras["optional-dependencies"]["test"] if r.startswith("playwright")]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    in_env = [r for r in pip if r.startswith("playwright")]
    assert test_extra, "add playwright to the test extra of pyproject.toml"
    assert _requirements(test_extra) == _requirements(in_env), (test_extra, in_env)


# --- what the stored notebooks show (GitHub, nbviewer and the download button show these) -----


def _stored_cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text())["cells"]


def test_notebooks_that_draw_are_stored_with_their_figures():
    """A notebook saved without its images shows no figure on GitHub, nbviewer or after a
    download, however good the built site looks."""
    problems = {}
    for notebook in _notebooks_with_figures():
        empty = [
            cell.get("id", str(i))
            for i, cell in enumerate(_stored_cells(notebook))
            if cell["cell_type"] == "code"
            and _DRAWS.search("".join(cell["source"]))
            and not any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
        ]
        if empty:
            problems[notebook.relative_to(ROOT).as_posix()] = f"drawing cells {empty}"
    _fail_listing(
        problems,
        "are stored without the figures their code draws (re-execute them in place: "
        "`env -u MPLBACKEND jupyter nbconvert --to notebook --execute --inplace <notebook>`)",
    )


# Notebooks whose claims are being rewritten elsewhere (issue 16): their check cells get their
# boxes with that rewrite. Remove a notebook from here once `book/cell_display.py` lists none.
_BOXES_PENDING: set[str] = set()


def _cells_per_notebook(wanted) -> dict[str, list]:
    """Ids of the stored cells for which ``wanted(cell)`` holds, per notebook that has any."""
    found = {}
    for notebook in cell_display.notebooks():
        name = notebook.relative_to(ROOT).as_posix()
        if name in _BOXES_PENDING:
            continue
        ids = [c.get("id") for c in _stored_cells(notebook) if wanted(c)]
        if ids:
            found[name] = ids
    return found


def test_check_cells_are_folded_into_a_labelled_box():
    bare = _cells_per_notebook(
        lambda c: cell_display.is_check_cell(c) and not cell_display.has_box(c)
    )
    _fail_listing(
        {name: f"check cells {ids}" for name, ids in bare.items()},
        "show assertion cells as bare code (give each the tag hide-input and a one-sentence "
        "'Checked when this page is built: ...' prompt: `python book/cell_display.py set "
        '<notebook>#<cell id> "what it checks."`)',
    )


def test_cell_display_recognises_check_and_setup_cells():
    def code(source, **metadata):
        return {"cell_type": "code", "source": [source], "metadata": metadata, "outputs": []}

    assert cell_display.is_check_cell(code("x = f()\nassert x > 0\n"))
    assert cell_display.is_check_cell(code("for k in d:\n    assert d[k]\nassert y"))
    assert not cell_display.is_check_cell(code("assert x\nprint(x)"))  # shows something
    assert not cell_display.is_check_cell(code("assert x\nx"))  # a final expression
    assert not cell_display.is_check_cell(code("x = 1"))
    box = {"code_prompt_show": cell_display.PROMPT + "x is positive here."}
    assert cell_display.has_box(code("assert x", tags=["hide-input"], mystnb=box))
    assert not cell_display.has_box(code("assert x", mystnb=box))  # not folded
    assert not cell_display.has_box(code("assert x", tags=["hide-input"]))  # no sentence
    assert cell_display.is_setup_cell(code("import torch\nfrom bnguide import style\nstyle.use()"))
    assert cell_display.is_setup_cell(code("torch.manual_seed(0)\ntorch.set_num_threads(2)"))
    assert not cell_display.is_setup_cell(code("import torch\nx = torch.ones(3)"))
    assert not cell_display.is_setup_cell(code("%pip install bnguide"))


def test_setup_cells_are_not_shown():
    shown = _cells_per_notebook(
        lambda c: cell_display.is_setup_cell(c) and not cell_display.is_removed(c)
    )
    _fail_listing(
        {name: f"setup cells {ids}" for name, ids in shown.items()},
        "show setup cells (imports, seeds, style) instead of tagging them remove-cell",
    )


def _chapter_sources() -> list[Path]:
    """The chapter files of the toc (the same pages as ``_chapters`` on the built site)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def files(node):
        if isinstance(node, dict):
            if "file" in node:
                yield node["file"]
            for value in node.values():
                yield from files(value)
        elif isinstance(node, list):
            for item in node:
                yield from files(item)

    back_matter = ("book/reference/", "book/glossary", "book/bibliography")
    found = []
    for name in files(toc):
        if name.startswith(back_matter) or Path(name).stem in ("intro", "index"):
            continue
        found += [p for p in (ROOT / f"{name}.ipynb", ROOT / f"{name}.md") if p.is_file()]
    return found


def test_every_chapter_opens_with_the_same_header():
    """One form everywhere: '**What this page gives you:** ... **Reading time:** ...'."""
    problems = {}
    for source in _chapter_sources():
        if source.suffix == ".ipynb":
            first = next(c for c in _stored_cells(source) if c["cell_type"] == "markdown")
            opening = "".join(first["source"])
        else:
            opening = source.read_text().split("\n## ", 1)[0]
        missing = [
            h for h in ("**What this page gives you:**", "**Reading time:**") if h not in opening
        ]
        if missing:
            problems[source.relative_to(ROOT).as_posix()] = f"no {missing} in its opening"
    assert len(_chapter_sources()) >= 25
    _fail_listing(problems, "open with another header than the book's one form")


def _prose_words(markdown: str) -> int:
    """Words a reader reads: fenced code and display math left out, a role counted by its text."""
    text = re.sub(r"^(```|:::).*?^\1\s*$", " ", markdown, flags=re.S | re.M)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"\$[^$]+\$", " x ", text)  # inline math: one word
    text = re.sub(r"\{[\w:]+\}`([^`<]*?)(\s*<[^>]*>)?`", r"\1", text)  # {doc}`text <target>`
    return len(re.findall(r"[\w%][\w'%.,-]*", text))


def _visible_code_cells(cells: list[dict]) -> list[dict]:
    hidden = {"remove-cell", "remove-input", "hide-input", "hide-cell"}
    return [
        c
        for c in cells
        if c["cell_type"] == "code" and not hidden & set(c.get("metadata", {}).get("tags", []))
    ]


def test_prose_word_count_ignores_code_math_and_link_targets():
    text = (
        "# Title\n\nOne two $x^2$ {doc}`three <a/b>`.\n\n```python\nnot counted\n```\n$$\nz\n$$\n"
    )
    assert _prose_words(text) == 5  # Title, One, two, x, three


def test_the_three_minute_page_takes_three_minutes():
    """The short level keeps its promise: at most 800 words of prose and 3 visible code cells."""
    cells = _stored_cells(ROOT / "book" / "in-3-minutes.ipynb")
    words = sum(_prose_words("".join(c["source"])) for c in cells if c["cell_type"] == "markdown")
    visible = len(_visible_code_cells(cells))
    assert words <= 800 and visible <= 3, (
        f"book/in-3-minutes.ipynb has {words} words of prose (at most 800) and {visible} "
        "visible code cells (at most 3; fold checks and figure code with hide-input)"
    )


# ---------------------------------------------------------------------------------------------
# The crawl: every page of the built site in Chromium
# ---------------------------------------------------------------------------------------------

# Collected in the page after it loaded (and after MathJax finished, where the page has math).
_COLLECT_JS = """
() => {
  const main = document.querySelector('main article') || document.querySelector('main')
    || document.body;
  const text = el => (el ? el.innerText : '');
  // Main text without code: what the reader reads as prose.
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, .highlight, script, style').forEach(e => e.remove());
  const h1 = main.querySelector('h1');
  const headings = Array.from(main.querySelectorAll('h2'));
  // Text between the title and the first h2 (the chapter's opening).
  let opening = '';
  if (h1) {
    const range = document.createRange();
    range.setStartAfter(h1);
    if (headings.length) range.setEndBefore(headings[0]);
    else range.setEndAfter(main.lastChild);
    const frag = range.cloneContents();
    frag.querySelectorAll('.bnguide-run-locally, pre, .cell').forEach(e => e.remove());
    opening = frag.textContent;
  }
  const headingText = h => h.innerText.replace(/[#¶]\\s*$/, '').trim();
  const hrefs = el => Array.from(el.querySelectorAll('a[href]')).map(a => a.href);
  const paragraphs = Array.from(main.querySelectorAll('p'))
    .filter(p => !p.closest('.cell_output, .output, .admonition, footer, .prev-next-area'));
  const lastParagraph = paragraphs.length ? paragraphs[paragraphs.length - 1] : null;
  const outputs = Array.from(main.querySelectorAll('.cell_output .output, .output'));
  return {
    title: h1 ? h1.innerText.replace(/[#¶]\\s*$/, '').trim() : document.title,
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    main_links: Array.from(main.querySelectorAll('a[href]')).map(a => a.href),
    images: Array.from(main.querySelectorAll('img')).map(i => ({
      src: i.currentSrc || i.src, alt: i.getAttribute('alt'),
      loaded: i.complete && i.naturalWidth > 0,
      in_output: !!i.closest('.cell_output, .output, figure'),
    })),
    all_images_loaded: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
      .map(i => i.currentSrc || i.src),
    math_total: main.querySelectorAll('.math').length,
    math_typeset: Array.from(main.querySelectorAll('.math'))
      .filter(m => m.querySelector('mjx-container')).length,
    math_errors: Array.from(main.querySelectorAll('mjx-merror'))
      .map(e => e.getAttribute('data-mjx-error') || e.textContent).slice(0, 5),
    errors_shown: Array.from(main.querySelectorAll(
        '.output.traceback, .output.error, .system-message, .problematic'))
      .map(e => e.innerText.slice(0, 300)),
    stderr: outputs.filter(o => o.classList.contains('stderr')).map(o => o.innerText.slice(0, 300)),
    prose: clone.innerText,
    text: text(main),
    opening: opening,
    sections: headings.map(h => ({
      heading: headingText(h), links: h.closest('section') ? hrefs(h.closest('section')) : [],
    })),
    last_paragraph: lastParagraph ? lastParagraph.innerText : '',
    last_paragraph_links: lastParagraph ? hrefs(lastParagraph) : [],
    term_links: Array.from(main.querySelectorAll('a[href] .std-term'))
      .map(s => s.closest('a').href),
    run_note: text(main.querySelector('.bnguide-run-locally')),
    output_images: Array.from(main.querySelectorAll('.cell_output img, .output img')).length,
  };
}
"""

_WAIT_FOR_MATH_JS = """
async () => {
  if (!document.querySelector('.math')) return true;
  for (let i = 0; i < 200 && !(window.MathJax && MathJax.startup && MathJax.startup.promise); i++) {
    await new Promise(r => setTimeout(r, 50));
  }
  if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return false;
  await MathJax.startup.promise;
  return true;
}
"""

_WAIT_FOR_IMAGES_JS = """
async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 5000);
  })));
}
"""


@dataclass
class PageReport:
    """What one page showed in the browser."""

    path: str  # relative to the site root, e.g. "book/data.html"
    source: str | None  # "book/data.ipynb" for pages built from a source file
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    math_ready: bool = True
    info: dict = field(default_factory=dict)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site quietly; theme assets may be cached, as any web server lets them be."""

    def end_headers(self):
        if "/_static/" in self.path:
            self.send_header("Cache-Control", "max-age=3600")
        super().end_headers()

    def log_message(self, *args):  # keep pytest's output clean
        pass


class _IdCollector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.cache
def _anchors(path: Path) -> frozenset[str]:
    parser = _IdCollector()
    parser.feed(path.read_text(errors="replace"))
    return frozenset(parser.ids)


_REDIRECT = re.compile(r'<meta\s+http-equiv="refresh"\s+content="\d+;\s*url=([^"]+)"', re.I)


def _html_pages() -> list[str]:
    skip = ("_static/", "_sources/", "_images/", "_downloads/")
    return sorted(
        p.relative_to(SITE).as_posix()
        for p in SITE.rglob("*.html")
        if not p.relative_to(SITE).as_posix().startswith(skip)
    )


def _redirect_target(page: str) -> str | None:
    """Where a redirect-only page (a meta refresh, like the root index.html) sends readers."""
    match = _REDIRECT.search((SITE / page).read_text(errors="replace")[:2000])
    return match.group(1) if match else None


def _source_of(page: str) -> str | None:
    stem = page.removesuffix(".html")
    for suffix in (".ipynb", ".md"):
        if (SITE / "_sources" / (stem + suffix)).is_file():
            return stem + suffix
    return None


@pytest.fixture(scope="module")
def site():
    if not (SITE / "index.html").is_file():
        pytest.skip(f"the book is not built ({SITE}/index.html is missing): run `make book` first")
    return SITE


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_Handler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(server):
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"No Chromium at {CHROMIUM}. Install Debian's: `apt-get install chromium` "
            "(.ci/run does this), or point BNGUIDE_CHROMIUM at a Chromium binary."
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with tempfile.TemporaryDirectory(prefix="bnguide-chromium-") as profile:
        with sync_api.sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 900},
            )
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            yield context
            context.close()


class _Crawler:
    """One browser tab that visits pages in turn and reports what each one showed."""

    def __init__(self, context, base: str):
        self.base = base
        self.report: PageReport | None = None
        self.page = context.new_page()
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda exc: self._note("console_errors", f"uncaught: {exc}"))
        self.page.on("request", self._on_request)
        self.page.on("response", self._on_response)
        self.page.on("requestfailed", self._on_failed)

    def _note(self, kind: str, text: str) -> None:
        if self.report is not None:
            getattr(self.report, kind).append(text)

    def _on_console(self, msg) -> None:
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            # (failed loads are reported with their URL by _on_response / _on_failed)
            self._note("console_errors", f"{msg.text} ({(msg.location or {}).get('url', '')})")

    def _on_request(self, request) -> None:
        if not request.url.startswith((self.base, "data:", "blob:", "about:")):
            self._note("external_requests", request.url)  # the book must work offline

    def _on_response(self, response) -> None:
        if response.url == self.base + "favicon.ico":
            return  # asked for by the browser itself, not by a page
        if response.url.startswith(self.base) and response.status >= 400:
            self._note("failed_requests", f"{response.status} {response.url}")

    def _on_failed(self, request) -> None:
        if request.url.startswith(self.base):
            self._note("failed_requests", f"{request.failure} {request.url}")

    def visit(self, page_path: str) -> PageReport:
        self.report = report = PageReport(path=page_path, source=_source_of(page_path))
        target = _redirect_target(page_path)
        if target is not None:  # checked like a link; the browser would just move on
            report.info = {"links": [urllib.parse.urljoin(self.base + page_path, target)]}
            return report
        self.page.goto(self.base + page_path, wait_until="load")
        self.page.evaluate(_WAIT_FOR_IMAGES_JS)
        report.math_ready = bool(self.page.evaluate(_WAIT_FOR_MATH_JS))
        report.info = self.page.evaluate(_COLLECT_JS)
        self.report = None
        return report

    def close(self) -> None:
        self.page.close()


@pytest.fixture(scope="module")
def crawl(browser, server) -> dict[str, PageReport]:
    start = time.perf_counter()
    crawler = _Crawler(browser, server)
    try:
        reports = {page_path: crawler.visit(page_path) for page_path in _html_pages()}
    finally:
        crawler.close()
    print(f"\ncrawled {len(reports)} pages in {time.perf_counter() - start:.1f} s")
    _screenshots(browser, server, reports)
    return reports


def _browsed(crawl: dict[str, PageReport]) -> dict[str, PageReport]:
    """The pages the browser rendered (redirect-only pages left out)."""
    return {p: r for p, r in crawl.items() if "text" in r.info}


def _chapters(crawl: dict[str, PageReport]) -> list[PageReport]:
    """Pages a reader reads as chapters: built from book/, not the landing page, a part's
    opening page (``intro``/``index``) or the back matter."""
    root_page = _root_page()
    back_matter = ("book/reference/", "book/glossary", "book/bibliography")
    return [
        r
        for r in _browsed(crawl).values()
        if r.source
        and r.source.startswith("book/")
        and not r.source.startswith(back_matter)
        and r.path != root_page
        and Path(r.path).stem not in ("intro", "index")  # a part's opening page
    ]


def _is_chapter_file(path: Path) -> bool:
    page = path.relative_to(SITE).as_posix()
    back_matter = ("book/reference/", "book/glossary", "book/bibliography")
    return page.startswith("book/") and not page.startswith(back_matter)


def _root_page() -> str:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return toc["root"] + ".html"


def _fail_listing(problems: dict[str, object], what: str) -> None:
    if problems:
        lines = "\n".join(f"  {page}: {detail}" for page, detail in sorted(problems.items()))
        pytest.fail(f"{len(problems)} page(s) {what}:\n{lines}", pytrace=False)


def _local_target(url: str, base: str) -> tuple[Path, str] | None:
    """The file and fragment a same-site URL points at; None for other sites."""
    if not url.startswith(base):
        return None
    parts = urllib.parse.urlsplit(url)
    path = urllib.parse.unquote(parts.path).lstrip("/")
    if path == "" or path.endswith("/"):
        path += "index.html"
    return SITE / path, urllib.parse.unquote(parts.fragment)


def _screenshots(context, base: str, reports: dict[str, PageReport]) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # a stale shot must not stand in for a missing one (tests/test_lab.py owns lab-*.png)
    for old in [*SCREENSHOTS.glob("landing-*.png"), *SCREENSHOTS.glob("figures-*.png")]:
        old.unlink()
    chapters = [r for r in reports.values() if r.info.get("output_images")]
    heavy = max(chapters, key=lambda r: r.info["output_images"], default=None)
    page = context.new_page()
    try:
        for theme in ("light", "dark"):
            page.goto(base + _root_page())
            _set_theme(page, theme)
            page.screenshot(path=SCREENSHOTS / f"landing-{theme}.png", full_page=True)
            if heavy is not None:
                page.goto(base + heavy.path)
                page.evaluate(_WAIT_FOR_IMAGES_JS)
                page.evaluate(_WAIT_FOR_MATH_JS)
                _set_theme(page, theme)
                page.locator(".cell_output img").first.scroll_into_view_if_needed()
                name = Path(heavy.path).stem
                page.screenshot(path=SCREENSHOTS / f"figures-{name}-{theme}.png")
    finally:
        page.close()


def _set_theme(page, theme: str) -> None:
    # pydata-sphinx-theme reads data-theme/data-mode on <html>
    page.evaluate(
        "t => { document.documentElement.dataset.theme = t;"
        " document.documentElement.dataset.mode = t; }",
        theme,
    )
    page.wait_for_timeout(200)


# --- what every page promises ----------------------------------------------------------------


def test_pages_load_without_console_errors(crawl):
    pages = _browsed(crawl)
    problems = {
        p: r.console_errors + r.failed_requests
        for p, r in pages.items()
        if r.console_errors or r.failed_requests
    }
    _fail_listing(problems, "log errors in the browser console or fail to load a resource")


def test_pages_fetch_nothing_from_other_sites(crawl):
    pages = _browsed(crawl)
    problems = {p: r.external_requests[:5] for p, r in pages.items() if r.external_requests}
    _fail_listing(problems, "fetch resources from other sites (the book must work offline)")


def test_no_cell_error_traceback_or_warning_is_shown(crawl):
    pattern = re.compile(r"Traceback \(most recent call last\)|\w+(Error|Exception)\b|Warning\b")
    problems = {}
    for p, r in _browsed(crawl).items():
        found = list(r.info["errors_shown"])
        found += [s for s in r.info["stderr"] if pattern.search(s)]
        if "Traceback (most recent call last)" in r.info["text"]:
            found.append("'Traceback (most recent call last)' in the page text")
        if found:
            problems[p] = found
    _fail_listing(problems, "show an error, a traceback or a warning to readers")


def test_no_unrendered_markup_is_shown(crawl):
    pattern = re.compile(
        r"\{(py:\w+|term|cite(:\w+)?|doc|ref|numref|eq|glue(:\w+)?|math)\}`|^:::|^```", re.M
    )
    problems = {p: pattern.findall(r.info["prose"])[:5] for p, r in _browsed(crawl).items()}
    _fail_listing({p: v for p, v in problems.items() if v}, "show MyST markup as raw text")


# A Markdown table that reached the page as text: its delimiter row (``|---:|---|``, which the
# smart-quotes pass may turn into dashes) or a line of three or more " | "-separated cells.
_MARKDOWN_TABLE = re.compile(
    r"\|\s*:?[-\u2013\u2014]{1,}:?\s*\|\s*:?[-\u2013\u2014]{1,}:?\s*\||"
    r"^\s*\|(?:[^|\n]+\|){3,}\s*$",
    re.M,
)


def test_no_markdown_table_is_shown_as_text(crawl):
    """Tables must reach the reader as tables, not as a paragraph of pipes (e.g. a notebook
    output made with ``IPython.display.Markdown``; use :class:`bnguide.table.Table`)."""
    problems = {}
    for p, r in _browsed(crawl).items():
        found = _MARKDOWN_TABLE.findall(r.info["prose"])
        if found:
            problems[p] = [f.strip()[:60] for f in found[:3]]
    _fail_listing(problems, "show Markdown table syntax as text instead of a table")


def test_markdown_table_pattern_tells_tables_from_prose():
    assert _MARKDOWN_TABLE.search("| step | paper, no BN | ours |\n|---:|---:|---:|")
    assert _MARKDOWN_TABLE.search("| step | paper | ours | |\u2014:|\u2014:|")  # smart dashes
    assert _MARKDOWN_TABLE.search("| a | b | c |")
    assert not _MARKDOWN_TABLE.search("the norm |x| of a vector, and a | b as a bit-or")
    assert not _MARKDOWN_TABLE.search(
        "step\tpaper, no BN\tours\n4,000\t71.2\t55.3"
    )  # a table's text


def test_every_image_loads(crawl):
    problems = {p: r.info["all_images_loaded"] for p, r in _browsed(crawl).items()}
    _fail_listing({p: v for p, v in problems.items() if v}, "have images that do not load")


_DRAWS = re.compile(r"\bplt\.show\(\)|\bplot_\w+\(")  # a code cell that draws a figure


def _notebooks_with_figures() -> list[Path]:
    """The notebooks with a code cell that draws (``plt.show()`` or a plot helper).

    Read from the source, not from stored outputs: a notebook saved without its figures must
    still count as one that draws.
    """
    found = []
    for notebook in sorted((ROOT / "book").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in notebook.parts:
            continue
        cells = json.loads(notebook.read_text())["cells"]
        if any(c["cell_type"] == "code" and _DRAWS.search("".join(c["source"])) for c in cells):
            found.append(notebook)
    return found


def test_pages_that_draw_figures_show_them(crawl):
    # A kernel that inherits a non-inline backend (MPLBACKEND=Agg) runs every plotting cell
    # without error and shows no figure: the other image checks would then pass on nothing.
    pages = [n.relative_to(ROOT).with_suffix(".html").as_posix() for n in _notebooks_with_figures()]
    assert len(pages) >= 20, pages
    browsed = _browsed(crawl)
    problems = {
        p: "not on the site" if p not in browsed else "no output image"
        for p in pages
        if p not in browsed or not browsed[p].info["output_images"]
    }
    _fail_listing(problems, "draw figures in their notebooks but show none on the site")


def test_every_figure_cell_shows_its_figure_with_its_alt_text(crawl):
    # Each code cell that declares alt text (mystnb.image.alt) must put an image with exactly
    # that alt text on its page: a figure added to a chapter is checked by name, not only by
    # its page showing some figure.
    browsed = _browsed(crawl)
    problems = {}
    for notebook in _notebooks_with_figures():
        page = notebook.relative_to(ROOT).with_suffix(".html").as_posix()
        if page not in browsed:
            continue  # test_pages_that_draw_figures_show_them reports it
        shown = {
            (img["alt"] or "").strip() for img in browsed[page].info["images"] if img["in_output"]
        }
        cells = json.loads(notebook.read_text())["cells"]
        wanted = [
            alt.strip()
            for c in cells
            if (alt := c["metadata"].get("mystnb", {}).get("image", {}).get("alt"))
        ]
        missing = [alt for alt in wanted if alt not in shown]
        if missing:
            problems[page] = f"{len(missing)} figure(s) not shown, e.g. {missing[0][:80]!r}"
    _fail_listing(problems, "declare figures (alt text) that the page does not show")


def test_math_is_typeset_by_mathjax(crawl):
    problems = {}
    for p, r in _browsed(crawl).items():
        total, done = r.info["math_total"], r.info["math_typeset"]
        if not r.math_ready:
            problems[p] = "MathJax never started"
        elif done < total:
            problems[p] = f"{total - done} of {total} formulas not typeset"
        elif r.info["math_errors"]:
            problems[p] = f"MathJax errors: {r.info['math_errors']}"
    _fail_listing(problems, "have math that MathJax did not typeset")


def test_every_internal_link_resolves_to_a_page_and_anchor(crawl, server):
    problems = {}
    for p, r in crawl.items():
        broken = set()
        for url in r.info["links"]:
            target = _local_target(url, server)
            if target is None:
                continue
            path, fragment = target
            if not path.is_file():
                broken.add(f"{url.removeprefix(server)} (no such file)")
            elif fragment and path.suffix == ".html" and fragment not in _anchors(path):
                broken.add(f"{url.removeprefix(server)} (no anchor #{fragment})")
        if broken:
            problems[p] = sorted(broken)[:10]
    _fail_listing(problems, "link to pages or anchors that do not exist")


def test_citations_resolve_to_the_bibliography(crawl, server):
    bibliography = SITE / "book" / "bibliography.html"
    assert bibliography.is_file(), "the bibliography page is missing"
    entries = _anchors(bibliography)
    problems = {}
    for p, r in _browsed(crawl).items():
        for url in r.info["main_links"]:
            target = _local_target(url, server)
            if target and target[0] == bibliography and target[1] not in entries:
                problems.setdefault(p, []).append(url)
    _fail_listing(problems, "cite entries missing from the bibliography")


def test_output_figures_have_alt_text(crawl):
    filename = re.compile(r"(^|/)[\w.-]+\.(png|jpe?g|svg|gif)$", re.I)
    problems = {}
    for p, r in _browsed(crawl).items():
        missing = [
            Path(img["src"]).name
            for img in r.info["images"]
            if img["in_output"] and (not (img["alt"] or "").strip() or filename.search(img["alt"]))
        ]
        if missing:
            problems[p] = f"{len(missing)} figure(s) without alt text, e.g. {missing[0]}"
    _fail_listing(
        problems,
        "show figures without alt text (give the cell the metadata "
        '{"mystnb": {"image": {"alt": "what the figure shows"}}})',
    )


def test_figures_are_opaque_so_the_dark_theme_does_not_swallow_them(site):
    import matplotlib.image as mpimg

    transparent = []
    for png in sorted((site / "_images").glob("*.png")):
        pixels = mpimg.imread(png)
        if pixels.ndim == 3 and pixels.shape[2] == 4 and pixels[..., 3].min() < 1.0:
            transparent.append(png.name)
    assert not transparent, (
        f"{len(transparent)} figure(s) have transparent pixels, which the dark theme shows as "
        f"black on dark grey: {transparent[:5]}. Keep bnguide.style's white figure background."
    )


def test_notebooks_with_figures_use_the_book_style():
    problems = {}
    for notebook in _notebooks_with_figures():
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        if not re.search(r"\bstyle\.use\(\)", code):
            problems[notebook.relative_to(ROOT).as_posix()] = "never calls bnguide.style.use()"
    _fail_listing(problems, "draw figures without the book's style sheet")


# --- what chapters promise -------------------------------------------------------------------

_DURATION = re.compile(
    r"\b(\d+|a few|one|two|three|four|five|ten|fifteen|twenty|thirty)\s*(-\s*)?"
    r"(seconds?|minutes?|mins?|hours?)\b",
    re.I,
)
_TEACHES = re.compile(
    r"\b(learn|teach|teaches|gives you|you will|you'll|covers|shows|explains|"
    r"this (chapter|page|section))\b",
    re.I,
)
_NEXT_WORDS = re.compile(r"\b(next|read on|continue|go on|deeper|then read)\b", re.I)
_NEXT = re.compile(
    r"where (to go )?next|what('s| is)? next|next steps?|read next|going further|further reading"
    r"|up next|where to go",
    re.I,
)


def test_chapters_open_with_what_they_teach_and_how_long_they_take(crawl):
    problems = {}
    for r in _chapters(crawl):
        missing = []
        if not _DURATION.search(r.info["opening"]):
            missing.append("no reading time (e.g. 'Reading time: about 5 minutes')")
        if not _TEACHES.search(r.info["opening"]):
            missing.append("no sentence saying what the chapter teaches")
        if missing:
            problems[r.path] = "; ".join(missing) + " before the first section"
    _fail_listing(problems, "do not open with what they teach and how long they take")


def test_chapters_end_with_where_to_go_next(crawl, server):
    """A "Where next" section (exercises may follow it) or, on a page without sections, a last
    paragraph that says where to read on; either must link to another page of the book."""
    problems = {}
    for r in _chapters(crawl):

        def onward(urls, page=r.path):
            return [
                u
                for u in urls
                if (t := _local_target(u, server))
                and t[0].suffix == ".html"
                and t[0] != SITE / page
                and t[0].parent.name != "reference"
            ]

        sections = [s for s in r.info["sections"] if _NEXT.search(s["heading"])]
        if sections:
            if not any(onward(s["links"]) for s in sections):
                problems[r.path] = f"its section {sections[-1]['heading']!r} links to no other page"
        elif r.info["sections"]:
            headings = [s["heading"] for s in r.info["sections"]]
            problems[r.path] = f"no 'Where next' section among {headings}"
        elif not (
            _NEXT_WORDS.search(r.info["last_paragraph"]) and onward(r.info["last_paragraph_links"])
        ):
            problems[r.path] = "its last paragraph does not point to where to read next"
    _fail_listing(problems, "do not end with where to go next")


def _load_site_extension():
    path = ROOT / "book" / "_ext" / "bnguide_site.py"
    spec = importlib.util.spec_from_file_location("bnguide_site", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SHORT_PAGES = _load_site_extension().SHORT_PAGES


def test_notebook_pages_offer_the_ipynb_and_the_command_that_runs_them(crawl, server):
    problems = {}
    for r in crawl.values():
        if not (r.source or "").endswith(".ipynb"):
            continue
        downloads = [
            t
            for u in r.info["links"]
            if (t := _local_target(u, server)) and t[0].name.endswith(".ipynb") and t[0].is_file()
        ]
        if not downloads:
            problems[r.path] = "no link to download the .ipynb"
        elif r.source in _SHORT_PAGES:
            # Too short for the box: a header button points to the intro's "Run it yourself".
            run_links = [u for u in r.info["links"] if u.endswith("intro.html#run-it-yourself")]
            if not run_links:
                problems[r.path] = "no link to the intro's 'Run it yourself' section"
        elif r.source not in r.info["run_note"]:
            problems[r.path] = "no note with the command that runs it locally"
    _fail_listing(problems, "cannot be downloaded or run as notebooks")


# Terms a chapter should link to the glossary when it uses them (the first use is enough).
GLOSSARY_TERMS = (
    "internal covariate shift",
    "population statistics",
    "running statistics",
    "ghost batch",
    "precise BN",
    "batch renormalization",
    "gradient predictiveness",
    "train-test discrepancy",
    "Bessel's correction",
    "cumulative moving average",
)


def _plain(text: str) -> str:
    """Lower case, single spaces and straight quotes (docutils turns ' into a curly one)."""
    return " ".join(text.replace("\u2019", "'").split()).lower()


@dataclass
class _Glossary:
    by_id: dict[str, int]  # anchor id -> entry number (aliases share their entry's number)
    by_term: dict[str, int]  # lower-case term -> entry number


def _glossary() -> _Glossary:
    """The entries of the built glossary page: each term, its aliases and their anchors."""

    class Parser(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.entry, self.last, self.in_dt, self.in_link = 0, None, False, False
            self.by_id, self.by_term, self.text = {}, {}, ""

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "dt" and attrs.get("id", "").startswith("term-"):
                if self.last != "dt":
                    self.entry += 1
                self.by_id[attrs["id"]] = self.entry
                self.in_dt, self.text = True, ""
            elif tag == "a" and self.in_dt and "headerlink" in (attrs.get("class") or ""):
                self.in_link = True
            if tag in ("dt", "dd"):
                self.last = tag

        def handle_endtag(self, tag):
            if tag == "a":
                self.in_link = False
            elif tag == "dt" and self.in_dt:
                self.by_term[_plain(self.text)] = self.entry
                self.in_dt = False

        def handle_data(self, data):
            if self.in_dt and not self.in_link:
                self.text += data

    parser = Parser()
    parser.feed((SITE / "book" / "glossary.html").read_text())
    return _Glossary(parser.by_id, parser.by_term)


def test_glossary_defines_the_terms_chapters_must_link(site):
    glossary = _glossary()
    missing = [t for t in GLOSSARY_TERMS if _plain(t) not in glossary.by_term]
    assert not missing, f"book/glossary.md does not define {missing}"
    assert len(set(glossary.by_id.values())) >= 20, "the glossary has fewer than 20 entries"


def test_chapters_link_the_glossary_terms_they_use(crawl):
    glossary = _glossary()
    problems = {}
    for r in _chapters(crawl):
        linked = {
            glossary.by_id.get(urllib.parse.urlsplit(u).fragment) for u in r.info["term_links"]
        }
        unlinked = [
            term
            for term in GLOSSARY_TERMS
            if re.search(rf"\b{re.escape(_plain(term))}\b", _plain(r.info["prose"]))
            and glossary.by_term[_plain(term)] not in linked
        ]
        if unlinked:
            problems[r.path] = f"uses {unlinked} without a {{term}} link"
    _fail_listing(problems, "use glossary terms without linking the glossary")


def test_chapters_link_the_api_reference_of_the_modules_they_import(crawl, server):
    imports = re.compile(
        r"^[ \t]*(?:from\s+(bnguide(?:\.\w+)*)\s+import\s+(\([^)]*\)|[\w \t,]+)"
        r"|import\s+(bnguide(?:\.\w+)*))",
        re.M,
    )
    modules_with_pages = {p.stem for p in (SITE / "book" / "reference").glob("bnguide*.html")}
    problems = {}
    for r in _chapters(crawl):
        if not (r.source or "").endswith(".ipynb"):
            continue
        cells = json.loads((SITE / "_sources" / r.source).read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        used = set()
        for package, names, module in imports.findall(code):
            if module:
                used.add(module)
            for name in re.findall(r"(\w+)(?:\s+as\s+\w+)?", names):  # not the alias
                submodule = f"{package}.{name}"
                used.add(submodule if submodule in modules_with_pages else package)
        used = {
            m if m in modules_with_pages else m.rpartition(".")[0] for m in used if m != "bnguide"
        } - {"bnguide.style"}  # the figure style is not a helper a chapter explains
        linked = {
            t[0].stem
            for u in r.info["main_links"]
            if (t := _local_target(u, server)) and t[0].parent.name == "reference"
        }
        missing = sorted(m for m in used if m in modules_with_pages and m not in linked)
        if missing:
            problems[r.path] = f"imports {missing} but never links their reference pages"
    _fail_listing(
        problems,
        "use bnguide helpers without linking their API reference "
        "(write {py:func}`bnguide.module.function`)",
    )


def test_reference_pages_link_back_to_a_chapter(crawl, server):
    problems = {}
    for p, r in _browsed(crawl).items():
        if not p.startswith("book/reference/bnguide"):
            continue
        chapters = [
            u
            for u in r.info["main_links"]
            if (t := _local_target(u, server)) and t[0].suffix == ".html" and _is_chapter_file(t[0])
        ]
        if not chapters:
            problems[p] = "no link to a chapter (add 'Used in :doc:`/book/<chapter>`.')"
    _fail_listing(problems, "of the API reference do not link back to the chapter using them")


def test_search_finds_a_glossary_term(browser, server):
    page = browser.new_page()
    try:
        page.goto(server + "search.html?q=covariate")
        results = page.locator("#search-results li a")
        results.first.wait_for()
        # Sphinx adds the results one by one: wait for all of them, not only the first
        page.wait_for_function("() => /Search finished/.test(document.body.innerText)")
        hrefs = [results.nth(i).get_attribute("href") for i in range(results.count())]
    finally:
        page.close()
    assert any("glossary" in (h or "") for h in hrefs), hrefs


def test_moved_pages_send_the_browser_to_their_new_address(browser, server):
    site_ext = _load_site_extension()
    assert site_ext.MOVED, "nothing to check"
    page = browser.new_page()
    try:
        for old, new in site_ext.MOVED.items():
            page.goto(server + old + ".html")
            page.wait_for_url(f"**/{new}.html")
            assert page.locator("h1").first.inner_text().strip(), f"{new}: empty page"
    finally:
        page.close()


def test_screenshots_are_written(crawl):
    shots = sorted(p.name for p in SCREENSHOTS.glob("*.png"))
    assert "landing-light.png" in shots and "landing-dark.png" in shots, shots
    assert any(n.startswith("figures-") and n.endswith("-light.png") for n in shots), shots
    for name in shots:
        assert (SCREENSHOTS / name).stat().st_size > 10_000, f"{name} looks empty"
