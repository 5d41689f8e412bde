"""The import contract (DESIGN.md "Layout"): tradebot's package graph is layered and acyclic.

Every module's AST is read, imports inside functions and under `if TYPE_CHECKING:` included (a
dependency is a dependency, whenever it is taken). Each module belongs to one component of
`LAYERS`; a module may import its own component and the components of its own or a lower layer,
never a higher one; the components form no cycle, inside a layer either; and the pure packages
import nothing that does I/O. When it needs to call up, a lower layer takes a callable or a small
Protocol that the composition root fills in.

A new top-level module or package fails `test_every_module_is_in_a_layer` until it is placed here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "tradebot"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

# Lowest first. A component is a module or a package (with everything under it); the longest
# matching name wins, so `tradebot.exchange.simulator` is not part of `tradebot.exchange`.
# The bare package `tradebot` (its __init__: the version) matches itself only.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "shared utilities",
        (
            PACKAGE,
            "tradebot.argtypes",
            "tradebot.backoff",
            "tradebot.config",
            "tradebot.db",
            "tradebot.jsonutil",
            "tradebot.logs",
            "tradebot.statuses",
            "tradebot.timeframes",
        ),
    ),
    ("pure code and the exchange edge", ("tradebot.strategies", "tradebot.security", "tradebot.exchange")),
    ("domain", ("tradebot.accounts", "tradebot.bots", "tradebot.backtests", "tradebot.optimizations",
                "tradebot.notifications")),
    ("runtime", ("tradebot.runtime",)),
    ("HTTP app", ("tradebot.http",)),
    (
        "composition root",
        (
            "tradebot.__main__",
            "tradebot.cli",
            "tradebot.demo",
            "tradebot.runtime_context",
            "tradebot.server",
            "tradebot.services",
            # A program of its own that stands in for Binance: only the root (and tests) start it.
            "tradebot.exchange.simulator",
        ),
    ),
)

# Pure code: no clock, no network, no files. Modules whose top-level name is here are refused.
PURE_COMPONENTS = ("tradebot.strategies", "tradebot.timeframes")
IO_MODULES = frozenset(
    {
        "aiohttp", "asyncio", "asyncpg", "ccxt", "csv", "http", "io", "os", "pathlib", "psycopg", "redis",
        "requests", "shutil", "socket", "sqlite3", "subprocess", "tempfile", "urllib",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Import:
    importer: str  # module name
    target: str  # imported module (or the package an imported name lives in)
    path: Path
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p): p for p in sorted(root.rglob("*.py"))}


def imports_of(name: str, path: Path, source: str, known: Mapping[str, Path]) -> Iterator[Import]:
    """Every import statement anywhere in the module (functions, classes, TYPE_CHECKING blocks)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, path, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                # `from tradebot import jsonutil` depends on tradebot.jsonutil, not on the package.
                sub = f"{module}.{alias.name}"
                yield Import(name, sub if sub in known else module, path, node.lineno)


def component_of(module: str) -> str | None:
    best: str | None = None
    for _, components in LAYERS:
        for c in components:
            matches = module == c or (c != PACKAGE and module.startswith(c + "."))
            if matches and (best is None or len(c) > len(best)):
                best = c
    return best


def layer_of(component: str) -> int:
    return next(i for i, (_, components) in enumerate(LAYERS) if component in components)


def project_imports() -> list[Import]:
    known = discover()
    out: dict[Import, None] = {}  # one entry per (module, target, line), in file order
    for name, path in known.items():
        out.update(dict.fromkeys(imports_of(name, path, path.read_text(encoding="utf-8"), known)))
    return list(out)


def internal(imports: list[Import]) -> list[tuple[Import, str, str]]:
    """(import, importer's component, target's component) for imports between two components."""
    out = []
    for imp in imports:
        if imp.target != PACKAGE and not imp.target.startswith(PACKAGE + "."):
            continue
        src, dst = component_of(imp.importer), component_of(imp.target)
        if src is not None and dst is not None and src != dst:
            out.append((imp, src, dst))
    return out


def where(imp: Import) -> str:
    return f"{imp.path.relative_to(ROOT.parent)}:{imp.line}: {imp.importer} imports {imp.target}"


def find_cycle(edges: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph (as a closed path), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


# ---- the contract ---------------------------------------------------------------------------------


def test_every_module_is_in_a_layer() -> None:
    unplaced = sorted(name for name in discover() if component_of(name) is None)
    assert not unplaced, f"modules in no layer (add them to LAYERS in {Path(__file__).name}): {unplaced}"


def test_no_module_imports_a_higher_layer() -> None:
    violations = [
        f"{where(imp)} ({LAYERS[layer_of(src)][0]} → {LAYERS[layer_of(dst)][0]})"
        for imp, src, dst in internal(project_imports())
        if layer_of(dst) > layer_of(src)
    ]
    assert not violations, "a lower layer imports a higher one:\n" + "\n".join(violations)


def test_the_component_graph_has_no_cycle() -> None:
    edges: dict[str, set[str]] = {}
    for _, src, dst in internal(project_imports()):
        edges.setdefault(src, set()).add(dst)
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle between components: " + " → ".join(cycle or ())


def test_pure_code_does_no_io() -> None:
    violations = [
        where(imp)
        for imp in project_imports()
        if component_of(imp.importer) in PURE_COMPONENTS and imp.target.split(".")[0] in IO_MODULES
    ]
    assert not violations, "pure code imports an I/O module:\n" + "\n".join(violations)


# ---- the checker itself ---------------------------------------------------------------------------


def test_imports_inside_functions_and_type_checking_blocks_count() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from tradebot.http.appkeys import DB\n"
        "def f():\n    import tradebot.runtime.events\n"
        "    from tradebot import jsonutil\n"
        "    from . import pagination\n"
    )
    known = {"tradebot.jsonutil": ROOT / "jsonutil.py", "tradebot.http.pagination": ROOT / "http/pagination.py"}
    found = [(i.target, i.line) for i in imports_of("tradebot.http.x", ROOT / "http/x.py", source, known)]
    assert found == [
        ("typing", 1),
        ("tradebot.http.appkeys", 3),
        ("tradebot.runtime.events", 5),
        ("tradebot.jsonutil", 6),
        ("tradebot.http.pagination", 7),
    ]


def test_the_most_specific_component_wins() -> None:
    assert component_of("tradebot.exchange.simulator.rest") == "tradebot.exchange.simulator"
    assert component_of("tradebot.exchange.errors") == "tradebot.exchange"
    assert component_of("tradebot") == "tradebot"
    assert component_of("tradebot.nowhere") is None


def test_a_cycle_is_found_and_named() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
