"""The package as readers install it: a wheel and an sdist, installed into a clean environment.

``python -m build`` makes the sdist and then the wheel from the sdist (so a file missing from the
sdist breaks the wheel too). ``--no-isolation`` builds with the setuptools of this environment:
an isolated build would download setuptools, and the tests run offline. The wheel goes into a
fresh virtual environment that borrows only this environment's third-party packages (torch,
numpy, ...) through a ``.pth`` file, and the public API is imported from there with the working
directory outside the checkout and ``python -I``, so the source tree cannot be on the path.

The last test is a reader who opens one notebook outside a clone (Colab, Binder, a download): a
notebook copied alone into an empty folder runs in a fresh environment that has pip and this
environment's third-party packages but no bnguide; its first cell installs bnguide (from the
wheel here, from the repository there) and every cell runs. ``PIP_NO_INDEX`` keeps pip off the
network, so nothing (no CUDA build of torch) is downloaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = ROOT / "bnguide"
# A short notebook that draws: what a reader opens from the launch buttons.
ALONE_NOTEBOOK = ROOT / "book" / "in-30-seconds.ipynb"

_spec = importlib.util.spec_from_file_location("install_cell", ROOT / "book/_ext/install_cell.py")
install_cell = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(install_cell)

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # pragma: no cover
    tomllib = None

# Run inside the fresh environment: import every public module and every name in its __all__.
_IMPORT_EVERYTHING = r"""
import importlib, json, pkgutil, sys
import bnguide
report = {"file": bnguide.__file__, "version": bnguide.__version__, "modules": [], "missing": []}
names = ["bnguide"] + [i.name for i in pkgutil.walk_packages(bnguide.__path__, "bnguide.")]
for name in names:
    if any(part.startswith("_") for part in name.split(".")):
        continue
    module = importlib.import_module(name)
    report["modules"].append(name)
    for attr in getattr(module, "__all__", []):
        if not hasattr(module, attr):
            try:
                importlib.import_module(f"{name}.{attr}")
            except ImportError:
                report["missing"].append(f"{name}.{attr}")
