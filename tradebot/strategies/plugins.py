"""Third-party strategies: the entry points of group ``tradebot.strategies`` (CONTRACT.md, Strategies).

The registry in :mod:`tradebot.strategies.base` is the one module-level mapping of the package: the
built-ins register themselves on import, and :func:`load_plugins` adds the installed plugins once,
when a process starts (the CLI's ``main`` calls it before any command). After that it is only read,
so every replica, backtest and CLI run resolves names through the same, fixed set.

An entry point names either a strategy object or a zero-argument callable returning one. A plugin
that fails to import, is not a strategy, uses a reserved (sizing) parameter name or a name already
taken is logged with its entry-point name and skipped: a broken plugin never stops a replica.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final

from tradebot.strategies.base import Strategy, get_strategy, register, strategy_names

__all__ = ["ENTRY_POINT_GROUP", "RESERVED_PARAMETERS", "load_plugins"]

ENTRY_POINT_GROUP: Final = "tradebot.strategies"
RESERVED_PARAMETERS: Final = frozenset({"order_size_pct", "leverage", "allow_short", "stop_loss_pct", "take_profit_pct"})
_METHODS: Final = (
    "parameters_schema",
    "parse_params",
    "initial_state",
    "decide",
    "signals",
    "warmup_candles",
    "state_to_dict",
    "state_from_dict",
)

log = logging.getLogger(__name__)


class PluginError(Exception):
    """The object behind an entry point is not a usable strategy."""


def _check(obj: Any) -> Strategy[Any, Any]:
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise PluginError(f"has no valid name (got {name!r})")
    for attr in ("title", "description"):
        if not isinstance(getattr(obj, attr, None), str):
            raise PluginError(f"strategy {name!r} has no {attr} string")
    missing = [m for m in _METHODS if not callable(getattr(obj, m, None))]
    if missing:
        raise PluginError(f"strategy {name!r} lacks {', '.join(missing)}")
    schema = obj.parameters_schema()
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        raise PluginError(f"strategy {name!r}: parameters_schema() has no properties")
    clash = sorted(RESERVED_PARAMETERS & set(props))
    if clash:
        raise PluginError(f"strategy {name!r} uses the reserved parameter name {clash[0]!r}")
    if name in strategy_names() and get_strategy(name) is not obj:
        raise PluginError(f"a strategy named {name!r} is already registered")
    strategy: Strategy[Any, Any] = obj
    return strategy


def _load_one(ep: EntryPoint) -> str:
    obj = ep.load()
    if isinstance(obj, type) or (callable(obj) and not hasattr(obj, "name")):  # a class or a factory
        obj = obj()
    strategy = _check(obj)
    register(strategy)
    return strategy.name


def load_plugins() -> list[str]:
    """Registers every installed plugin strategy; returns the names added. Called once per process."""
    added: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            name = _load_one(ep)
        except Exception as e:  # a plugin's own bug: whatever it raises, skip it
            # The names are in the message too: this can run before logging is configured.
            log.error(
                "strategy plugin %s (%s) skipped: %s: %s",
                ep.name,
                ep.value,
                type(e).__name__,
                e,
                extra={"entry_point": ep.name},
            )
            continue
        log.info("strategy plugin loaded", extra={"entry_point": ep.name, "strategy": name})
        added.append(name)
    return added
