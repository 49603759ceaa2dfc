"""The notebooks run in JupyterLab, clicked through in a real browser, as a reader runs them.

A JupyterLab server starts headless on 127.0.0.1 with a random token, like ``make lab`` (the
kernel is this environment's Python, MPLBACKEND unset), on a folder holding a copy of a book
notebook. Chromium (Debian's, driven by Playwright) opens it, chooses *Run > Run All Cells* in
the menu and waits for the kernel. The test then checks, in the page and in the notebook saved
through the UI, that every code cell ran (it has an execution count), that no cell shows an error,
and that a figure was drawn. The server (with its kernels) and the browser are stopped in the
fixtures' teardown, also when a test fails.

- ``test_a_short_notebook_runs_in_jupyterlab`` runs ``book/in-30-seconds.ipynb`` in every run.
- ``test_a_raising_cell_fails_the_check`` inserts a cell that raises into a copy of it and
  checks that the same check reports that cell and the cells it kept from running.
- ``test_every_notebook_runs_in_jupyterlab`` runs every notebook of the book; it is marked
  ``lab_all`` and runs only when asked for: ``pytest tests/test_jupyter_ui.py -m lab_all``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_website import CHROMIUM, CHROMIUM_FLAGS

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
SHORT_NOTEBOOK = ROOT / "book" / "in-30-seconds.ipynb"
ALL_NOTEBOOKS = sorted((ROOT / "book").rglob("*.ipynb"))
LAB_ALL = "lab_all"
KERNEL_NAME = "Python 3 (bnguide)"  # as `make lab` names it
SERVER_START_S = 120
# A notebook whose experiments are not cached yet trains them; the longest takes minutes.
RUN_ALL_S = int(os.environ.get("BNGUIDE_LAB_RUN_S", "1800"))

# The prompts of the code cells: "[ ]:" not run, "[*]:" queued or running, "[3]:" ran.
_PROMPTS = (
    "Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))"
    ".map(p => p.innerText)"
)
# The notebook's code cells as the page shows them: prompt, error outputs, images.
_CELLS_JS = """
() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell')).map(cell => {
  const prompt = cell.querySelector('.jp-InputArea-prompt');
  const errors = Array.from(cell.querySelectorAll('.jp-OutputArea-output'))
    .filter(o => /Traceback|Error\\b|Exception\\b/.test(o.innerText)
                 && o.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr')
    .map(o => o.innerText.slice(0, 400));
  return {
    prompt: prompt ? prompt.innerText.trim() : '',
    errors: errors,
    images: cell.querySelectorAll('.jp-OutputArea-output img').length,
    source: (cell.querySelector('.jp-InputArea-editor') || cell).innerText.slice(0, 80),
  };
})
"""


@dataclass
class LabRun:
    """What running one notebook through the JupyterLab UI gave."""

    name: str
    cells: list[dict]  # the page's code cells, as _CELLS_JS reads them
    saved: dict  # the notebook as saved through the UI afterwards
    page_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Every reason the run is not a clean run that drew a figure; empty when it is."""
        found = list(self.page_errors)
        for i, cell in enumerate(self.cells):
            if not cell["prompt"].strip("[]: ").isdigit():
                found.append(f"code cell {i} did not run (prompt {cell['prompt']!r})")
            for error in cell["errors"]:
                found.append(f"code cell {i} shows an error: {error}")
        saved_code = [c for c in self.saved.get("cells", []) if c["cell_type"] == "code"]
        for i, cell in enumerate(saved_code):
            if cell.get("execution_count") is None:
                found.append(f"code cell {i} has no execution count in the saved notebook")
            for out in cell.get("outputs", []):
                if out["output_type"] == "error":
                    found.append(f"code cell {i} saved an error: {out['ename']}: {out['evalue']}")
        drawn = sum(c["images"] for c in self.cells)
        saved_png = sum(
            "image/png" in out.get("data", {}) for c in saved_code for out in c.get("outputs", [])
        )
        if not (drawn and saved_png):
            found.append(f"no figure drawn ({drawn} images shown, {saved_png} PNGs saved)")
        return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabServer:
    base: str
    token: str
    root: Path


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving tmp_path/notebooks; stopped afterwards."""
    with lab_server(tmp_path) as server:
        yield server


@contextlib.contextmanager
def lab_server(tmp_path: Path):
    """Start JupyterLab on 127.0.0.1 with a random token; stop it and its kernels on exit."""
    if shutil.which("jupyter-lab", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("JupyterLab is not installed in this environment: run `make env`")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    # The kernel is this interpreter, as `make lab` makes it (a kernelspec first on JUPYTER_PATH).
    kernel_dir = tmp_path / "jupyter" / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": KERNEL_NAME, "language": "python"}
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))
    # Every cell in the page, none left out of the DOM by JupyterLab's windowing.
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env |= {
        "JUPYTER_PATH": str(tmp_path / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
    }
    token, port = secrets.token_hex(16), _free_port()
    command = [sys.executable, "-m", "jupyterlab", "--no-browser"]
    command += [
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
    ]
    command += [f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}"]
    command += [
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:  # CI runs as root
        command.append("--allow-root")
    log = (tmp_path / "jupyter.log").open("w")
    server = subprocess.Popen(
        command,
        env=env,
        cwd=notebooks,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited ({server.returncode}):\n{_tail(tmp_path)}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"jupyter lab did not answer in {SERVER_START_S} s:\n{_tail(tmp_path)}"
                    )
                time.sleep(0.5)
        yield LabServer(base=base, token=token, root=notebooks)
    finally:
        _stop(server)
        log.close()


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "jupyter.log").read_text(errors="replace")[-3000:]


def _stop(server: subprocess.Popen) -> None:
    """Stop the server and everything it started (its kernels): its own process group."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:  # kernels that outlived the server
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait(timeout=20)


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium; closed afterwards."""
    with chromium(tmp_path) as context:
        yield context


@contextlib.contextmanager
def chromium(tmp_path: Path):
    """A headless Chromium context (Debian's binary); closed on exit."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"No Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does this)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            context.set_default_timeout(60_000)
            yield context
        finally:
            context.close()


def run_in_lab(lab: LabServer, browser, notebook: Path) -> LabRun:
    """Open ``notebook`` (inside ``lab.root``) in JupyterLab, run all cells, save, report."""
    name = notebook.relative_to(lab.root).as_posix()
    page = browser.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(f"uncaught in the page: {exc}"))
    try:
        page.goto(f"{lab.base}/lab/tree/{name}?token={lab.token}")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
        _wait_idle(page, 120)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        # Run All queues every code cell ([*]); wait until it did, then until none is left.
        page.wait_for_function(f"() => {_PROMPTS}.some(p => p.includes('*'))", timeout=30_000)
        page.wait_for_function(
            f"() => !{_PROMPTS}.some(p => p.includes('*'))", timeout=RUN_ALL_S * 1000, polling=500
        )
    except Exception:
        # What the browser showed when it went wrong, for the person reading the CI log.
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / f"jupyterlab-failed-{notebook.stem}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failure: {shot}")
        raise
    _wait_idle(page, 60)
    cells = page.evaluate(_CELLS_JS)
    path = lab.root / name
    before = path.stat().st_mtime_ns
    page.locator(".jp-Notebook").first.click()
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.2)
    saved = json.loads(path.read_text()) if path.stat().st_mtime_ns != before else {}
    if not saved:
        page_errors.append("the notebook was not saved through the UI (Ctrl+S)")
    page.close()
    return LabRun(name=name, cells=cells, saved=saved, page_errors=page_errors)


