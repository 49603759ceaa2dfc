"""The import graph of the bnguide package, read from its source with ``ast``.

Static, so it sees what a reader sees (imports inside functions included), whatever Python
happens to import first. :mod:`bnguide.cache` keys each experiment on the modules it depends
on (:func:`dependencies`); ``tests/test_architecture.py`` checks that the graph has no cycles
(:func:`cycles`) and that no module uses another's private names (:func:`private_uses`).
Used in :doc:`/book/scorecard`, whose results come from that cache.

Examples
--------
>>> from bnguide.source_graph import dependencies
>>> "bnguide.plots.why" in dependencies("bnguide.experiments.ghost_batch")
False
>>> from bnguide.source_graph import cycles
>>> cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}})
[['a', 'b']]
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

__all__ = [
    "MODULES",
    "cycles",
    "dependencies",
    "import_graph",
    "imports",
    "may_import_private_module",
    "module_files",
    "private_uses",
]

PACKAGE_DIR = Path(__file__).resolve().parent


def module_files(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package under ``root``.

    Parameters
    ----------
    root : pathlib.Path
        The package's folder.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"bnguide": .../__init__.py, "bnguide.cache": .../cache.py, ...}``.
    """
    files = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


#: Every module of the package: dotted name -> source file.
MODULES = module_files()


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

    Parameters
    ----------
    module : str
        A key of :data:`MODULES`.
    tree : ast.AST, optional
        Its parsed source (read from the file when left out).

    Yields
    ------
    (str, tuple of str, int)
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
    """Module -> the bnguide modules it imports (anywhere in its source).

    Returns
    -------
    dict of str to set of str
    """
    return {m: {target for target, _, _ in imports(m) if target != m} for m in MODULES}


def dependencies(module: str) -> list[str]:
    """``module`` and every bnguide module it imports, directly or not, sorted.

    What :func:`bnguide.cache.code_version` hashes for an experiment: the code it can run.
    Parent packages are not followed (``from bnguide.a.b import f`` needs ``bnguide.a.b``,
    not everything ``bnguide/a/__init__.py`` imports).

    Parameters
    ----------
    module : str
        A key of :data:`MODULES`.

    Returns
    -------
    list of str
    """
    if module not in MODULES:
        raise ValueError(f"{module!r} is not a module of the bnguide package.")
    graph = _graph()
    seen, todo = {module}, [module]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return sorted(seen)


@functools.lru_cache(maxsize=1)
def _graph() -> dict[str, set[str]]:
    return import_graph()


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted.

    Parameters
    ----------
    graph : dict of str to set of str
        Module -> the modules it imports, as :func:`import_graph` returns.

    Returns
    -------
    list of list of str
        Each cycle's modules, sorted; empty when there is none.
    """
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


def may_import_private_module(importer: str, private_module: str) -> bool:
    """A private module ``a.b._m`` belongs to the package ``a.b``: only modules in it may use it.

    Parameters
    ----------
    importer : str
        The importing module.
    private_module : str
        The dotted name up to and including its private part.

    Returns
    -------
    bool
    """
    package = private_module.rpartition(".")[0]
    return importer == package or importer.startswith(package + ".")


def private_uses(module: str) -> list[str]:
    """Where ``module`` uses a private name or private module of another bnguide module.

    Parameters
    ----------
    module : str
        A key of :data:`MODULES`.

    Returns
    -------
    list of str
        ``"<module>:<line> imports|uses <name>"``, one per use.
    """
    tree = ast.parse(MODULES[module].read_text())
    found = []
    module_aliases = {}  # local name -> bnguide module it is bound to
    for target, names, line in imports(module, tree):
        if target == module:
            continue
        private_parts = [p for p in target.split(".") if _private(p)]
        if private_parts and not may_import_private_module(module, target.split(".")[0]):
            # the private part's package decides
            cut = next(i for i, p in enumerate(target.split(".")) if _private(p))
            owner = ".".join(target.split(".")[: cut + 1])
            if not may_import_private_module(module, owner):
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
