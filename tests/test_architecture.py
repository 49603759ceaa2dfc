"""The package's shape: no import cycles, no private name used outside its module."""

import ast

import pytest

from bnguide.source_graph import (
    MODULES,
    cycles,
    dependencies,
    import_graph,
    imports,
    may_import_private_module,
    private_uses,
)


def test_the_import_graph_sees_function_level_imports():
    source = "def f():\n    from bnguide.training import workers\n"
    found = list(imports("bnguide.cache", ast.parse(source)))
    assert found == [("bnguide.training.workers", (), 2)]


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_package():
    found = cycles(import_graph())
    assert not found, "import cycles (modules that import each other, directly or not):\n" + (
        "\n".join(" <-> ".join(c) for c in found)
    )


@pytest.mark.parametrize(
    "importer, target, allowed",
    [
        ("bnguide.norms.group_norm", "bnguide.norms._common", True),
        ("bnguide.norms.group_norm", "bnguide._validation", True),
        ("bnguide.benchmarks.landscape_speed", "bnguide.experiments._helpers", False),
    ],
)
def test_private_modules_belong_to_their_package(importer, target, allowed):
    assert may_import_private_module(importer, target) is allowed


def test_no_private_name_is_used_outside_its_module():
    found = [use for module in MODULES for use in private_uses(module)]
    assert not found, "private names used across modules:\n" + "\n".join(found)


def test_dependencies_follow_imports_transitively_and_not_plots():
    deps = dependencies("bnguide.experiments.ioffe_mnist")
    assert "bnguide.training.variants" in deps  # via bnguide.training
    assert "bnguide.models.stacked" in deps  # via bnguide.training.variants -> bnguide.models
    assert not [d for d in deps if d.startswith("bnguide.plots")]
    with pytest.raises(ValueError, match="not a module of the bnguide package"):
        dependencies("bnguide.nowhere")
