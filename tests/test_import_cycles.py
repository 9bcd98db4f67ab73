"""No import cycles among vidssl's modules, nor among its packages.

Every import counts: module level, inside functions (lazy) and under ``TYPE_CHECKING``. A
package is a folder with its own modules (``vidssl.models`` and ``vidssl.models.backbones``
are two); the modules directly under ``vidssl/`` (``config``, ``dist``, ...) are nodes of
their own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vidssl

ROOT = Path(vidssl.__file__).resolve().parent


def module_files() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ["vidssl", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The vidssl modules ``name`` imports (``from pkg import mod`` -> ``pkg.mod``)."""

    def known(target: str) -> str:
        while target not in modules:
            target = target.rpartition(".")[0]
        return target

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {known(a.name) for a in node.names if a.name.split(".")[0] == "vidssl"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "vidssl":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in modules else known(target))
    found.discard(name)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def graphs() -> tuple[dict[str, set[str]], dict[str, set[str]], dict[tuple[str, str], str]]:
    modules = module_files()
    mod_graph = {name: imports_of(name, path, modules) for name, path in modules.items()}

    def package(name: str) -> str:
        if modules[name].name == "__init__.py" or name.count(".") == 1:
            return name  # a package's __init__, or a top-level module (its own node)
        return name.rpartition(".")[0]

    pkg_graph: dict[str, set[str]] = {}
    why: dict[tuple[str, str], str] = {}
    for name, targets in mod_graph.items():
        for target in targets:
            a, b = package(name), package(target)
            if a != b:
                pkg_graph.setdefault(a, set()).add(b)
                why.setdefault((a, b), f"{name} imports {target}")
    return mod_graph, pkg_graph, why


def test_the_import_parser_sees_lazy_and_type_checking_imports() -> None:
    mods = module_files()
    found = imports_of("vidssl.app.bench_table", mods["vidssl.app.bench_table"], mods)
    assert "vidssl.app.bench_plan" in found  # under TYPE_CHECKING
    found = imports_of("vidssl.text", mods["vidssl.text"], mods)
    assert "vidssl.text.clip_text" in found  # inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back() -> None:
    mod_graph, _, _ = graphs()
    assert cycles(mod_graph) == []


def test_no_package_imports_itself_back() -> None:
    _, pkg_graph, why = graphs()
    found = cycles(pkg_graph)
    details = [why[(a, b)] for comp in found for a in comp for b in comp if (a, b) in why]
    assert found == [], details
