"""The import graph of occi/, read from the code with ast (every import, function-local ones included):
no circles between modules, and no private (`_name`) names taken from another module."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "occi"

ALLOWED_CIRCLES: set[frozenset] = set()

ALLOWED_PRIVATE: set[str] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str | None, int, str | None]]:
    """(module imported, name taken from it or None, line, the local name a submodule is bound to)
    for every occi import in one module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno, alias.asname) for alias in node.names if alias.name in known]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                if f"{base}.{alias.name}" in known:  # a submodule
                    found.append((f"{base}.{alias.name}", None, node.lineno, alias.asname or alias.name))
                elif base in known:
                    found.append((base, alias.name, node.lineno, None))
    return found


def private_uses(path: Path, aliases: dict[str, str]) -> list[tuple[str, str, int]]:
    """(module, private name, line) for `module._name` where `module` is a local name of an occi module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append((aliases[node.value.id], node.attr, node.lineno))
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {target for target, _, _, _ in imports(name, path, known) if target != name}
            for name, path in known.items()}


def circles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_reader_finds_imports_of_every_kind():
    known = modules()
    assert len(known) > 100
    found = {(target, taken) for target, taken, _, _ in imports("occi.cli", known["occi.cli"], known)}
    assert ("occi.ranges", None) in found            # from occi import ranges (top of the module)
    assert ("occi.pipeline", "stage_named") in found  # inside a function
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]


def test_occi_has_no_import_circles():
    found = [sorted(component) for component in circles(graph()) if component not in ALLOWED_CIRCLES]
    assert not found, f"import circles: {found}"


def test_no_module_takes_a_private_name_from_another():
    known = modules()
    taken = []
    for name, path in known.items():
        found = imports(name, path, known)
        taken += [(f"{name} imports {target}.{private}", line) for target, private, line, _ in found
                  if private and private.startswith("_") and not private.startswith("__")]
        aliases = {local: target for target, _, _, local in found if local}
        taken += [(f"{name} uses {target}.{private}", line) for target, private, line in private_uses(path, aliases)
                  if target != name]
    shown = [f"{what} (line {line})" for what, line in taken if what not in ALLOWED_PRIVATE]
    assert not shown, "\n".join(shown)
