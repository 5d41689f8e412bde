"""A bot's choice of strategy and parameters, checked against the registry (CONTRACT.md, Bots and
Strategies), so the bots package resolves names without knowing any particular strategy.

``ema_period`` is the one shorthand: a bot (or backtest) setting standing for
``parameters.ema_period`` of ``ema_cross``; bot_configs.ema_period mirrors it for the API's echo
and for SQL written before migration 0008. :data:`DEFAULT_STRATEGY` is what a bot or backtest that
names none runs, so no module outside this package needs to name a strategy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tradebot.strategies.base import ParameterError, UnknownStrategyError, get_strategy

__all__ = ["DEFAULT_STRATEGY", "SHORTHAND", "ema_period_of", "resolve_parameters", "shorthand_parameters"]

DEFAULT_STRATEGY: Final = "ema_cross"
"""The strategy of a bot or backtest that names none (CONTRACT.md's first built-in)."""

SHORTHAND: Final = ("ema_cross", "ema_period")
"""(strategy, parameter) that the ``ema_period`` bot setting stands for."""


def resolve_parameters(
    strategy: str, parameters: Mapping[str, Any], ema_period: int | None = None
) -> dict[str, Any]:
    """Every parameter of ``strategy`` (omitted ones at their defaults) from ``parameters`` and the
    ``ema_period`` shorthand. Raises ``ParameterError`` whose field is ``strategy``, ``ema_period``
    or ``parameters.<name>``."""
    try:
        impl = get_strategy(strategy)
    except UnknownStrategyError as e:
        raise ParameterError("strategy", str(e)) from None
    raw = dict(parameters)
    name, key = SHORTHAND
    if ema_period is not None:
        if strategy != name:
            raise ParameterError("ema_period", f"is a parameter of {name}, not of {strategy}")
        if key in raw and raw[key] != ema_period:
            raise ParameterError("ema_period", f"differs from parameters.{key} ({raw[key]!r})")
        raw[key] = ema_period
    known = set(impl.parameters_schema().get("properties", {}))
    for k in raw:
        if k not in known:
            raise ParameterError(f"parameters.{k}", f"is not a parameter of {strategy}")
    try:
        values: dict[str, Any] = impl.parse_params(raw).to_dict()
    except ParameterError as e:
        raise ParameterError(f"parameters.{e.field}", e.message) from None
    return {k: v for k, v in values.items() if k in known}


def ema_period_of(strategy: str, parameters: Mapping[str, Any]) -> int | None:
    """The ``ema_period`` shorthand's value for a bot (None for a strategy it does not belong to)."""
    name, key = SHORTHAND
    return int(parameters[key]) if strategy == name else None


def shorthand_parameters(strategy: str, raw: Mapping[str, Any], ema_period: int | None) -> dict[str, Any]:
    """``raw`` with the ``ema_period`` shorthand folded in (an explicit ``raw`` value wins); raises
    ``ParameterError`` naming ``ema_period`` when ``strategy`` is not the one it belongs to."""
    params = dict(raw)
    if ema_period is not None:
        name, key = SHORTHAND
        if strategy != name:
            raise ParameterError("ema_period", f"is a parameter of {name}, not of {strategy}")
        params.setdefault(key, ema_period)
    return params
