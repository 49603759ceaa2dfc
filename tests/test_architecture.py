"""The package's shape: no import cycles, no private name used outside its module.

Both read the source with ``ast`` (imports inside functions included), so they see what a
reader sees, whatever Python happens to import first.
"""

import ast
from pathlib import Path

import pytest

import bnguide

PACKAGE_DIR = Path(bnguide.__file__).resolve().parent


def _module_files(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    files = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


MODULES = _module_files()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The dotted module an ``ImportFrom`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, tree: ast.AST | None = None):
    """``(imported module, names taken from it, line)`` for every import of bnguide in ``module``.

    ``from bnguide.a import b`` counts as importing the module ``bnguide.a.b`` when that is a
    module, else as importing the names ``b`` of ``bnguide.a``. Parent packages, which Python
    initializes on the way, are not counted (a submodule importing its sibling is no cycle).
    """
    tree = tree or ast.parse(MODULES[module].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            if source.split(".")[0] != "bnguide":
                continue
            names = []
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in MODULES:
                    yield sub, (), node.lineno
                else:
                    names.append(alias.name)
            if names and source in MODULES:
                yield source, tuple(names), node.lineno


def import_graph() -> dict[str, set[str]]:
    """Module -> the bnguide modules it imports (anywhere in its source)."""
    return {m: {target for target, _, _ in imports(m) if target != m} for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _may_import_private_module(importer: str, private_module: str) -> bool:
    """A private module ``a.b._m`` belongs to the package ``a.b``: only modules in it may use it."""
    package = private_module.rpartition(".")[0]
    return importer == package or importer.startswith(package + ".")


def private_uses(module: str) -> list[str]:
    """Where ``module`` uses a private name or private module of another bnguide module."""
    tree = ast.parse(MODULES[module].read_text())
    found = []
    module_aliases = {}  # local name -> bnguide module it is bound to
    for target, names, line in imports(module, tree):
        if target == module:
            continue
        private_parts = [p for p in target.split(".") if _private(p)]
        if private_parts and not _may_import_private_module(module, target.split(".")[0]):
            # the private part's package decides
            cut = next(i for i, p in enumerate(target.split(".")) if _private(p))
            owner = ".".join(target.split(".")[: cut + 1])
            if not _may_import_private_module(module, owner):
                found.append(f"{module}:{line} imports the private module {target}")
        found += [f"{module}:{line} imports {target}.{n}" for n in names if _private(n)]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    module_aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES and alias.asname:
                    module_aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in module_aliases
            and _private(node.attr)
            and module_aliases[node.value.id] != module
        ):
            found.append(f"{module}:{node.lineno} uses {module_aliases[node.value.id]}.{node.attr}")
    return found


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
    assert _may_import_private_module(importer, target) is allowed


def test_no_private_name_is_used_outside_its_module():
    found = [use for module in MODULES for use in private_uses(module)]
    assert not found, "private names used across modules:\n" + "\n".join(found)
