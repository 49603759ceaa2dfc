"""The project's own files: environment.yml agrees with pyproject.toml, experiments register."""

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
            reqs.update(d for d in dep["pip"] if not d.startswith("-e"))
        elif not dep.startswith(("python", "pip")):
            reqs.add(dep)
    return {r.replace(" ", "") for r in reqs}


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    in_pyproject, in_environment = _pyproject_requirements(), _environment_requirements()
    assert in_pyproject - in_environment == set(), "missing from environment.yml"
    assert in_environment - in_pyproject == set(), "missing from pyproject.toml"


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
