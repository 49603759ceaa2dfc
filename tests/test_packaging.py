"""The project's own files: environment.yml agrees with pyproject.toml, experiments register,
and the places that name the repository or say how to run a notebook agree."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

import bnguide
from bnguide import experiments

try:
    import tomllib  # Python 3.11+
except ModuleNotFoundError:  # pragma: no cover
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


install_cell = _load("install_cell", ROOT / "book" / "_ext" / "install_cell.py")
bnguide_site = _load("bnguide_site", ROOT / "book" / "_ext" / "bnguide_site.py")


def _pyproject_requirements() -> set[str]:
    if tomllib is None:
        pytest.skip("reading pyproject.toml needs Python 3.11+")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs.update(extra)
    return {r.replace(" ", "") for r in reqs}


def _environment_requirements() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    reqs = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            reqs.update(d for d in dep["pip"] if not d.startswith("-"))  # -e ., pip options
        elif not dep.startswith(("python", "pip")):
            reqs.add(dep)
    return {r.replace(" ", "") for r in reqs}


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    in_pyproject, in_environment = _pyproject_requirements(), _environment_requirements()
    assert in_pyproject - in_environment == set(), "missing from environment.yml"
    assert in_environment - in_pyproject == set(), "missing from pyproject.toml"


def test_environment_yml_installs_bnguide_itself_for_binder():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert "-e ." in pip, "Binder would run the notebooks without bnguide installed"
    assert "jupyterlab>=4.0" in pip, "the book extras must bring JupyterLab (make lab, Binder)"


def test_environment_yml_installs_the_cpu_build_of_torch():
    """PyPI's torch is the multi-GB CUDA build; Binder has no GPU."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip
    assert pip.index("--extra-index-url https://download.pytorch.org/whl/cpu") < pip.index(
        "torch>=2.1"
    )


def test_library_dependencies_are_lower_bounds_not_pins():
    for req in _pyproject_requirements():
        assert "==" not in req, f"{req}: use a lower bound, never an exact pin"
        assert ">=" in req, f"{req}: give a lower bound"


def test_lazy_submodules_and_unknown_attribute():
    assert bnguide.data.__name__ == "bnguide.data"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bnguide.nope  # noqa: B018


def test_experiments_are_discovered_with_the_required_interface():
    for name, module in experiments.available().items():
        assert module.NAME == name
        assert isinstance(module.DESCRIPTION, str) and module.DESCRIPTION
        config = module.Config()
        assert config.__dataclass_params__.frozen, f"{name}.Config must be frozen"


def test_unknown_experiment_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown experiment 'nope'. Known experiments:"):
        experiments.get("nope")


def _plain(text: str) -> str:
    return " ".join(text.split())


def test_every_notebook_starts_with_the_current_install_cell():
    notebooks = install_cell.notebooks()
    assert len(notebooks) >= 20
    stale = [
        p.relative_to(ROOT).as_posix() for p in notebooks if not install_cell.has_current_cell(p)
    ]
    assert stale == [], "run `python book/_ext/install_cell.py` to write their first cell"
    first = json.loads(notebooks[0].read_text())["cells"][0]
    assert first["metadata"]["tags"] == ["remove-cell"], "the website must not show the cell"
    assert first["outputs"] == [] and first["execution_count"] is None


def test_the_install_cell_pins_the_release_from_the_one_repository_url():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"]
    if tomllib is None:
        pytest.skip("reading pyproject.toml needs Python 3.11+")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert install_cell.repository_url() == url
    assert install_cell.release_version() == project["version"] == bnguide.__version__
    assert install_cell.requirement() == f"bnguide @ git+{url}@v{project['version']}"
    source = "".join(install_cell.cell()["source"])
    assert f'%pip install --quiet "{install_cell.requirement()}"' in source


def test_pyproject_and_readme_name_the_repository_of_config_yml():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"].rstrip("/")
    if tomllib is None:
        pytest.skip("reading pyproject.toml needs Python 3.11+")
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Homepage"].rstrip("/") == url, "pyproject.toml [project.urls] Homepage"
    assert urls["Documentation"].rstrip("/") == config["html"]["baseurl"].rstrip("/")
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", readme))
    assert named == {url}, f"README.md names {sorted(named)}, _config.yml {url}"


def test_readme_and_the_website_box_say_the_same_about_running_a_notebook():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running one notebook", 1)[1].split("\n## ", 1)[0]
    assert bnguide_site.run_command("book/data.ipynb") in section
    assert _plain(bnguide_site.ELSEWHERE) in _plain(section)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^lab: ", makefile, re.MULTILINE), "the box's command needs `make lab`"
    intro = (ROOT / "book" / "intro.md").read_text()
    assert bnguide_site.run_command("book/data.ipynb") in intro
    assert "## Run it yourself" in intro, "the header button of the short pages links there"
    assert bnguide_site.RUN_SECTION == ("book/intro", "run-it-yourself")
    for page in bnguide_site.SHORT_PAGES:
        assert (ROOT / page).is_file(), f"{page} in bnguide_site.SHORT_PAGES does not exist"


def test_the_install_cell_runs_pip_only_where_bnguide_is_missing(monkeypatch):
    transformer = pytest.importorskip("IPython.core.inputtransformer2")
    code = transformer.TransformerManager().transform_cell("".join(install_cell.cell()["source"]))
    calls = []

    class Shell:
        def run_line_magic(self, name, line):
            calls.append((name, line))

    exec(code, {"get_ipython": Shell})  # here bnguide imports: a no-op
    assert calls == []
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bnguide" else find_spec(name, *a),
    )
    exec(code, {"get_ipython": Shell})  # as in Colab: pip, then the import
    assert calls == [("pip", f'install --quiet "{install_cell.requirement()}"')]
