"""DESIGN.md, Strategies as plugins: the actor, the backtest, the CLI and the API resolve strategies
only through the registry; nothing outside ``tradebot/strategies/`` names a particular strategy.

Read from the source (AST): no module outside the package holds a string that is a registered
strategy's name (defaults come from ``strategies.selection.DEFAULT_STRATEGY``, the ``ema_period``
shorthand from ``SHORTHAND``), and none imports a built-in strategy's own module.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tradebot.strategies import get_strategy, strategy_names

ROOT = Path(__file__).resolve().parents[2] / "tradebot"
STRATEGIES = ROOT / "strategies"


def _outside_modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if STRATEGIES not in p.parents)


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def test_no_module_outside_strategies_names_a_strategy() -> None:
    names = set(strategy_names())
    modules = {type(get_strategy(n)).__module__ for n in names}
    assert len(names) >= 5 and all(m.startswith("tradebot.strategies.") for m in modules)
    found: list[str] = []
    for path in _outside_modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = _docstrings(tree)
        where = path.relative_to(ROOT.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in skip:
                found.append(f"{where}:{node.lineno}: the string {node.value!r}")
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                targets = {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
                for m in sorted(targets & modules):
                    found.append(f"{where}:{node.lineno}: imports {m}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in modules:
                        found.append(f"{where}:{node.lineno}: imports {a.name}")
    assert found == []
