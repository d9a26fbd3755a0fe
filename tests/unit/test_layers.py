"""The packages import only downward, so no import cycle can form between them:

    nodes           the member's supervisor (discovery talks to its service as a client)
        client      the client library and tools
        actors      the processes of a member
        storage     on-disk formats
    config, api     settings, ids; the generated protobuf modules

Built from the source (every import statement, at any depth, TYPE_CHECKING ones
included: a type named from above is a dependency too), not from what importing
happens to load.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import petcd

ROOT = Path(petcd.__file__).parent
ALLOWED = {
    "api": set(),
    "config": {"api"},
    "storage": {"api", "config"},
    "actors": {"api", "config", "storage"},
    "nodes": {"api", "config", "storage", "actors", "client"},
    "client": {"api", "config", "storage", "actors"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("petcd", *parts))


def imported_modules(path: Path) -> Iterator[tuple[str, int]]:
    """Every module `path` imports (`from x import y` counts as x.y: y may be a
    module), with its line."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            for alias in node.names:
                yield f"{module}.{alias.name}", node.lineno


def package_edges() -> dict[tuple[str, str], list[str]]:
    """(importer, imported) package pairs, each with where it happens."""
    edges: dict[tuple[str, str], list[str]] = {}
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            for module, line in imported_modules(path):
                parts = module.split(".")
                if parts[0] == "petcd" and len(parts) > 1 and parts[1] in ALLOWED \
                        and parts[1] != package:
                    where = f"{path.relative_to(ROOT)}:{line} imports {module}"
                    edges.setdefault((package, parts[1]), []).append(where)
    return edges


def test_packages_import_only_downward():
    edges = package_edges()
    upward = {pair: where for pair, where in edges.items() if pair[1] not in ALLOWED[pair[0]]}
    assert not upward, "\n".join(w for where in upward.values() for w in where)


def test_the_allowed_direction_has_no_cycle():
    # What the test above enforces must itself be a partial order.
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, f"cycle: {' -> '.join((*path, package))}"
        if package not in done:
            for lower in ALLOWED[package]:
                visit(lower, (*path, package))
            done.add(package)

    for package in ALLOWED:
        visit(package, ())


def test_the_graph_is_read_from_the_source():
    # The edges the layering exists for: a change that stopped finding them would
    # make the test above pass vacuously.
    edges = package_edges()
    assert {("nodes", "actors"), ("actors", "storage"), ("actors", "config"),
            ("storage", "api"), ("client", "actors")} <= set(edges)
