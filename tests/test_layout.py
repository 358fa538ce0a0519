"""The package's shape (issue 12): SQL only in ``store/``, providers that never see the engine,
and no import cycles between modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "authbridge"


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(module: str, path: Path, *, module_level_only: bool) -> set[str]:
    """Modules of the package ``module`` imports; with ``module_level_only``, leaving out
    imports under ``if TYPE_CHECKING:`` and inside functions (they run after loading)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes: list[ast.AST] = []
    if not module_level_only:
        nodes.extend(ast.walk(tree))
    else:
        for statement in tree.body:
            if isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
                continue
            walked = isinstance(statement, ast.If | ast.Try)
            nodes.extend(ast.walk(statement) if walked else [statement])
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            subs = {f"{target}.{a.name}" for a in node.names} & MODULES.keys()
            if node.module is not None or not subs:
                found.add(target)
            found |= subs
    return found


def test_only_the_store_and_the_migrations_speak_sql() -> None:
    # engine.py takes the users' table extension points (Column, MetaData) as types.
    speaking = {
        module
        for module, path in MODULES.items()
        if any(
            name.split(".")[0] == "sqlalchemy"
            for name in _imports(module, path, module_level_only=False)
        )
    }
    outside = {m for m in speaking if not m.startswith(("authbridge.store", "authbridge.migra"))}
    assert outside == {"authbridge.engine"}


def test_providers_never_import_the_engine() -> None:
    for module, path in MODULES.items():
        if module.startswith("authbridge.providers"):
            assert "authbridge.engine" not in _imports(module, path, module_level_only=False)


def test_no_import_cycles() -> None:
    graph = {
        module: _imports(module, path, module_level_only=True) & MODULES.keys() - {module}
        for module, path in MODULES.items()
    }
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycle = [*trail[trail.index(module) :], module]
            raise AssertionError(" -> ".join(cycle))
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