from bnguide import style
style.use()
report["style_file"] = str(style.STYLE_FILE)
print(json.dumps(report))
"""

_SMOKE = r"""
import json
import torch
from bnguide.cache import cached_run
from bnguide.data import load
x, y = load("mnist", "test", flatten=True, limit=8)
print(json.dumps({"x": list(x.shape), "y": str(y.dtype), "cached_run": cached_run.__module__}))
"""


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}",
            pytrace=False,
        )
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)])
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """A fresh environment holding the wheel, borrowing only third-party packages from ours."""
    home = tmp_path_factory.mktemp("venv")
    env_dir = home / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    python = env_dir / "bin" / "python"
    # Install first, while the new environment cannot yet see this one's packages.
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
        + ["--no-index", "--quiet", str(dist["wheel"])],
        cwd=home,
        env=_clean_env(),  # a PYTHONPATH holding the checkout (and its .egg-info) fools pip
    )
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    # A plain path line: the directory is appended to sys.path, but its own .pth files (our
    # editable install of bnguide among them) are not run.
    Path(purelib.stdout.strip(), "borrowed.pth").write_text("\n".join(sorted(ours)) + "\n")
    return env_dir


def _borrowed_site(home: Path) -> Path:
    """Our installed packages (pip among them) as links in one folder, all but bnguide."""
    site = home / "borrowed"
    site.mkdir()
    for directory in sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}):
        for entry in Path(directory).iterdir():
            name = entry.name.lower()
            if "bnguide" in name:
                continue
            if entry.suffix != ".pth" and not (site / entry.name).exists():
                (site / entry.name).symlink_to(entry)
    return site


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory) -> Path:
    """A fresh environment that sees our third-party packages and pip, but no bnguide."""
    home = tmp_path_factory.mktemp("bare")
    env_dir = home / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    python = env_dir / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    Path(purelib.stdout.strip(), "borrowed.pth").write_text(f"{_borrowed_site(home)}\n")
    return env_dir


# Run by the bare environment's Python: execute a notebook with a kernel of that same Python.
_EXECUTE = r"""
import json, sys
import nbclient, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
nbclient.NotebookClient(nb, timeout=600, kernel_name=sys.argv[2]).execute()
nbformat.write(nb, sys.argv[1])
code = [c for c in nb.cells if c.cell_type == "code"]
print(json.dumps({
    "ran": sum(c.execution_count is not None for c in code), "code": len(code),
    "pngs": sum("image/png" in o.get("data", {}) for c in code for o in c.outputs),
    "first": "".join(o.get("text", "") for o in code[0].outputs),
}))
"""

_WHERE = "import importlib.util as u, json; s = u.find_spec('bnguide'); print(s and s.origin)"


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["MPLBACKEND"] = "Agg"
    return env


def test_wheel_holds_every_module_and_the_package_data(dist):
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in PACKAGE_DIR.rglob("*.py")}
    assert sources - names == set(), "modules missing from the wheel (is an __init__.py missing?)"
    assert {"bnguide/py.typed", "bnguide/bnguide.mplstyle"} <= names
    assert not any(n.startswith(("tests/", "book/")) for n in names), "tests or book in the wheel"


def test_sdist_holds_the_sources_and_the_project_files(dist):
    with tarfile.open(dist["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    sources = {p.relative_to(ROOT).as_posix() for p in PACKAGE_DIR.rglob("*.py")}
    assert sources - names == set(), "modules missing from the sdist"
    assert {"pyproject.toml", "README.md", "bnguide/bnguide.mplstyle", "bnguide/py.typed"} <= names


def test_wheel_metadata_declares_the_dependencies_of_pyproject(dist):
    if tomllib is None:
        pytest.skip("reading pyproject.toml needs Python 3.11+")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        meta_name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(meta_name).decode())
    assert metadata["Name"] == project["name"] and metadata["Version"] == project["version"]
    required = {r.replace(" ", "") for r in metadata.get_all("Requires-Dist") if "extra" not in r}
    assert required == {r.replace(" ", "") for r in project["dependencies"]}
    assert metadata["Requires-Python"] == project["requires-python"]


def test_public_api_imports_from_the_installed_wheel(venv, tmp_path):
    python = venv / "bin" / "python"
    result = _run([str(python), "-I", "-c", _IMPORT_EVERYTHING], cwd=tmp_path, env=_clean_env())
    report = json.loads(result.stdout.strip().splitlines()[-1])
    installed = Path(report["file"]).resolve()
    assert installed.is_relative_to(venv.resolve()), f"bnguide came from {installed}"
    assert not installed.is_relative_to(ROOT), "the source checkout is on the path"
    assert Path(report["style_file"]).is_file(), "the style sheet was not installed"
    assert report["missing"] == [], "names in __all__ that do not exist"
    # every public module of the source tree is in the installed package
    expected = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in PACKAGE_DIR.rglob("*.py")
    }
    expected = {m for m in expected if not any(part.startswith("_") for part in m.split("."))}
    assert expected - set(report["modules"]) == set()


def test_installed_wheel_loads_data_and_runs_the_console_script(venv, tmp_path):
    python = venv / "bin" / "python"
    data = os.environ.get("BNGUIDE_DATA") or str(ROOT.parent / "shared" / "data")
    if not Path(data, "mnist").is_dir():
        pytest.skip("no local MNIST copy (set BNGUIDE_DATA)")
    env = _clean_env() | {"BNGUIDE_DATA": data, "BNGUIDE_CACHE": str(tmp_path / "cache")}
    result = _run([str(python), "-I", "-c", _SMOKE], cwd=tmp_path, env=env)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "x": [8, 784],
        "y": "torch.int64",
        "cached_run": "bnguide.cache",
    }
    if tomllib is None:
        pytest.skip("reading pyproject.toml needs Python 3.11+")
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("scripts", {})
    for name in scripts:
        _run([str(venv / "bin" / name), "--help"], cwd=tmp_path, env=env)


def test_a_notebook_alone_installs_bnguide_and_runs(dist, bare_venv, tmp_path):
    python = bare_venv / "bin" / "python"
    env = _clean_env() | {"BNGUIDE_CACHE": str(tmp_path / "cache"), "PIP_NO_INDEX": "1"}
    env.pop("MPLBACKEND")  # the kernel draws inline, as in Colab
    where = _run([str(python), "-I", "-c", _WHERE], cwd=tmp_path, env=env).stdout.strip()
    assert where == "None", f"bnguide is already importable in the bare environment: {where}"

    # The notebook alone in an empty folder, its install cell pointed at the wheel built here
    # (the stored cell installs the same release from the repository).
    folder = tmp_path / "alone"
    folder.mkdir()
    notebook = folder / ALONE_NOTEBOOK.name
    text = ALONE_NOTEBOOK.read_text(encoding="utf-8")
    stored = install_cell.requirement()
    first = json.loads(text)["cells"][0]
    assert first["id"] == install_cell.CELL_ID and stored in "".join(first["source"])
    notebook.write_text(text.replace(stored, f"bnguide @ {dist['wheel'].as_uri()}"), "utf-8")

    kernels = tmp_path / "jupyter" / "kernels" / "bare"
    kernels.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (kernels / "kernel.json").write_text(json.dumps({"argv": argv, "language": "python"}))
    env |= {"JUPYTER_PATH": str(tmp_path / "jupyter"), "JUPYTER_DATA_DIR": str(tmp_path / "d")}
    result = _run([str(python), "-I", "-c", _EXECUTE, str(notebook), "bare"], cwd=folder, env=env)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ran"] == report["code"] > 1, report
    assert report["pngs"] >= 1, "the notebook drew no figure"
    assert "restart the kernel" in report["first"], "the first cell did not run pip"

    where = _run([str(python), "-I", "-c", _WHERE], cwd=tmp_path, env=env).stdout.strip()
    assert Path(where).resolve().is_relative_to(bare_venv.resolve()), where
    assert sorted(p.name for p in folder.iterdir()) == [notebook.name], "files left beside it"