def _wait_idle(page, seconds: int) -> None:
    """Wait until the status bar shows the project's kernel, connected and idle."""
    page.wait_for_function(
        "text => (document.querySelector('#jp-main-statusbar') || {}).innerText.includes(text)",
        arg=f"{KERNEL_NAME} | Idle",
        timeout=seconds * 1000,
        polling=250,
    )


def _copy(notebook: Path, lab: LabServer, insert: dict | None = None) -> Path:
    """The notebook without its stored outputs (so what the check sees was made by this run)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    if insert is not None:  # after the install cell and the first real code cell
        code = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
        nb["cells"].insert(code[1] + 1, insert)
    target = lab.root / notebook.name
    target.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
    return target


def test_a_short_notebook_runs_in_jupyterlab(lab, browser):
    run = run_in_lab(lab, browser, _copy(SHORT_NOTEBOOK, lab))
    assert run.cells, "no code cell found in the page"
    assert run.problems() == []


def test_a_raising_cell_fails_the_check(lab, browser):
    broken = {
        "cell_type": "code",
        "execution_count": None,
        "id": "raises-on-purpose",
        "metadata": {},
        "outputs": [],
        "source": ["raise RuntimeError('this cell fails on purpose')"],
    }
    target = _copy(SHORT_NOTEBOOK, lab, insert=broken)
    run = run_in_lab(lab, browser, target)
    problems = run.problems()
    n_code = len(run.cells)
    assert any("code cell 2 shows an error" in p and "fails on purpose" in p for p in problems)
    assert any("RuntimeError: this cell fails on purpose" in p for p in problems), problems
    # Run All stops at the error: the cells after it did not run.
    assert any(f"code cell {n_code - 1} did not run" in p for p in problems), problems


def _lab_all_requested(config) -> bool:
    """True when ``-m`` selects the lab_all tests but not unmarked ones (``-m lab_all``)."""
    markexpr = config.getoption("markexpr", "") or ""
    if not markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression
    except ImportError:  # pragma: no cover
        return LAB_ALL in markexpr and "not" not in markexpr
    selects = Expression.compile(markexpr).evaluate
    return selects(lambda name, **_: name == LAB_ALL) and not selects(lambda name, **_: False)


@pytest.mark.lab_all
@pytest.mark.skipif(
    "not _lab_all_requested(config)",
    reason="every notebook through the UI takes long: `pytest tests/test_jupyter_ui.py -m lab_all`",
)
@pytest.mark.parametrize(
    "notebook", ALL_NOTEBOOKS, ids=[p.relative_to(ROOT).as_posix() for p in ALL_NOTEBOOKS]
)
def test_every_notebook_runs_in_jupyterlab(notebook, lab, browser):
    run = run_in_lab(lab, browser, _copy(notebook, lab))
    assert run.problems() == []
